"""Parameter payloads of a real run (measured from a kfp.local run), and the outputs each step writes in the model."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from saemerge.pipeline.workflow_size.gojson import _go_value

# The step outputs of a local run, written by `--measure .saemerge/runs/<run-id>` (a few
# elements of the lists estimate_runtime scales; "__arguments__": the run's parameters).
# Measured on run h-sae2, 2026-11-30: `saemerge run --local --bench-size micro --steps 2
# --param archive_size=4` (opt/test sizes 6/8 per task), records handed over by URI
# (steps/handoff.py).
MEASURED_FROM = "saemerge run --local h-sae2 (micro bench, 2 generations, archive 4), 2026-11-30"
_MEASURED_JSON = r"""
{
"__arguments__": {"archive_size": 4, "attraction": "linear", "base_uri": "s3://saemerge/bench/micro-seed0-v2/models/base", "baselines": ["weight_average", "task_arithmetic", "ties"], "beta": 1.0, "competition": "local_then_global", "data_uri": "s3://saemerge/bench/micro-seed0-v2/data", "eval_batch_size": 64, "eval_device": "auto", "eval_dtype": "auto", "experts": ["s3://saemerge/bench/micro-seed0-v2/models/math", "s3://saemerge/bench/micro-seed0-v2/models/multilingual"], "gamma": 0.05, "granularity": "tensor", "include_base": false, "measure": "zero_count", "merge_device": "cpu", "opt_sizes": {"saebench_math": 6, "saebench_multilingual": 6}, "reverse": false, "run_uri": "s3://saemerge/runs/h-sae2", "s_max": 0.6, "s_min": 0.1, "score_cache": "", "scoring": "global", "seed": 0, "t0": 3, "t_mult": 2, "test_sizes": {"saebench_math": 8, "saebench_multilingual": 8}},
"archive-update": {"artifacts": {"metrics": {"accepted": 0, "best.saebench_math": 0.0, "best.saebench_multilingual": 0.0, "best_fitness": 0.029980468750000003, "best_score": 0.0, "generation": 1, "mean_fitness": 0.023730468750000004, "mean_sparsity": 0.474609375, "offspring": 2, "s_t": 0.22499999999999998}}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/archive-bba058e84c1d.parquet"]}},
"evaluate": {"artifacts": {"metrics": {"best_fitness": 0.011276584201388891, "mean_fitness": 0.011268446180555558, "scored": 2.0}}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/scored-offspring-cf0810bc5154.parquet"]}},
"final-evaluate": {"artifacts": {"best_model": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58", "content_hash": "9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58", "framework": "transformers", "id": "m-9dd9de35cacd", "origin": "expert:math@0.6", "overall_fitness": 0.07164713541666667, "overall_score": 0.041666666666666664, "s_t": 0.6, "sparsity": 0.599609375, "status": "member"}, "metrics": {"base.macro": 0.1875, "expert:math.macro": 0.1875, "expert:multilingual.macro": 0.1875, "sae.macro": 0.1875, "task_arithmetic.macro": 0.1875, "ties.macro": 0.1875, "weight_average.macro": 0.1875}}, "parameters": {"Output": [{"id": "base", "macro": 0.1875, "method": "base", "origin": "base", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/base"}, {"id": "math", "macro": 0.1875, "method": "expert:math", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/math"}, {"id": "multilingual", "macro": 0.1875, "method": "expert:multilingual", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/multilingual"}, {"id": "m-b63039bfafb3", "macro": 0.1875, "method": "weight_average", "origin": "linear {}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.0, "uri": "s3://saemerge/runs/h-sae2/models/b63039bfafb305aceaeb3c9de3f36a1222fa6be0f8c6018bc735581478b02727"}, {"id": "m-10bb40eaf148", "macro": 0.1875, "method": "task_arithmetic", "origin": "task_arithmetic alpha=0.3", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.0, "uri": "s3://saemerge/runs/h-sae2/models/10bb40eaf1484d87ffcb8cb9311fa74b74f6a94fcaa42dc543beabfa02d77ab1"}, {"id": "m-759f661513fb", "macro": 0.1875, "method": "ties", "origin": "ties {'density': 0.2, 'alpha': 1.0}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.6457790798611112, "uri": "s3://saemerge/runs/h-sae2/models/759f661513fb035ec36bfcdd05e00735fcc4696e011e0745e5a571eb25de765c"}, {"id": "m-9dd9de35cacd", "macro": 0.1875, "method": "sae", "origin": "expert:math@0.6", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.599609375, "uri": "s3://saemerge/runs/h-sae2/models/9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58"}]}},
"init-population": {"artifacts": {"metrics": {"variants": 8}}, "parameters": {"Output": [{"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.0}, {"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.1}, {"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.35}]}},
"pair-and-merge": {"artifacts": {"child": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/96bb0027b000acf0eb86787160549223862630e273277b883f16da404ec57fe0", "content_hash": "96bb0027b000acf0eb86787160549223862630e273277b883f16da404ec57fe0", "framework": "transformers", "id": "m-96bb0027b000", "lambda_mean": 0.36831275720164597, "origin": "sae", "parents": "m-2543a1d77fd7,m-9dd9de35cacd", "s_t": 0.22499999999999998, "sparsity": 0.22520616319444445, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/gen-01/handoff/child-0-32c52a1bcafb.parquet"}},
"pair-parents": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/pair-0-a2b48711631c.parquet", "s3://saemerge/runs/h-sae2/gen-01/handoff/pair-1-6df73e1879f3.parquet"]}},
"prune": {"artifacts": {"model": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "content_hash": "7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "framework": "transformers", "id": "m-7578842bbf8e", "origin": "expert:math@0", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/init/handoff/prune-m-7578842bbf8e-3503ead5367f.parquet"}},
"report": {"artifacts": {"report_html": {}, "report_md": {}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/final/report.md"}},
"sample-optimisation-set": {"artifacts": {}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/samples/gen-01"}},
"schedule-step": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/pair-0-a2b48711631c.parquet", "s3://saemerge/runs/h-sae2/gen-01/handoff/pair-1-6df73e1879f3.parquet"]}}
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
