"""The M2N2 steps on a local run: seeded mate selection from the score cache, the content-addressed
crossover (reused on retry, discarded when identical to a member), and the archive update's
records (population, offspring with reasons, metrics)."""

import json

import numpy as np
import pytest

from saemerge import runlog
from saemerge.core.m2n2 import draw_mating
from saemerge.evaluate.results import EvalResult, ExampleResult
from saemerge.ops import checkpoint_content_hash
from saemerge.runlog import GEN_METRICS, RunLayout
from saemerge.steps.evaluation import ScoreCache
from saemerge.steps.m2n2 import archive_update, crossover, mating_seed, score_matrix, select_parents

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

# examples in sample order: math a, b; multilingual c, d
EXAMPLES = [
    ("saebench_math", "a"),
    ("saebench_math", "b"),
    ("saebench_multilingual", "c"),
    ("saebench_multilingual", "d"),
]
S = {"1": [1, 1, 1, 0], "2": [1, 0, 0, 0], "3": [0, 1, 0, 1]}  # the core test's matrix: f = [2, .5, 1.5]


@pytest.fixture
def run(tmp_path):
    """A local run with a sample (2 + 2 examples) and an empty score cache."""
    root = tmp_path / "run"
    sample = RunLayout(str(root)).sample(0)
    for task, ids in (("saebench_math", "ab"), ("saebench_multilingual", "cd")):
        path = tmp_path / "run" / "samples" / "gen-00" / f"{task}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    return str(root), sample


def _record(run: str, name: str, correct: list[int], sparsity: float = 0.1) -> dict:
    """A scored record whose per-example results are in the run's score cache."""
    digest = name * 64
    ScoreCache(RunLayout(run)).add(
        digest, EvalResult([ExampleResult(t, i, bool(c)) for (t, i), c in zip(EXAMPLES, correct)])
    )
    scores = {"saebench_math": sum(correct[:2]) / 2, "saebench_multilingual": sum(correct[2:]) / 2}
    score = sum(scores.values()) / 2
    return {
        "id": runlog.member_id(digest),
        "content_hash": digest,
        "uri": f"/models/{name}",
        "scores": scores,
        "score": score,
        "fitness": score + 0.05 * sparsity,
        "sparsity": sparsity,
        "parents": [],
        "origin": name,
        "born": -1,
        "generation": -1,
        "status": "member",
        "reason": "",
    }


def test_score_matrix_and_seeded_selection(run):
    root, sample = run
    archive = [_record(root, k, v) for k, v in reversed(S.items())]  # any input order
    assert score_matrix(root, archive, sample).tolist() == [S["3"], S["2"], S["1"]]
    orders = select_parents(root, 0, archive, sample, children=5, alpha=1.0, seed=4)
    assert orders == select_parents(root, 0, archive, sample, children=5, alpha=1.0, seed=4)
    assert orders != select_parents(root, 1, archive, sample, children=5, alpha=1.0, seed=4)
    rng = np.random.default_rng(mating_seed(4, 0))
    ids = sorted(r["id"] for r in archive)
    for i, order in enumerate(orders):
        m = draw_mating(np.array([S["1"], S["2"], S["3"]]), rng)  # rows in id order
        assert (order["index"], order["a"]["id"], order["b"]["id"]) == (i, ids[m.a], ids[m.b])
        assert (order["t"], order["split_u"], order["p_a"], order["p_b"]) == (m.t, m.split_u, m.p_a, m.p_b)
        assert order["archive_hashes"] == sorted(r["content_hash"] for r in archive)
        assert order["a"]["uri"] and order["a"]["id"] != order["b"]["id"]


