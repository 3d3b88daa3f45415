"""A run's models attributed to its experts: per generation in the report, the pick in `saemerge inspect`.

A run directory with real tiny checkpoints (an expert and a weight average of the two) stands
in for a finished search: the populations and metrics are written by the real archive update.
"""

import pytest

from saemerge import runlog
from saemerge.attribution import generation_bests, pick_attribution
from saemerge.ops import checkpoint_content_hash, merge_checkpoints
from saemerge.report import write_report
from saemerge.runlog import RunLayout
from saemerge.steps.population import archive_update

pytestmark = pytest.mark.integration


def _record(uri, fitness: float, math: float, ml: float, born: int = -1) -> dict:
    digest = checkpoint_content_hash(uri)
    return {
        "id": runlog.member_id(digest),
        "content_hash": digest,
        "uri": str(uri),
        "parents": [],
        "origin": "test",
        "born": born,
        "sparsity": 0.0,
        "s_t": 0.0,
        "score": fitness,
        "fitness": fitness,
        "scores": {"saebench_math": math, "saebench_multilingual": ml},
        "n_scored": 8,
        "status": "candidate",
    }


@pytest.fixture
def run(tmp_path, tiny_family):
    fam = tiny_family
    root = str(tmp_path / "run")
    experts = [str(fam["expert0"]), str(fam["expert1"])]
    runlog.write_json(
        RunLayout(root).run_json, {"config": {"search": "sae"}, "experts": experts, "base": str(fam["base"])}
    )
    avg = tmp_path / "avg"
    merge_checkpoints("linear", experts, avg)
    expert = _record(fam["expert0"], 0.5, 0.9, 0.1)
    average = _record(avg, 0.6, 0.6, 0.6, born=0)
    initial, _ = archive_update(root, -1, 0.0, [], [expert], 2, "local_then_global")
    archive_update(root, 0, 0.1, initial, [average], 2, "local_then_global")
    runlog.write_json(RunLayout(root).final("best.json"), average)
    return root, expert, average


def test_generation_bests_attribute_the_best_member_once(run):
    root, expert, average = run
    layout = RunLayout(root)
    bests = generation_bests(layout)
    assert [(b["generation"], b["id"]) for b in bests] == [(-1, expert["id"]), (0, average["id"])]
    assert bests[1]["scores"] == {"saebench_math": 0.6, "saebench_multilingual": 0.6}
    assert list(bests[0]["attribution"]["coefficients"].values()) == pytest.approx([1.0, 0.0], abs=1e-6)
    assert list(bests[1]["attribution"]["coefficients"].values()) == pytest.approx([0.5, 0.5], abs=1e-5)
    cached = runlog.read_json(layout.attribution(average["content_hash"]))
    assert cached == bests[1]["attribution"] == pick_attribution(layout)


def test_report_and_inspect_show_the_attribution(run):
    root, expert, average = run
    results = [{"method": "sae", "scores": {"saebench_math": 0.5}, "macro": 0.5, "sparsity": 0.0}]
    md, html = write_report(root, results)
    assert "## The archive's best member per generation" in md and "drift.png" in md
    assert f"| 0 | {average['id']} | 0.600 | 0.600 | 0.500 | 0.500 |" in md
    assert "<h2>Generations</h2>" in html and f"<td>{average['id']}</td>" in html
    shown = runlog.describe_run(root)
    assert f"attribution of the best model {average['id']} to the experts:" in shown
    assert "coefficients expert0 0.500, expert1 0.500; residual share 0.000" in shown


def test_a_study_attributes_each_baseline_and_expert_once_per_bench(tmp_path, tiny_family, monkeypatch):
    """Two runs of one bench (run seeds 0 and 1) share their experts and weight average: each
    model is attributed once, kept in the first run, and every row of it gets the result; the
    arm's pick keeps its own and the base gets none (its task vector is zero)."""
    from saemerge.ops import attribution as ops_attribution
    from saemerge.study.collect import attribute_models

    fam = tiny_family
    experts = [str(fam["expert0"]), str(fam["expert1"])]
    avg = tmp_path / "avg"
    merge_checkpoints("linear", experts, avg)
    roots = [str(tmp_path / f"run-{seed}") for seed in (0, 1)]
    for root in roots:
        runlog.write_json(RunLayout(root).run_json, {"experts": experts, "base": str(fam["base"])})
    pick = {"coefficients": {"expert0": 0.3, "expert1": 0.7}, "residual_share": 0.2, "top_kept": {}}
    models = {"base": str(fam["base"]), "expert:expert0": experts[0], "weight_average": str(avg), "sae": None}
    runs = [
        {"bench_seed": 0, "run_seed": seed, "method": method, "run_uri": root, "model_uri": uri,
         "attribution": pick if method == "sae" else None}
        for seed, root in enumerate(roots)
        for method, uri in models.items()
    ]  # fmt: skip
    calls = []
    real = ops_attribution.attribute_checkpoint
    monkeypatch.setattr(ops_attribution, "attribute_checkpoint", lambda *a, **k: calls.append(a[0]) or real(*a, **k))

    attribute_models(runs, ["sae"])

    got = {(r["run_seed"], r["method"]): r["attribution"] for r in runs}
    assert sorted(map(str, calls)) == sorted([experts[0], str(avg)])  # once each, not once per run
    for seed in (0, 1):
        assert got[(seed, "base")] is None and got[(seed, "sae")] is pick
        assert list(got[(seed, "weight_average")]["coefficients"].values()) == pytest.approx([0.5, 0.5], abs=1e-5)
        assert list(got[(seed, "expert:expert0")]["coefficients"].values()) == pytest.approx([1.0, 0.0], abs=1e-6)
    assert got[(0, "weight_average")] == got[(1, "weight_average")]
    digest = got[(0, "weight_average")]["content_hash"]
    assert runlog.read_json(RunLayout(roots[0]).attribution(digest)) == got[(0, "weight_average")]
    assert not (tmp_path / "run-1" / "attribution").exists()

    calls.clear()  # the next report reads the first run's record back
    attribute_models([dict(r, attribution=None) for r in runs if r["method"] != "sae"], ["sae"])
    assert calls == []
