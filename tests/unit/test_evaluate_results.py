"""EvalResult: aggregates derived from per-example rows, table round trip, the cache index."""

from __future__ import annotations

import math

import pyarrow.parquet as pq

from saemerge.evaluate.results import EvalResult, ExampleResult, index_results


def rows():
    return [
        ExampleResult("math", "m1", True, "42", "42"),
        ExampleResult("math", "m2", False, "[invalid]", "7"),
        ExampleResult("math", "m3", False, "8", "9"),
        ExampleResult("mc", "c1", True, "C", "C"),
    ]


def test_per_task_and_macro_weigh_each_task_equally():
    res = EvalResult(rows())
    assert res.per_task == {"math": 1 / 3, "mc": 1.0}
    assert res.counts == {"math": 3, "mc": 1}
    # the macro average is the mean of task accuracies, not the pooled 2/4
    assert math.isclose(res.macro, (1 / 3 + 1.0) / 2)
    assert math.isnan(EvalResult([]).macro)


def test_table_round_trip_and_parquet(tmp_path):
    res = EvalResult(rows(), model="m")
    table = res.to_table()
    assert table.num_rows == 4
    assert table.column_names == ["task", "example_id", "correct", "answer", "target", "score"]
    back = EvalResult.from_table(pq.read_table(res.write_parquet(tmp_path / "r.parquet")))
    assert back.per_example == res.per_example


def test_a_float_score_per_example_and_tables_written_before_it():
    graded = EvalResult([ExampleResult("t", "a", False, score=0.25), ExampleResult("t", "b", True, score=1.0)])
    assert graded.per_task == {"t": 0.625}
    assert [r.score for r in rows()] == [1.0, 0.0, 0.0, 1.0]  # from correct when not given
    old = EvalResult(rows()).to_table().drop_columns(["score"])  # a cache file of an earlier version
    assert [r.score for r in EvalResult.from_table(old).per_example] == [1.0, 0.0, 0.0, 1.0]


def test_summary_lists_tasks_and_macro():
    text = EvalResult(rows()).summary()
    assert "math" in text and "0.3333" in text and "macro average" in text and "0.6667" in text


def test_index_results_accepts_rows_or_a_result():
    idx = index_results(rows())
    assert idx[("math", "m2")].answer == "[invalid]"
    assert index_results(EvalResult(rows())) == idx
    assert index_results(None) == {}
