"""Parameter payloads of a real run (measured from a kfp.local run), and the outputs each step writes in the model."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from saemerge.pipeline.workflow_size.gojson import _go_value

# The step outputs of local runs, written by `--measure .saemerge/runs/<run-id>` (a few
# elements of the lists estimate_runtime scales; "__arguments__": the SAE run's parameters).
# Measured on runs br2-sae, br2-pso and br2-m2n2, 2026-12-06, on the micro bench (opt/test
# sizes 8/16 per task): `saemerge run --local --bench-size micro --search sae --steps 3
# --param archive_size=4`; `--search pso --steps 2 --param pso_include_base=false --param
# pso_dare_copies=1`; `--search m2n2 --steps 2 --param archive_size=4 --param s_min=0.5
# --param s_max=0.5 --param m2n2_children=2`; the SAE run's entries first (the shared steps).
MEASURED_FROM = "saemerge run --local br2-sae, br2-pso, br2-m2n2 (micro bench), 2026-12-06"
_MEASURED_JSON = r"""
{
"__arguments__": {"archive_size": 4, "attraction": "linear", "base_uri": "s3://saemerge/bench/micro-seed0-v2/models/base", "baselines": ["weight_average", "task_arithmetic", "ties"], "beta": 1.0, "competition": "local_then_global", "data_uri": "s3://saemerge/bench/micro-seed0-v2/data", "eval_batch_size": 64, "eval_device": "auto", "eval_dtype": "auto", "experts": ["s3://saemerge/bench/micro-seed0-v2/models/math", "s3://saemerge/bench/micro-seed0-v2/models/multilingual"], "gamma": 0.05, "granularity": "tensor", "include_base": false, "measure": "zero_count", "merge_device": "cpu", "opt_sizes": {"saebench_math": 8, "saebench_multilingual": 8}, "opt_splits": "train,validation", "reverse": false, "run_uri": "s3://saemerge/runs/br2-sae", "s_max": 0.6, "s_min": 0.1, "score_cache": "", "scoring": "global", "seed": 0, "t0": 3, "t_mult": 2, "test_sizes": {"saebench_math": 16, "saebench_multilingual": 16}},
"archive-update": {"artifacts": {"metrics": {"accepted": 2, "best.saebench_math": 0.125, "best.saebench_multilingual": 0.25, "best_fitness": 0.21748046875, "best_score": 0.1875, "generation": 2, "mean_fitness": 0.18310546875, "mean_sparsity": 0.537109375, "offspring": 2, "s_t": 0.475}}, "parameters": {"Output": ["s3://saemerge/runs/br2-sae/gen-02/handoff/archive-5de525a4c5d0.parquet"]}},
"evaluate": {"artifacts": {"metrics": {"best_fitness": 0.21123046875, "mean_fitness": 0.17998046875, "scored": 2.0}}, "parameters": {"Output": ["s3://saemerge/runs/br2-sae/gen-02/handoff/scored-offspring-b5ae0eb9d234.parquet"]}},
"final-evaluate": {"artifacts": {"best_model": {"checkpoint_uri": "s3://saemerge/runs/br2-sae/models/1b6709c6d9b68ebb11f5e9606e1b238b9ac0a615aab481d8dcecc2c8ebb5547c", "content_hash": "1b6709c6d9b68ebb11f5e9606e1b238b9ac0a615aab481d8dcecc2c8ebb5547c", "framework": "transformers", "id": "m-1b6709c6d9b6", "lambda_mean": 0.4568733153638813, "origin": "sae", "overall_fitness": 0.21123046875, "overall_score": 0.1875, "parents": "m-78f5cc9402fd,m-9dd9de35cacd", "s_t": 0.475, "sparsity": 0.474609375, "status": "member"}, "metrics": {"base.macro": 0.125, "expert:math.macro": 0.125, "expert:multilingual.macro": 0.125, "sae.macro": 0.125, "task_arithmetic.macro": 0.125, "ties.macro": 0.125, "weight_average.macro": 0.15625}}, "parameters": {"Output": [{"id": "base", "macro": 0.125, "method": "base", "origin": "base", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/base"}, {"id": "math", "macro": 0.125, "method": "expert:math", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/math"}, {"id": "multilingual", "macro": 0.125, "method": "expert:multilingual", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/multilingual"}, {"id": "m-b63039bfafb3", "macro": 0.15625, "method": "weight_average", "origin": "linear {}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.3125}, "sparsity": 0.0, "uri": "s3://saemerge/runs/br2-sae/models/b63039bfafb305aceaeb3c9de3f36a1222fa6be0f8c6018bc735581478b02727"}, {"id": "m-10bb40eaf148", "macro": 0.125, "method": "task_arithmetic", "origin": "task_arithmetic alpha=0.3", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "sparsity": 0.0, "uri": "s3://saemerge/runs/br2-sae/models/10bb40eaf1484d87ffcb8cb9311fa74b74f6a94fcaa42dc543beabfa02d77ab1"}, {"id": "m-759f661513fb", "macro": 0.125, "method": "ties", "origin": "ties {'density': 0.2, 'alpha': 1.0}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "sparsity": 0.6457790798611112, "uri": "s3://saemerge/runs/br2-sae/models/759f661513fb035ec36bfcdd05e00735fcc4696e011e0745e5a571eb25de765c"}, {"id": "m-1b6709c6d9b6", "macro": 0.125, "method": "sae", "origin": "sae", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.25}, "sparsity": 0.474609375, "uri": "s3://saemerge/runs/br2-sae/models/1b6709c6d9b68ebb11f5e9606e1b238b9ac0a615aab481d8dcecc2c8ebb5547c"}]}},
"init-population": {"artifacts": {"metrics": {"variants": 8}}, "parameters": {"Output": [{"granularity": "tensor", "name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.0}, {"granularity": "tensor", "name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.1}, {"granularity": "tensor", "name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.35}]}},
"m2n2-crossover": {"artifacts": {"child": {"checkpoint_uri": "s3://saemerge/runs/br2-m2n2/models/0e0262402b08a9f2fe13188e36c04f2652ee0e60bbe98a47ca1dd5ff7413df3c", "content_hash": "0e0262402b08a9f2fe13188e36c04f2652ee0e60bbe98a47ca1dd5ff7413df3c", "framework": "transformers", "id": "m-0e0262402b08", "origin": "m2n2 t=0.473 split 45851/51360 (in model.layers.1.mlp.gate_proj.weight)", "parents": "m-aea907cec5bc,m-b6a643990c5b", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/br2-m2n2/gen-01/handoff/child-0-64dff8d7d78a.parquet"}},
"m2n2-init": {"artifacts": {"metrics": {"variants": 4}}, "parameters": {"Output": [{"granularity": "tensor", "name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.0}, {"granularity": "tensor", "name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.5}, {"granularity": "tensor", "name": "expert:multilingual", "source": "s3://saemerge/bench/micro-seed0-v2/models/multilingual", "sparsity": 0.0}]}},
"m2n2-select": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/br2-m2n2/gen-01/handoff/order-0-a55df6578fb2.parquet", "s3://saemerge/runs/br2-m2n2/gen-01/handoff/order-1-cb9b6260e01e.parquet"]}},
"m2n2-update": {"artifacts": {"metrics": {"accepted": 2, "best.saebench_math": 0.0, "best.saebench_multilingual": 0.0, "best_fitness": 0.025, "best_score": 0.0, "best_shared_fitness": 0.0, "generation": 1, "mean_fitness": 0.0125, "mean_shared_fitness": 0.0, "mean_sparsity": 0.25, "offspring": 2, "s_t": 0.0}}, "parameters": {"Output": ["s3://saemerge/runs/br2-m2n2/gen-01/handoff/archive-949e2cae9d06.parquet"]}},
"pair-and-merge": {"artifacts": {"child": {"checkpoint_uri": "s3://saemerge/runs/br2-sae/models/46aedbd3da290ba306abdc5a669e5fd70435d84b7abd2ad62c4aa39d18520aaf", "content_hash": "46aedbd3da290ba306abdc5a669e5fd70435d84b7abd2ad62c4aa39d18520aaf", "framework": "transformers", "id": "m-46aedbd3da29", "lambda_mean": 0.4528023598820059, "origin": "sae", "parents": "m-2543a1d77fd7,m-4f1b217bb90b", "s_t": 0.475, "sparsity": 0.474609375, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/br2-sae/gen-02/handoff/child-0-aa8a66accbff.parquet"}},
"prune": {"artifacts": {"model": {"checkpoint_uri": "s3://saemerge/runs/br2-sae/models/7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "content_hash": "7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "framework": "transformers", "id": "m-7578842bbf8e", "origin": "expert:math@0", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/br2-sae/init/handoff/prune-m-7578842bbf8e-eeb798a56623.parquet"}},
"pso-candidates": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/br2-pso/gen-01/handoff/candidates-77030f6792b8.parquet"]}},
"pso-init": {"artifacts": {"metrics": {"particles": 4}}, "parameters": {"Output": [{"drop_p": 0.0, "index": 0, "particle": "expert:math", "seed": 0, "source": "s3://saemerge/bench/micro-seed0-v2/models/math"}, {"drop_p": 0.0, "index": 1, "particle": "expert:multilingual", "seed": 0, "source": "s3://saemerge/bench/micro-seed0-v2/models/multilingual"}, {"drop_p": 0.8, "index": 2, "particle": "expert:math~dare1", "seed": 3325262373904801, "source": "s3://saemerge/bench/micro-seed0-v2/models/math"}]}},
"pso-move": {"artifacts": {"position": {"checkpoint_uri": "s3://saemerge/runs/br2-pso/models/4fbe6ab2f465366be97a3ba9e522959039dd972b175396937217cbaefc428a2a", "content_hash": "4fbe6ab2f465366be97a3ba9e522959039dd972b175396937217cbaefc428a2a", "framework": "transformers", "id": "m-4fbe6ab2f465", "origin": "pso expert:math", "parents": "m-1862b1b8e7fe", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/br2-pso/gen-01/handoff/position-0-1b4fbe115848.parquet"}},
"pso-particle": {"artifacts": {"model": {"checkpoint_uri": "s3://saemerge/runs/br2-pso/models/7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "content_hash": "7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "framework": "transformers", "id": "m-7578842bbf8e", "origin": "expert:math", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/br2-pso/init/handoff/position-0-3cabe21e7e3a.parquet"}},
"pso-update": {"artifacts": {"metrics": {"accepted": 0, "best.saebench_math": 0.0, "best.saebench_multilingual": 0.25, "best_fitness": 0.125, "best_score": 0.125, "generation": 1, "mean_fitness": 0.125, "mean_position_fitness": 0.125, "mean_sparsity": 0.400390625, "offspring": 4, "s_t": 0.0, "step": 2}}, "parameters": {"gbest": ["s3://saemerge/runs/br2-pso/gen-01/handoff/gbest-e0a9f3c29b15.parquet"], "swarm": ["s3://saemerge/runs/br2-pso/gen-01/handoff/particle-0-c5db76b71635.parquet", "s3://saemerge/runs/br2-pso/gen-01/handoff/particle-1-7ed18b9fc399.parquet", "s3://saemerge/runs/br2-pso/gen-01/handoff/particle-2-789d8a35bf06.parquet"]}},
"report": {"artifacts": {"report_html": {}, "report_md": {}}, "parameters": {"Output": "s3://saemerge/runs/br2-sae/final/report.md"}},
"schedule-step": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/br2-sae/gen-02/handoff/pair-0-96826c6a0563.parquet", "s3://saemerge/runs/br2-sae/gen-02/handoff/pair-1-0eedf37a5e64.parquet"]}}
}
"""
MEASURED_PAYLOADS: dict[str, Any] = json.loads(_MEASURED_JSON)

_SAMPLE_ELEMENTS = 3


def _task_key(name: str) -> str:
    """comp-evaluate-2 / evaluate-2 -> evaluate (components and task directories alike)."""
    return re.sub(r"(-\d+)+$", "", name.removeprefix("comp-"))


def measure_payloads(run_root: Path) -> dict[str, Any]:
    """Output parameter values and artifact metadata per step, from a kfp.local run.

    kfp.local writes each task's outputs to ``<pipeline root>/<run>/<task>/executor_output.json``
    (``for-loop-N-iteration-i/<task>/`` inside loops). Lists keep their first few elements
    (their length is set by the run configuration, :func:`estimate_runtime`).
    """
    found: dict[str, Any] = {}
    for path in sorted(Path(run_root).rglob("executor_output.json")):
        key = _task_key(path.parent.name)
        data = json.loads(path.read_text())
        entry = found.setdefault(key, {"parameters": {}, "artifacts": {}})
        for name, value in (data.get("parameterValues") or {}).items():
            if isinstance(value, list) and _list_length(key, name):  # a few elements: the length is scaled
                have = entry["parameters"].setdefault(name, [])
                if isinstance(have, list):
                    have += [v for v in value if v not in have][: _SAMPLE_ELEMENTS - len(have)]
            else:
                entry["parameters"].setdefault(name, value)
        for name, arts in (data.get("artifacts") or {}).items():
            for art in arts.get("artifacts", [])[:1]:
                entry["artifacts"].setdefault(name, art.get("metadata") or {})
    if not found:
        raise FileNotFoundError(f"no executor_output.json under {run_root}: not a kfp.local run")
    return found


def _cycle(elements: list, n: int) -> list:
    return [copy.deepcopy(elements[i % len(elements)]) for i in range(n)] if elements else []


def _list_len(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


# How long the list each step returns is, from its inputs and the run's parameters, by
# "step" (its "Output") or "step.output" (SAE-SPEC §3, §6.1, §7): the initial variants
# (steps/population.py init_population: each expert at 4 sparsities, + the base; M2N2 starts
# from them too), SAE's pairs (the schedule step: archive_size // 2, one handoff URI each),
# M2N2's matings (m2n2_children) and PSO's swarm (pso_init, and pso_update's states: the base
# when included, each expert and its DARE copies). Record sets (evaluate, archive_update) are
# one handoff URI whatever their size (steps/handoff.py). Lists not listed keep the length
# measured in the local run.
def _variants(i: dict) -> int:
    return 4 * _list_len(i.get("experts")) + int(bool(i.get("include_base")))


def _particles(i: dict) -> int:
    copies = i.get("pso_dare_copies")
    return int(bool(i.get("pso_include_base"))) + _list_len(i.get("experts")) * (1 + int(copies or 0))


LIST_LENGTHS = {
    "init-population": _variants,
    "m2n2-init": _variants,
    "schedule-step": lambda i: int(i.get("archive_size") or 0) // 2,
    "m2n2-select": lambda i: int(i.get("m2n2_children") or 0),
    "pso-init": _particles,
    "pso-update.swarm": _particles,
}


def _list_length(step: str, output: str):
    """The length rule of `step`'s output list `output` (None: keep the measured length)."""
    return LIST_LENGTHS.get(f"{step}.{output}") or (LIST_LENGTHS.get(step) if output == "Output" else None)


_TYPE_DEFAULTS = {
    "STRING": "s3://bucket/run/value",
    "NUMBER_DOUBLE": 0.123456789,
    "NUMBER_INTEGER": 12,
    "BOOLEAN": True,
    "LIST": [],
    "STRUCT": {},
}


def _step_outputs(comp_name: str, comp: dict, inputs: dict, payloads: dict) -> tuple[dict, dict]:
    """(output parameter values, output artifact metadata) of one step."""
    key = _task_key(comp_name)
    sample = payloads.get(key, {})
    params = {}
    for name, spec in comp.get("outputDefinitions", {}).get("parameters", {}).items():
        value = copy.deepcopy(sample.get("parameters", {}).get(name, _TYPE_DEFAULTS.get(spec.get("parameterType"), "")))
        length = _list_length(key, name)
        if isinstance(value, list) and length:
            value = _cycle(value, length(inputs))
        params[name] = _go_value(value)
    arts = {
        name: sample.get("artifacts", {}).get(name, {})
        for name in comp.get("outputDefinitions", {}).get("artifacts", {})
    }
    return params, arts
