"""A score-cache file that does not parse is named, set aside and rebuilt; what it lacks is scored."""

import logging

import pyarrow as pa

from saemerge import runlog
from saemerge.evaluate.results import EvalResult, ExampleResult
from saemerge.runlog import RunLayout
from saemerge.steps.evaluation import ScoreCache

DIGEST = "ab" * 32


def _rows(task: str, ids: range) -> list[ExampleResult]:
    return [ExampleResult(task, str(i), i % 2 == 0, str(i), str(i)) for i in ids]


def _stage_table(rows: list[ExampleResult], digest: str) -> pa.Table:
    table = EvalResult(rows).to_table()
    n = table.num_rows
    return (
        table.append_column("content_hash", pa.array([digest] * n))
        .append_column("model_id", pa.array(["m-x"] * n))
        .append_column("fresh", pa.array([True] * n))
    )


def _flip(path, at: int = 40) -> None:
    data = bytearray(path.read_bytes())
    for i in range(at, min(at + 64, len(data) - 8)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_cache_file_is_set_aside_and_rebuilt_from_the_runs_score_tables(tmp_path, caplog):
    layout = RunLayout(str(tmp_path / "run"))
    gen0, gen1 = _rows("math", range(0, 4)), _rows("math", range(4, 8))
    runlog.write_table(layout.scores(0, "offspring"), _stage_table(gen0, DIGEST))
    runlog.write_table(layout.scores(1, "population"), _stage_table(gen1, DIGEST))
    runlog.write_table(layout.scores(1, "offspring"), _stage_table(_rows("math", range(9)), "cd" * 32))  # another model
    cache = ScoreCache(layout)
    cache.add(DIGEST, EvalResult(gen0 + gen1 + _rows("lang", range(3))))
    path = tmp_path / "run" / "cache" / "scores" / f"{DIGEST}.parquet"
    original = path.read_bytes()
    _flip(path)

    with caplog.at_level(logging.WARNING):
        got = ScoreCache(layout).get(DIGEST)

    assert {(r.task, r.example_id) for r in got.per_example} == {(r.task, r.example_id) for r in gen0 + gen1}
    assert got.per_example and all(
        r == next(o for o in gen0 + gen1 if o.example_id == r.example_id) for r in got.per_example
    )
    assert (tmp_path / "run" / "cache" / "scores" / f"{DIGEST}.parquet.corrupt").read_bytes() != original  # as found
    assert str(path) in caplog.text and "unreadable" in caplog.text and ".corrupt" in caplog.text
    # the rebuilt file reads again; the 3 'lang' rows only it held are what is left to score
    docs = {"math": [{"id": str(i)} for i in range(8)], "lang": [{"id": str(i)} for i in range(3)]}
    assert ScoreCache(layout).missing(DIGEST, docs) == {"lang": docs["lang"]}


def test_a_corrupt_cache_file_with_nothing_to_rebuild_from_is_scored_again(tmp_path):
    layout = RunLayout(str(tmp_path / "run"))
    cache = ScoreCache(layout)
    cache.add(DIGEST, EvalResult(_rows("math", range(4))))
    (tmp_path / "run" / "cache" / "scores" / f"{DIGEST}.parquet").write_bytes(b"PAR1 not parquet PAR1")
    fresh = ScoreCache(layout)
    assert fresh.get(DIGEST) is None
    assert fresh.missing(DIGEST, {"math": [{"id": "0"}]}) == {"math": [{"id": "0"}]}
