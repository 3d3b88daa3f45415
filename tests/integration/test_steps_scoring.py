"""The scoring steps with the scripted model at lm-eval's seam: the score cache, fitness, the final table.

The models are answer keys published like checkpoints (a directory with a manifest); the
scripted lm-eval model answers from them, and everything after it (prompts, filters, metrics,
the mapping back to example ids, the cache) is real.
"""

from __future__ import annotations

import contextlib
import functools
import json

import pyarrow as pa
import pytest

from saemerge import runlog, storage
from saemerge.compute import summarize
from saemerge.evaluate.evaluator import Evaluator
from saemerge.evaluate.results import EvalResult, ExampleResult
from saemerge.evaluate.taskspec import read_jsonl
from saemerge.runlog import RunLayout
from saemerge.steps.evaluation import ScoreCache, ensure_generation_sample, evaluate_candidates, score_models
from saemerge.steps.final import final_evaluate
from tests.support.scripted_lm import ANSWER_KEY, gold_answer

pytestmark = pytest.mark.integration

TASKS = ("saebench_math", "saebench_multilingual")


def _wrong(answer: str) -> str:
    return ("B" if answer == "A" else "A") if len(answer) == 1 and answer.isalpha() else answer + "1"


def publish_answer_key(uri: str, data_dir, right: float) -> dict:
    """A 'model': answers for every doc of the data, the first `right` fraction of each task right."""
    key = {}
    for task_dir in ("math", "multilingual"):
        for split in ("train", "validation", "test"):
            path = data_dir / task_dir / f"{split}.jsonl"
            if path.exists():
                docs = read_jsonl(path)
                cut = int(round(right * len(docs)))
                key.update({d["id"]: gold_answer(d) if i < cut else _wrong(gold_answer(d)) for i, d in enumerate(docs)})
    with storage.local_output(uri) as out:
        (out / ANSWER_KEY).write_text(json.dumps(key))
    manifest = storage.read_manifest(uri)
    digest = manifest.get("content_hash") or manifest["files_hash"]
    return {"id": runlog.member_id(digest), "content_hash": digest, "uri": uri, "sparsity": 0.2, "status": "candidate"}


