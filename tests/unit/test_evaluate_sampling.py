"""Optimisation sets and test subsets: splits, seeding, stratification, few-shot examples."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from saemerge.errors import SaeMergeError
from saemerge.evaluate.sampling import draw_test_set, proportional_allocation, sample_optimisation_set
from saemerge.evaluate.taskset import get_task, parse_tasks
from saemerge.evaluate.taskspec import load_split, read_jsonl
from tests.support.fixtures import write_bench_data, write_real_data

BENCH = ["saebench_math", "saebench_multilingual"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench_data(tmp_path_factory.mktemp("bench"), {"train": 40, "validation": 10, "test": 60})


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return write_real_data(
        tmp_path_factory.mktemp("real"), gsm8k={"train": 12, "test": 5}, languages={"en": 4, "de": 2, "zh": 1}
    )


def ids(path):
    return [d["id"] for d in read_jsonl(path)]


# -- proportional allocation ----------------------------------------------------------------
def test_optimisation_set_draws_only_the_splits_asked_for(bench, tmp_path):
    val = sample_optimisation_set(
        BENCH, 10, data=bench, seed=0, generation=0, out_dir=tmp_path / "v", splits=["validation"]
    )
    for path in val.values():
        assert sorted(ids(path)) == sorted(set(ids(path))) and all("-validation-" in i for i in ids(path))
        assert len(ids(path)) == 10  # the whole validation split
    with pytest.raises(SaeMergeError, match="asks for 11 examples but validation .* holds 10"):
        sample_optimisation_set(
            BENCH, 11, data=bench, seed=0, generation=0, out_dir=tmp_path / "x", splits=["validation"]
        )
    both = sample_optimisation_set(BENCH, 50, data=bench, seed=0, generation=0, out_dir=tmp_path / "b")
    assert ids(both["saebench_math"]) == ids(
        sample_optimisation_set(
            BENCH, 50, data=bench, seed=0, generation=0, out_dir=tmp_path / "c", splits=["train", "validation"]
        )["saebench_math"]
    )


def test_allocation_sums_and_stays_within_strata():
    counts = {"en": 117, "de": 61, "sw": 23, "zh": 1}
    for n in (0, 1, 7, 100, 201, 202):
        shares = proportional_allocation(counts, n)
        assert sum(shares.values()) == n
        assert all(0 <= shares[k] <= counts[k] for k in counts)
        # each share is its exact quota rounded down or up
        for k, c in counts.items():
            assert abs(shares[k] - n * c / sum(counts.values())) < 1


def test_allocation_rounds_by_largest_remainder_deterministically():
    assert proportional_allocation({"en": 50, "de": 30, "sw": 20}, 7) == {"de": 2, "en": 4, "sw": 1}
    # equal remainders: the larger stratum first, then the name
    assert proportional_allocation({"a": 1, "b": 3}, 2) == {"a": 0, "b": 2}
    assert proportional_allocation({"b": 1, "a": 1}, 1) == {"a": 1, "b": 0}
    with pytest.raises(ValueError):
        proportional_allocation({"a": 1}, 2)


# -- optimisation sets ----------------------------------------------------------------------
def test_optimisation_set_never_touches_test(bench, tmp_path):
    # a test split that cannot even be parsed: sampling must not read it
    for task in ("math", "multilingual"):
        (bench / "data" / task / "test.jsonl").rename(bench / "data" / task / "test.jsonl.bak")
        (bench / "data" / task / "test.jsonl").write_text("not json\n")
    try:
        out = sample_optimisation_set(BENCH, 50, data=bench, seed=3, generation=0, out_dir=tmp_path)
    finally:
        for task in ("math", "multilingual"):
            (bench / "data" / task / "test.jsonl.bak").replace(bench / "data" / task / "test.jsonl")
    for task, path in out.items():
        got = ids(path)
        assert len(got) == len(set(got)) == 50
        assert all("-train-" in i or "-validation-" in i for i in got), task
        # both pool splits are drawn from
        assert any("-validation-" in i for i in got) and any("-train-" in i for i in got)


def test_optimisation_set_is_seeded_by_run_seed_and_generation(bench, tmp_path):
    def draw(seed, gen, name):
        return ids(
            sample_optimisation_set(
                ["saebench_math"], 10, data=bench, seed=seed, generation=gen, out_dir=tmp_path / name
            )["saebench_math"]
        )

    first = draw(1, 0, "a")
    assert draw(1, 0, "b") == first
    assert draw(1, 1, "c") != first
    assert draw(2, 0, "d") != first


def test_optimisation_set_rows_are_the_source_rows(bench, tmp_path):
    out = sample_optimisation_set(["saebench_multilingual"], 5, data=bench, seed=0, generation=0, out_dir=tmp_path)
    pool = {
        r["id"]: r
        for r in load_split(get_task("saebench_multilingual"), bench / "data", "train")
        + load_split(get_task("saebench_multilingual"), bench / "data", "validation")
    }
    for row in read_jsonl(out["saebench_multilingual"]):
        assert row == pool[row["id"]]  # the bench is zero-shot: nothing attached


def test_bench_directory_or_data_root_both_accepted(bench, tmp_path):
    a = sample_optimisation_set(BENCH, 4, data=bench, seed=0, generation=0, out_dir=tmp_path / "a")
    b = sample_optimisation_set(BENCH, 4, data=bench / "data", seed=0, generation=0, out_dir=tmp_path / "b")
    assert [ids(a[t]) for t in BENCH] == [ids(b[t]) for t in BENCH]


# -- test subsets ---------------------------------------------------------------------------
def test_draw_test_set_is_stratified_by_language(bench, tmp_path):
    full = read_jsonl(bench / "data" / "multilingual" / "test.jsonl")
    counts = Counter(r["language"] for r in full)
    assert len(counts) == 3 and len(set(counts.values())) == 3  # uneven mix, so the test means something
    out = draw_test_set(["saebench_multilingual"], 20, data=bench, seed=5, out_dir=tmp_path)
    rows = read_jsonl(out["saebench_multilingual"])
    assert len(rows) == 20
    assert all(r["id"].startswith("ml-test-") for r in rows)
    assert dict(Counter(r["language"] for r in rows)) == {
        k: v for k, v in proportional_allocation(counts, 20).items() if v
    }
    # the draw within strata is seeded
    again = draw_test_set(["saebench_multilingual"], 20, data=bench, seed=5, out_dir=tmp_path / "again")
    other = draw_test_set(["saebench_multilingual"], 20, data=bench, seed=6, out_dir=tmp_path / "other")
    assert ids(again["saebench_multilingual"]) == ids(out["saebench_multilingual"])
    assert ids(other["saebench_multilingual"]) != ids(out["saebench_multilingual"])


def test_draw_test_set_without_size_is_the_whole_test_split(bench, tmp_path):
    out = draw_test_set(BENCH, None, data=bench, seed=0, out_dir=tmp_path)
    assert ids(out["saebench_math"]) == [f"math-test-{i}" for i in range(60)]
    assert out["saebench_math"].name == "saebench_math.test.jsonl"


# -- few-shot examples for the real tasks -------------------------------------------------
def test_gsm8k_shots_come_from_train_and_never_the_doc_itself(real, tmp_path):
    opt = read_jsonl(
        sample_optimisation_set(["gsm8k_sae"], 12, data=real, seed=0, generation=0, out_dir=tmp_path / "opt")[
            "gsm8k_sae"
        ]
    )
    assert [d["id"] for d in opt] == [f"gsm8k_sae-train-{i}" for i in range(12)]  # ids assigned on reading
    for doc in opt:
        shot_ids = [s["id"] for s in doc["fewshot"]]
        assert len(shot_ids) == len(set(shot_ids)) == 5
        assert doc["id"] not in shot_ids
        assert all(s.startswith("gsm8k_sae-train-") for s in shot_ids)
    # a doc's shots depend on the run seed and its id, not on the generation that drew it
    again = read_jsonl(
        sample_optimisation_set(["gsm8k_sae"], 12, data=real, seed=0, generation=7, out_dir=tmp_path / "g7")[
            "gsm8k_sae"
        ]
    )
    assert {d["id"]: d["fewshot"] for d in again} == {d["id"]: d["fewshot"] for d in opt}


def test_mmlu_prox_shots_are_first_n_of_same_language_and_subject(real, tmp_path):
    val = load_split(get_task("mmlu_prox_sae"), real, "validation")
    test = read_jsonl(draw_test_set(["mmlu_prox_sae"], None, data=real, seed=0, out_dir=tmp_path)["mmlu_prox_sae"])
    for doc in test:
        same = [r["id"] for r in val if (r["language"], r["category"]) == (doc["language"], doc["category"])]
        assert [s["id"] for s in doc["fewshot"]] == same[:5]
    # drawn from validation (the shot pool), a doc gets the other four of its group
    opt = read_jsonl(
        sample_optimisation_set(["mmlu_prox_sae"], 30, data=real, seed=0, generation=0, out_dir=tmp_path / "opt")[
            "mmlu_prox_sae"
        ]
    )
    for doc in opt:
        assert doc["id"] not in [s["id"] for s in doc["fewshot"]]
        assert len(doc["fewshot"]) == 4


def test_shots_can_be_turned_off(real, tmp_path):
    out = draw_test_set(["gsm8k_sae"], None, data=real, seed=0, out_dir=tmp_path, shots=0)
    assert all("fewshot" not in d for d in read_jsonl(out["gsm8k_sae"]))


# -- bad input -----------------------------------------------------------------------------
def test_unknown_task_suggests_close_names():
    with pytest.raises(SaeMergeError, match=r"unknown task 'gsm8k_sea'; did you mean 'gsm8k_sae'"):
        parse_tasks("gsm8k_sea")
    with pytest.raises(SaeMergeError, match="no task given"):
        parse_tasks(" , ")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d, o: sample_optimisation_set(["saebench_math"], 51, data=d, seed=0, generation=0, out_dir=o),
            "asks for 51 examples but train\\+validation",
        ),
        (
            lambda d, o: sample_optimisation_set(["saebench_math"], 0, data=d, seed=0, generation=0, out_dir=o),
            "need at least 1",
        ),
        (
            lambda d, o: sample_optimisation_set(["gsm8k_sae"], 3, data=d, seed=0, generation=0, out_dir=o),
            "gsm8k_sae has none of train.jsonl",
        ),
        (
            lambda d, o: draw_test_set(["saebench_math"], {"saebench_multilingual": 3}, data=d, seed=0, out_dir=o),
            "not among the tasks sampled",
        ),
        (
            lambda d, o: draw_test_set(["saebench_math"], None, data=d / "nope", seed=0, out_dir=o),
            "no such data directory",
        ),
    ],
)
def test_bad_sampling_input_is_one_line(bench, tmp_path, call, message):
    with pytest.raises(SaeMergeError, match=message) as err:
        call(bench, tmp_path)
    assert "\n" not in str(err.value)


def test_duplicate_ids_and_missing_fields_are_reported(tmp_path):
    root = tmp_path / "data"
    (root / "math").mkdir(parents=True)
    rows = [{"id": "a", "question": "q", "answer": "#### 1"}, {"id": "a", "question": "q", "answer": "#### 2"}]
    (root / "math" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SaeMergeError, match="example id 'a' appears twice"):
        sample_optimisation_set(["saebench_math"], 1, data=root, seed=0, generation=0, out_dir=tmp_path / "o")
    (root / "math" / "train.jsonl").write_text(json.dumps({"id": "a", "question": "q"}) + "\n")
    with pytest.raises(SaeMergeError, match="lacks field\\(s\\) answer"):
        sample_optimisation_set(["saebench_math"], 1, data=root, seed=0, generation=0, out_dir=tmp_path / "o")
    (root / "math" / "train.jsonl").write_text("{bad\n")
    with pytest.raises(SaeMergeError, match="train.jsonl:1: not valid JSON"):
        sample_optimisation_set(["saebench_math"], 1, data=root, seed=0, generation=0, out_dir=tmp_path / "o")
