"""The plain bench's study presets: Table 1 and the ablations on the same runs."""

from __future__ import annotations

from saemerge.study.presets import PLAIN_ONE_SHOT, PLAIN_PRESETS
from saemerge.study.runner import run_identity
from saemerge.study.spec import load_spec


def _identity(preset: str, arm: str) -> str:
    spec = load_spec(preset)
    entry = next(e for e in spec.entries if e.arm.name == arm and e.bench_seed == 0 and e.run_seed == 0)
    return run_identity(spec, entry, "b", local=True)


def test_plain_presets_run_on_the_plain_bench_with_dare_ties():
    for name in PLAIN_PRESETS:
        spec = load_spec(name)
        assert spec.bench_size == "plain" and 0 in spec.bench_seeds
        config = spec.run_config(spec.entries[0], "s3://b/runs/x", "b")
        assert list(config.baselines) == PLAIN_ONE_SHOT and "dare_ties" in config.baselines
    assert load_spec("table1-plain").bench_seeds == (0, 1)
    assert {a.name for a in load_spec("table1-plain").arms} == {"sae-global", "sae-local", "pso", "m2n2", "dense"}


def test_the_first_block_and_the_ablations_reuse_table1_plain_runs():
    sae = _identity("table1-plain", "sae-global")
    assert _identity("table1-plain-b0", "sae-global") == sae
    assert _identity("table1-plain-b0", "dense") == _identity("table1-plain", "dense")
    assert _identity("range-plain", "range-10-60") == sae  # the default range is Table 1's SAE
    assert _identity("archive-plain", "sae-archive-8") == sae
    assert _identity("measure-plain", "zero-count") == sae
    assert _identity("range-plain", "range-20-40") != sae
    # on another bench the same arm is another run
    assert _identity("table1", "sae-global") != sae