def test_archive_update_competes_child_by_child(run):
    root, sample = run
    archive = [_record(root, k, v) for k, v in S.items()]
    winner = dict(
        _record(root, "4", [0, 0, 1, 1], sparsity=0.0),
        index=0,
        parents=[archive[0]["id"], archive[2]["id"]],
        born=0,
        generation=0,
        status="candidate",
    )
    loser = dict(_record(root, "5", [1, 0, 0, 0]), index=1, born=0, generation=0, status="candidate")
    dropped = dict(
        winner,
        id="m-666666666666",
        content_hash="6" * 64,
        index=2,
        status="discarded",
        reason="identical to an archive member; not evaluated",
    )
    new, summary = archive_update(root, 0, archive, [loser, dropped, winner], sample, archive_size=3, alpha=1.0)
    # the winner (child 0) replaces member 2 (f = 0.5 < 1); then the loser (f = 0.5) does not beat 1.0
    assert [r["id"] for r in new] == sorted([archive[0]["id"], winner["id"], archive[2]["id"]])
    assert all(r["generation"] == 0 and r["status"] == "member" for r in new)
    layout = RunLayout(root)
    kids = {r["id"]: r for r in layout.read_population(0, "offspring")}
    assert kids[winner["id"]]["status"] == "accepted"
    assert kids[winner["id"]]["reason"] == f"replaced {archive[1]['id']}: shared fitness 1.0000 > 0.5000"
    assert kids[loser["id"]]["status"] == "rejected" and "below 1.0000" in kids[loser["id"]]["reason"]
    assert kids[dropped["id"]]["status"] == "discarded"
    assert [r["id"] for r in layout.read_population(0)] == [r["id"] for r in new]
    metrics = runlog.read_json(layout.metrics(0))
    assert metrics == summary and set(GEN_METRICS) <= set(metrics)
    assert (metrics["accepted"], metrics["offspring"], metrics["s_t"]) == (1, 3, 0.0)
    best = max(new, key=lambda r: r["fitness"])
    assert (
        metrics["best_fitness"] == best["fitness"] and metrics["best.saebench_math"] == best["scores"]["saebench_math"]
    )
    # over the new archive [1,1,1,0], [0,0,1,1], [0,1,0,1]: z = [1, 2, 2, 2], f = [2, 1, 1]
    assert (metrics["best_shared_fitness"], metrics["mean_shared_fitness"]) == (2.0, 4 / 3)


def test_children_join_without_competing_while_the_archive_has_room(run):
    root, sample = run
    archive = [_record(root, "1", S["1"])]
    child = dict(_record(root, "2", [0, 0, 0, 0]), index=0, born=0, generation=0)
    new, summary = archive_update(root, 0, archive, [child], sample, archive_size=2, alpha=1.0)
    assert len(new) == 2 and summary["accepted"] == 1
    assert RunLayout(root).read_population(0, "offspring")[0]["reason"] == "added: the archive had room"


def test_crossover_is_content_addressed_and_discards_a_copy_of_a_member(tiny_family, tmp_path):
    root = str(tmp_path / "run")
    a = {
        "id": "m-a",
        "content_hash": checkpoint_content_hash(tiny_family["expert0"]),
        "uri": str(tiny_family["expert0"]),
    }
    b = {
        "id": "m-b",
        "content_hash": checkpoint_content_hash(tiny_family["expert1"]),
        "uri": str(tiny_family["expert1"]),
    }
    order = {"generation": 3.0, "index": 1.0, "a": a, "b": b, "t": 0.4, "split_u": 0.5, "archive_hashes": []}
    child = crossover(root, order, base_uri=str(tiny_family["base"]))
    assert child["parents"] == ["m-a", "m-b"] and (child["born"], child["generation"], child["index"]) == (3, 3, 1)
    assert child["origin"].startswith("m2n2 t=0.400 split ") and child["status"] == "candidate"
    assert checkpoint_content_hash(child["uri"]) == child["content_hash"]
    assert 0.0 <= child["sparsity"] < 0.05  # dense: weight-space SLERP moves every entry off the base
    again = crossover(root, order, base_uri=str(tiny_family["base"]))  # a retry reuses the recipe
    assert again == child and len(list((tmp_path / "run" / "recipes").iterdir())) == 1
    # t = 0 with split 0 is B itself: identical to an archive member, discarded before evaluation
    copy = crossover(
        root, dict(order, t=0.0, split_u=0.0, archive_hashes=[b["content_hash"]]), base_uri=str(tiny_family["base"])
    )
    assert copy["content_hash"] == b["content_hash"] and copy["status"] == "discarded"


def test_a_child_replaced_by_a_later_sibling_says_so(run):
    root, sample = run
    archive = [_record(root, k, v) for k, v in S.items()]
    first = dict(_record(root, "4", [0, 0, 1, 1]), index=0, born=0, generation=0)
    # over m1, first, m3 and itself: z = [2, 2, 3, 3], f = [4/3, 2/3, 5/6] and 7/6 > 2/3
    second = dict(_record(root, "5", [1, 0, 1, 1]), index=1, born=0, generation=0)
    new, summary = archive_update(root, 0, archive, [second, first], sample, archive_size=3, alpha=1.0)
    assert [r["id"] for r in new] == [archive[0]["id"], archive[2]["id"], second["id"]]
    kids = {r["id"]: r for r in RunLayout(root).read_population(0, "offspring")}
    assert kids[first["id"]]["status"] == "accepted" and kids[second["id"]]["status"] == "accepted"
    assert kids[first["id"]]["reason"].endswith(f"; later replaced by {second['id']}")
    assert kids[second["id"]]["reason"] == f"replaced {first['id']}: shared fitness 1.1667 > 0.6667"
    assert summary["accepted"] == 2
