"""The studies that mirror the paper's tables (and one it does not have), as study dicts.

Every preset runs on the tiny bench by default; the grid sizes are the smallest that give
intervals worth reading (at least 3 run seeds), Table 1 with 5 run seeds on 2 benches. Every
preset scores the one-shot merges too (reference lines, cheap through the shared score cache),
and its default arms are configured exactly as Table 1's: an ablation on the same benches and
seeds reuses Table 1's runs (`study run` reuses any finished run of the same identity).
"""

from __future__ import annotations

from typing import Any

ONE_SHOT = ["weight_average", "task_arithmetic", "ties", "rankmean"]
# The tiny bench's whole test splits (bench version 2): 1,000 math problems, 1,152 multiple-choice
# items (192 facts x languages, 6 phrasings each). One binomial standard error <= 1.6 points.
STUDY_TEST_SIZES = {"saebench_math": 1000, "saebench_multilingual": 1152}


def _preset(name: str, description: str, arms: list[dict], **extra: Any) -> dict[str, Any]:
    study = {
        "name": name,
        "description": description,
        "bench": {"size": "tiny"},
        "bench_seeds": [0],
        "run_seeds": [0, 1, 2],
        "params": {"baselines": ONE_SHOT, "test_sizes": STUDY_TEST_SIZES},
        "arms": arms,
    }
    study.update(extra)
    return study


def _sae(name: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "search": "sae", "params": params}


