"""Study files and presets: every preset parses into runs that validate; bad study files get one line
naming the file and the problem, before anything is started or written."""

from __future__ import annotations

import pytest
import yaml

from saemerge.cli import main
from saemerge.errors import SaeMergeError
from saemerge.study.presets import PRESETS
from saemerge.study.spec import load_spec, parse_spec

GOOD = {
    "name": "pair",
    "bench": {"size": "micro"},
    "bench_seeds": [0, 1],
    "run_seeds": [0, 1, 2],
    "params": {"archive_size": 4},
    "arms": [
        {"name": "sae-global", "search": "sae"},
        {"name": "dense", "search": "sae", "params": {"s_min": 0.0, "s_max": 0.0}},
        {"name": "pso", "search": "pso", "steps": 2},
    ],
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_grid(name):
    spec = load_spec(name)
    assert spec.entries and spec.reference in {a.name for a in spec.arms}
    for entry in spec.entries[: len(spec.arms)]:
        config = spec.run_config(entry, "s3://b/runs/x", "b", "s3://b/studies/x/score-cache")
        assert config.seed == entry.run_seed and config.search == entry.arm.search
        assert config.score_cache == "s3://b/studies/x/score-cache"


def test_grid_order_keeps_paired_blocks_and_degenerate_ranges_are_accepted():
    spec = parse_spec(GOOD)
    ids = [e.id for e in spec.entries]
    assert len(ids) == 2 * 3 * 3
    assert ids[:3] == ["sae-global-b0-r0", "dense-b0-r0", "pso-b0-r0"]  # every arm of a seed pair first
    dense = spec.run_config(spec.entries[1], "s3://b/r", "b")
    assert dense.s_min == dense.s_max == 0.0  # ablations need s_min = s_max, including 0
    assert spec.run_config(spec.entries[2], "s3://b/r", "b").steps == 2
    assert spec.to_dict()["arms"][2]["steps"] == 2 and parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "change, message",
    [
        ({"params": {"archive_sise": 4}}, "unknown run parameter 'archive_sise'"),
        ({"arms": [{"name": "x", "search": "psoo"}]}, "unknown arm x: search 'psoo'"),
        ({"arms": []}, "arms: an empty grid"),
        ({"run_seeds": []}, "run_seeds: an empty grid"),
        ({"arms": [{"name": "x", "search": "sae", "params": {"s_min": 0.7, "s_max": 0.6}}]}, "s_min 0.7 is greater"),
        ({"arms": [{"name": "x", "search": "pso", "params": {"scoring": "local"}}]}, "does not take the parameter"),
        ({"params": {"seed": 3}}, "params.seed is set by the study"),
        ({"reference": "nope"}, "unknown reference arm 'nope'"),
        ({"bench": {"uri": "s3://b/bench"}}, "must contain {bench_seed}"),
    ],
)
def test_bad_study_file_one_line_and_nothing_written(tmp_path, capsys, change, message):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}))
    workdir = tmp_path / "work"
    rc = main(["study", "run", "--local", str(path), "--workdir", str(workdir)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and str(path) in err, err
    assert len(err.strip().splitlines()) == 1
    assert not workdir.exists()  # nothing started, nothing written


def test_unknown_preset_or_missing_file(tmp_path):
    with pytest.raises(SaeMergeError, match="unknown study preset 'tabel1'.*table1"):
        load_spec("tabel1")
    with pytest.raises(SaeMergeError, match="no such study file"):
        load_spec(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("arms: [unclosed")
    with pytest.raises(SaeMergeError, match="not valid YAML"):
        load_spec(str(tmp_path / "bad.yaml"))


def test_run_identity_is_what_decides_a_run_and_ablations_share_table1s_runs():
    from saemerge.study.runner import run_identity

    table1, scoring = load_spec("table1"), load_spec("scoring")
    t1 = {e.id: run_identity(table1, e, "b", local=True) for e in table1.entries}
    sc = {e.id: run_identity(scoring, e, "b", local=True) for e in scoring.entries}
    # Table 2's global and local arms are Table 1's runs (same parameters, seed and bench)
    for entry_id in ("sae-global-b0-r0", "sae-local-b0-r2"):
        assert sc[entry_id] == t1[entry_id]
    # the seed, the bench and any parameter change the run
    assert len(set(t1.values())) == len(t1)
    assert sc["gamma-0-b0-r0"] not in set(t1.values())
    # a local run completes the configuration as `saemerge run --local` does (its batch size)
    entry = table1.entries[0]
    assert run_identity(table1, entry, "b") != t1[entry.id]
    assert table1.run_config(entry, "s3://b/runs/x", "b", local=True).eval_batch_size == 64
    # where it writes and the cache it reads through do not
    spec = parse_spec(GOOD)
    entry = spec.entries[0]
    base = run_identity(spec, entry, "b")
    assert run_identity(parse_spec({**GOOD, "name": "other"}), entry, "b") == base
    assert run_identity(parse_spec({**GOOD, "params": {"archive_size": 6}}), entry, "b") != base


def test_optset_reuses_table1_and_scoring_runs_and_a_run_json_without_opt_splits_matches():
    from saemerge.study.runner import config_identity, run_identity

    optset, table1, scoring = load_spec("optset"), load_spec("table1"), load_spec("scoring")
    ids = {e.id: run_identity(optset, e, "b", local=True) for e in optset.entries}
    t1 = {e.id: run_identity(table1, e, "b", local=True) for e in table1.entries}
    sc = {e.id: run_identity(scoring, e, "b", local=True) for e in scoring.entries}
    assert len(optset.entries) == 18 and len(set(ids.values())) == 18
    assert ids["sae-48-b0-r1"] == t1["sae-global-b0-r1"] and ids["dense-48-b0-r2"] == sc["dense-b0-r2"]
    val = optset.run_config(optset.entries[1], "s3://b/runs/x", "b", local=True)
    assert optset.entries[1].arm.name == "sae-val-48" and val.splits == ("validation",)
    # a run.json written before opt_splits existed is the same run as one naming the default
    config = table1.run_config(table1.entries[0], "s3://b/runs/x", "b", local=True).to_json()
    old = {k: v for k, v in config.items() if k != "opt_splits"}
    assert config_identity(old, "v") == config_identity(config, "v")
    assert config_identity({**config, "opt_splits": "validation"}, "v") != config_identity(config, "v")