class CountingEvaluator:
    """The real Evaluator with the scripted model, counting what it is asked to score."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.opened = 0
        self.scored: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def __call__(self, tasks):
        self.opened += 1
        with Evaluator(tasks, model=self.model_name, device="cpu") as ev:
            real = ev.score

            def score(model_dir, samples, *, already_scored=None):
                seen = {(r.task, r.example_id) for r in already_scored.per_example} if already_scored else set()
                self.scored += [
                    (t, str(d["id"])) for t, ds in samples.items() for d in ds if (t, str(d["id"])) not in seen
                ]
                return real(model_dir, samples, already_scored=already_scored)

            ev.score = score
            yield ev


@pytest.fixture
def run_with_models(tmp_path, micro_bench):
    run = str(tmp_path / "run")
    runlog.write_json(RunLayout(run).run_json, {"config": {}})  # the init step's record; default opt_splits
    data = micro_bench / "data"
    good = publish_answer_key(str(tmp_path / "models" / "good"), data, right=1.0)
    bad = publish_answer_key(str(tmp_path / "models" / "bad"), data, right=0.0)
    return run, data, good, bad


def test_score_cache_adds_and_restricts_without_lm_eval(tmp_path):
    cache = ScoreCache(RunLayout(str(tmp_path / "run")))
    docs = {"saebench_math": [{"id": "a"}, {"id": "b"}]}
    assert cache.get("h") is None and cache.missing("h", docs) == docs
    row = functools.partial(ExampleResult, task="saebench_math", answer="1", target="1")
    assert cache.add("h", EvalResult([row(example_id="a", correct=True)])) == {("saebench_math", "a")}
    assert cache.missing("h", docs) == {"saebench_math": [{"id": "b"}]}
    assert cache.add("h", EvalResult([row(example_id="a", correct=True), row(example_id="b", correct=False)])) == {
        ("saebench_math", "b")
    }
    again = ScoreCache(RunLayout(str(tmp_path / "run")))  # read back from the run, not from memory
    assert again.missing("h", docs) == {}
    assert [r.correct for r in again.on("h", docs).per_example] == [True, False]
    with pytest.raises(RuntimeError, match="not scored"):
        again.on("h", {"saebench_math": [{"id": "c"}]})


def test_evaluate_candidates_scores_through_the_cache(run_with_models, scripted_lm):
    run, data, good, bad = run_with_models
    evaluator = CountingEvaluator(scripted_lm)
    sample0 = ensure_generation_sample(run, 0, str(data), {t: 4 for t in TASKS}, seed=0)
    scored = evaluate_candidates(
        run, 0, "archive", [good, bad, dict(bad, status="discarded", uri="")], sample0, gamma=0.5, evaluator=evaluator
    )
    assert evaluator.opened == 1  # one evaluator serves every model of the step
    assert len(evaluator.scored) == 2 * 8
    assert scored[0]["score"] == 1.0 and scored[0]["fitness"] == pytest.approx(1.0 + 0.5 * 0.2)
    assert scored[1]["score"] == 0.0 and scored[1]["scores"] == {t: 0.0 for t in TASKS}
    assert "score" not in scored[2]  # discarded offspring pass through unscored

    # The next generation's sample overlaps the first in some examples: only new ones are evaluated.
    sample1 = ensure_generation_sample(run, 1, str(data), {t: 6 for t in TASKS}, seed=0)
    ids0 = {(t, str(d["id"])) for t, ds in _docs(sample0).items() for d in ds}
    ids1 = {(t, str(d["id"])) for t, ds in _docs(sample1).items() for d in ds}
    evaluator.scored.clear()
    rescored = evaluate_candidates(run, 1, "archive", [good], sample1, gamma=0.5, evaluator=evaluator)
    assert set(evaluator.scored) == ids1 - ids0
    assert rescored[0]["n_scored"] == len(ids1) and rescored[0]["score"] == 1.0
    table = runlog.read_table(RunLayout(run).scores(1, "archive"))
    fresh = {(r["task"], r["example_id"]) for r in table.to_pylist() if r["fresh"]}
    assert fresh == ids1 - ids0 and table.num_rows == len(ids1)

    evaluator.scored.clear()
    evaluate_candidates(run, 1, "archive", [good], sample1, gamma=0.5, evaluator=evaluator)
    assert evaluator.scored == [] and evaluator.opened == 2  # all cached: opened, never asked
    # the rerun kept the first attempt's record of what it evaluated, and added its own
    first = runlog.read_table(RunLayout(run).scores(1, "archive")).to_pylist()
    assert {(r["task"], r["example_id"]) for r in first if r["fresh"]} == ids1 - ids0
    again = runlog.read_table(f"{run}/gen-01/scores-archive.attempt-2.parquet").to_pylist()
    assert len(again) == len(ids1) and not any(r["fresh"] for r in again)
    # The run's compute counts each stage's examples once: the rerun's rows are the first attempt's.
    spent = summarize(RunLayout(run))
    assert spent["examples_fresh"] == 2 * 8 + len(ids1 - ids0)
    assert spent["examples_cached"] == len(ids1 & ids0)
    assert spent["models_evaluated"] == 2


def test_an_evaluate_step_builds_its_lm_eval_tasks_once(run_with_models, scripted_lm, monkeypatch):
    """Several models, each lacking a different part of the sample: one TaskManager.load per step."""
    from lm_eval.tasks import TaskManager

    run, data, good, bad = run_with_models
    half = publish_answer_key(str(run) + "-models/half", data, right=0.5)
    loads = []
    real_load = TaskManager.load
    monkeypatch.setattr(TaskManager, "load", lambda self, *a, **k: loads.append(a) or real_load(self, *a, **k))
    evaluator = CountingEvaluator(scripted_lm)
    sample0 = ensure_generation_sample(run, 0, str(data), {t: 4 for t in TASKS}, seed=0)
    evaluate_candidates(run, 0, "archive", [good], sample0, gamma=0.5, evaluator=evaluator)
    evaluate_candidates(run, 0, "offspring", [bad], sample0, gamma=0.5, evaluator=evaluator)
    assert len(loads) == 2  # one per step
    # the next step: good lacks the new examples only, bad too, half lacks all of them
    sample1 = ensure_generation_sample(run, 1, str(data), {t: 6 for t in TASKS}, seed=0)
    loads.clear()
    evaluator.scored.clear()
    scored = evaluate_candidates(run, 1, "archive", [good, bad, half], sample1, gamma=0.5, evaluator=evaluator)
    assert len(loads) == 1
    ids0 = {(t, str(d["id"])) for t, ds in _docs(sample0).items() for d in ds}
    ids1 = {(t, str(d["id"])) for t, ds in _docs(sample1).items() for d in ds}
    assert len(evaluator.scored) == 2 * len(ids1 - ids0) + len(ids1)
    assert [c["score"] for c in scored][:2] == [1.0, 0.0]
    # each model's rows are its own answers: half is right exactly where its answer key is
    with storage.local_input(half["uri"]) as d:
        key = json.loads((d / ANSWER_KEY).read_text())
    gold = {(t, str(d["id"])): gold_answer(d) for t, ds in _docs(sample1).items() for d in ds}
    table = runlog.read_table(RunLayout(run).scores(1, "archive")).to_pylist()
    rows = {(r["task"], r["example_id"]): r["correct"] for r in table if r["model_id"] == half["id"]}
    assert rows == {k: key[k[1]] == g for k, g in gold.items()} and 0 < sum(rows.values()) < len(rows)


def test_score_models_merges_duplicate_models(run_with_models, scripted_lm):
    run, data, good, _ = run_with_models
    evaluator = CountingEvaluator(scripted_lm)
    sample = ensure_generation_sample(run, 0, str(data), {t: 3 for t in TASKS}, seed=1)
    with storage.local_input(sample) as d:
        from saemerge.steps.evaluation import read_sample

        docs = read_sample(d)
    out = score_models(ScoreCache(RunLayout(run)), [good, dict(good, id="twin")], docs, evaluator)
    assert list(out) == [good["content_hash"]] and len(evaluator.scored) == 6


def test_final_evaluate_writes_the_results_table(run_with_models, scripted_lm):
    run, data, good, bad = run_with_models
    evaluator = CountingEvaluator(scripted_lm)
    half = publish_answer_key(str(run_with_models[0]) + "-models/half", data, right=0.5)
    sample0 = ensure_generation_sample(run, 0, str(data), {t: 4 for t in TASKS}, seed=0)
    archive = evaluate_candidates(run, 0, "archive", [half, good], sample0, gamma=0.05, evaluator=evaluator)
    rows = final_evaluate(
        run,
        archive,
        [bad["uri"], half["uri"]],
        good["uri"],
        str(data),
        {t: 5 for t in TASKS},
        [],
        seed=0,
        gamma=0.05,
        evaluator=evaluator,
    )
    by_method = {r["method"]: r for r in rows}
    assert list(by_method) == ["base", "expert:bad", "expert:half", "sae"]
    assert by_method["base"]["macro"] == 1.0 and by_method["expert:bad"]["macro"] == 0.0
    assert by_method["sae"]["id"] == good["id"]  # the archive member with the best fitness over its examples
    layout = RunLayout(run)
    assert [r["method"] for r in layout.read_results()] == list(by_method)
    assert layout.read_results()[0]["scores"] == {t: 1.0 for t in TASKS}
    scores = runlog.read_table(layout.final("scores.parquet"))
    assert scores.num_rows == 4 * 10 and set(scores.column("method").to_pylist()) == set(by_method)
    assert runlog.read_json(layout.final("best.json"))["id"] == good["id"]
    assert isinstance(scores, pa.Table)


def _docs(sample_uri: str) -> dict:
    from saemerge.steps.evaluation import read_sample

    with storage.local_input(sample_uri) as d:
        return read_sample(d)


def test_the_production_factory_keeps_its_evaluator_across_rounds(monkeypatch):
    """final_evaluate opens the evaluator twice (task-arithmetic candidates, then the test set)."""
    import saemerge.evaluate.evaluator as evaluator_module
    from saemerge.steps.evaluation import lm_eval_evaluator

    built, closed = [], []

    class Stub:
        def __init__(self, tasks, **kwargs):
            built.append((tuple(tasks.names), kwargs))  # the task set the factory resolved

        def close(self):
            closed.append(True)

    monkeypatch.setattr(evaluator_module, "Evaluator", Stub)
    factory = lm_eval_evaluator("cpu", "float32", 8)
    with factory(TASKS) as first:
        pass
    with factory(TASKS) as second:
        assert second is first
    assert built == [(TASKS, {"device": "cpu", "dtype": "float32", "batch_size": 8})] and not closed
    with factory(TASKS[:1]) as other:  # other tasks: a new evaluator, the old one closed
        assert other is not first
    assert len(built) == 2 and len(closed) == 1
    with pytest.raises(RuntimeError), factory(TASKS[:1]):
        raise RuntimeError("scoring failed")
    assert len(closed) == 2  # an evaluator that failed is not handed out again
    with factory(TASKS[:1]):
        pass
    assert len(built) == 3
    del factory
    assert len(closed) == 3  # collected with its factory


def test_runs_sharing_a_score_cache_score_a_model_once_and_select_on_their_own_examples(
    tmp_path, run_with_models, scripted_lm
):
    """Two runs (two seeds) with one `score_cache`: what run a scored, run b never evaluates again;
    run b's choice of its best member counts only run b's optimisation examples, not run a's
    samples nor the test rows that run a's final step wrote into the shared cache."""
    from saemerge.config import RunConfig
    from saemerge.steps.evaluation import cache_identity
    from saemerge.steps.final import optimisation_keys

    _, data, good, bad = run_with_models
    half = publish_answer_key(str(tmp_path / "models" / "half"), data, right=0.5)
    shared = str(tmp_path / "shared-cache")
    evaluator = CountingEvaluator(scripted_lm)
    finals = {}
    for name, seed in (("a", 0), ("b", 1)):
        run = str(tmp_path / name)
        config = RunConfig.from_params(
            {
                "run_uri": run,
                "experts": [bad["uri"], half["uri"]],
                "base_uri": good["uri"],
                "data_uri": str(data),
                "seed": seed,
                "score_cache": shared,
                "opt_sizes": {t: 4 for t in TASKS},
                "test_sizes": {t: 5 for t in TASKS},
            }
        )
        runlog.write_json(RunLayout(run).run_json, {"config": config.to_json()})
        sample = ensure_generation_sample(run, 0, str(data), config.opt_sizes, seed=seed)
        evaluator.scored.clear()
        archive = evaluate_candidates(run, 0, "archive", [half, good], sample, gamma=0.05, evaluator=evaluator)
        opt_scored = list(evaluator.scored)
        evaluator.scored.clear()
        final_evaluate(
            run, archive, config.experts, good["uri"], str(data), config.test_sizes, [],
            seed=seed, gamma=0.05, evaluator=evaluator,
        )  # fmt: skip
        finals[name] = (set(opt_scored), set(evaluator.scored))
        identity = cache_identity(config.to_json())

    (a_opt, a_test), (b_opt, b_test) = finals["a"], finals["b"]
    # The base and experts are the same models: run b scores only the test items run a's draw lacked
    # (a study draws the whole test split, so there it scores none), and only new optimisation items.
    assert a_test and not b_test & a_test
    assert b_opt and not b_opt & a_opt
    assert storage.exists(f"{shared}/{identity}/{half['content_hash']}.parquet")
    assert not storage.exists(RunLayout(str(tmp_path / "b")).score_cache(half["content_hash"]))

    layout_b = RunLayout(str(tmp_path / "b"))
    keys_b = optimisation_keys(layout_b)
    assert keys_b == {(t, str(d["id"])) for t, ds in _docs(layout_b.sample(0)).items() for d in ds}
    own = ScoreCache.for_run(layout_b).on(half["content_hash"], _docs(layout_b.sample(0)))
    best = runlog.read_json(layout_b.final("best.json"))
    if best["id"] == half["id"]:
        assert best["overall_score"] == pytest.approx(sum(own.per_task.values()) / len(own.per_task))
    cached_half = ScoreCache.for_run(layout_b).get(half["content_hash"])
    assert len(cached_half.per_example) > len(keys_b)  # the shared file holds more than run b's examples