PRESETS: dict[str, dict[str, Any]] = {
    p["name"]: p
    for p in (
        _preset(
            "table1",
            "Table 1: SAE (global and local scoring) against PSO-Merging, M2N2 and the one-shot merges",
            [
                _sae("sae-global", scoring="global"),
                _sae("sae-local", scoring="local"),
                {"name": "pso", "search": "pso", "params": {}},
                {"name": "m2n2", "search": "m2n2", "params": {}},
            ],
            bench_seeds=[0, 1],
            run_seeds=[0, 1, 2, 3, 4],
            params={"baselines": ONE_SHOT, "test_sizes": STUDY_TEST_SIZES},
        ),
        _preset(
            "scoring",
            "Table 2: sparsity scoring (global vs local), no sparsity in the mixing ratio (beta 0) or "
            "in fitness (gamma 0), and dense evolution (pruning off: s_min = s_max = 0)",
            [
                _sae("sae-global", scoring="global"),
                _sae("sae-local", scoring="local"),
                _sae("beta-0", beta=0.0),
                _sae("gamma-0", gamma=0.0),
                _sae("dense", s_min=0.0, s_max=0.0),
            ],
        ),
        _preset(
            "archive",
            "Table 3: archive size 4 / 8 / 16 for SAE; swarm size for PSO (DARE copies per expert 0 / 1 / 3: "
            "3, 5 and 9 particles with the base)",
            [
                *({"name": f"sae-archive-{n}", "search": "sae", "params": {"archive_size": n}} for n in (4, 8, 16)),
                *({"name": f"pso-copies-{c}", "search": "pso", "params": {"pso_dare_copies": c}} for c in (0, 1, 3)),
            ],
            reference="sae-archive-8",
        ),
        _preset(
            "range",
            "Table 4: sparsity-rate range [s_min, s_max]: the default 0.1-0.6, narrower 0.2-0.4, wider 0.05-0.9",
            [
                _sae("range-10-60", s_min=0.1, s_max=0.6),
                _sae("range-20-40", s_min=0.2, s_max=0.4),
                _sae("range-5-90", s_min=0.05, s_max=0.9),
            ],
        ),
        _preset(
            "measure",
            "Table 5: the sparsity measure rho: zero count against the Hoyer measure",
            [_sae("zero-count", measure="zero_count"), _sae("hoyer", measure="hoyer")],
        ),
        _preset(
            "schedule",
            "Table 6 (s_min 0.05, s_max 0.9): T_0 3 (default) and 1, no grow (T_mult 1), and a constant "
            "sparsity (s_min = s_max = 0.35)",
            [
                _sae("t0-3", t0=3),
                _sae("t0-1", t0=1),
                _sae("no-grow", t_mult=1),
                _sae("constant", s_min=0.35, s_max=0.35),
            ],
            params={"s_min": 0.05, "s_max": 0.9, "baselines": ONE_SHOT, "test_sizes": STUDY_TEST_SIZES},
        ),
        _preset(
            "optset",
            "Where the optimisation set draws from and how large it is: SAE global and dense evolution "
            "(s_min = s_max = 0), each at 48 and 200 items per task and generation from train + validation "
            "(the experts' training items included) and at 48 from validation only (items no expert "
            "trained on); beside the one-shot merges",
            [
                *(
                    {"name": f"{name}-{tag}", "search": "sae", "params": {**params, **opt}}
                    for name, params in (("sae", {"scoring": "global"}), ("dense", {"s_min": 0.0, "s_max": 0.0}))
                    for tag, opt in (
                        ("48", {}),
                        ("val-48", {"opt_splits": "validation"}),
                        ("200", {"opt_sizes": {"saebench_math": 200, "saebench_multilingual": 200}}),
                    )
                ),
            ],
            reference="sae-48",
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# The plain bench (issue 32): the tiny bench's data, tokenizer and base with experts fine-tuned
# plainly (no pull to the base, no scale cycle), where one-shot merges fail. Fixed before any
# search ran on it. Every preset scores DARE-TIES too, and all of them have the same one-shot
# list and the same Table 1 arm configurations, so the ablations reuse Table 1's runs.

PLAIN_ONE_SHOT = [*ONE_SHOT, "dare_ties"]
_PLAIN_PARAMS = {"baselines": PLAIN_ONE_SHOT, "test_sizes": STUDY_TEST_SIZES}
_DENSE = {"s_min": 0.0, "s_max": 0.0}  # dense evolution: SAE with pruning off


def _on_plain(study: dict[str, Any], name: str, description: str, **extra: Any) -> dict[str, Any]:
    """``study`` moved to the plain bench (bench seed 0, run seeds 0-2 unless ``extra`` says)."""
    params = {**study["params"], **_PLAIN_PARAMS}
    return {
        **study,
        "name": name,
        "description": description,
        "bench": {"size": "plain"},
        "bench_seeds": [0],
        "run_seeds": [0, 1, 2],
        "params": params,
        **extra,
    }


_TABLE1_PLAIN_ARMS = [
    _sae("sae-global", scoring="global"),
    _sae("sae-local", scoring="local"),
    {"name": "pso", "search": "pso", "params": {}},
    {"name": "m2n2", "search": "m2n2", "params": {}},
    _sae("dense", **_DENSE),
]

PLAIN_PRESETS: dict[str, dict[str, Any]] = {
    p["name"]: p
    for p in (
        _on_plain(
            {"params": {}, "arms": _TABLE1_PLAIN_ARMS, "reference": "sae-global"},
            "table1-plain",
            "Table 1 on the plain bench: SAE (global and local), PSO-Merging, M2N2 and dense evolution "
            "(SAE with pruning off) beside the one-shot merges (DARE-TIES included)",
            bench_seeds=[0, 1],
        ),
        # bench seed 0 of table1-plain only: the first block to run (its runs are table1-plain's)
        _on_plain(
            {"params": {}, "arms": _TABLE1_PLAIN_ARMS, "reference": "sae-global"},
            "table1-plain-b0",
            "Table 1 on the plain bench, bench seed 0 only (the same runs as table1-plain's bench seed 0)",
        ),
        *(
            _on_plain(PRESETS[name], f"{name}-plain", f"{PRESETS[name]['description']}; on the plain bench")
            for name in ("archive", "range", "measure", "schedule")
        ),
    )
}
PRESETS.update(PLAIN_PRESETS)
