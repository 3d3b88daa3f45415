"""Handoff files: what steps pass each other by URI come back exactly as written."""

from __future__ import annotations

import pytest

from saemerge import runlog
from saemerge.errors import SaeMergeError
from saemerge.steps import handoff

RECORD = {
    "id": "m-0123456789ab",
    "born": 3,
    "fitness": 0.1 + 0.2,
    "parents": ["m-a", "m-b"],
    "scores": {"saebench_math": 0.5},
    "lambda_max": float("nan"),
}


def test_documents_round_trip_exactly(tmp_path):
    run = str(tmp_path / "run")
    docs = [RECORD, {"id": "m-x", "status": "discarded", "reason": "dup"}]
    uri = handoff.save(run, 4, "archive", docs)
    assert "/gen-04/handoff/archive-" in uri and uri.endswith(".parquet")
    # content-addressed: the same documents, the same file; other documents, another file
    assert handoff.save(run, 4, "archive", docs) == uri
    assert handoff.save(run, 4, "archive", docs[:1]) != uri
    back = handoff.load([uri])
    assert back[1] == {"id": "m-x", "status": "discarded", "reason": "dup"}  # absent keys stay absent
    first = back[0]
    assert isinstance(first["born"], int) and first["fitness"] == 0.1 + 0.2  # ints stay ints, floats exact
    assert first["lambda_max"] != first["lambda_max"]  # NaN survives
    assert {k: v for k, v in first.items() if k != "lambda_max"} == {
        k: v for k, v in RECORD.items() if k != "lambda_max"
    }


def test_lists_of_uris_concatenate_in_order_and_dicts_pass_through(tmp_path):
    run = str(tmp_path / "run")
    pairs = handoff.save_each(run, -1, "pair", [{"index": 0}, {"index": 1}])
    assert [u.rsplit("/", 1)[-1].split("-")[:2] for u in pairs] == [["pair", "0"], ["pair", "1"]]
    assert all("/init/handoff/" in u for u in pairs)
    assert handoff.load(pairs) == [{"index": 0}, {"index": 1}]
    assert handoff.load(list(reversed(pairs))) == [{"index": 1}, {"index": 0}]
    assert handoff.load_one(pairs[1]) == {"index": 1}
    assert handoff.load([{"id": "m-a"}]) == [{"id": "m-a"}] and handoff.load([]) == []


def test_wrong_inputs_say_what_they_are(tmp_path):
    run = str(tmp_path / "run")
    both = handoff.save(run, 0, "two", [{"a": 1}, {"a": 2}])
    with pytest.raises(SaeMergeError, match="expected one document, found 2"):
        handoff.load_one(both)
    other = str(tmp_path / "run" / "gen-00" / "population.parquet")
    runlog.RunLayout(run).write_population(0, [])
    with pytest.raises(SaeMergeError, match="not a handoff file"):
        handoff.load([other])
    with pytest.raises(SaeMergeError, match="expected a URI or a dict"):
        handoff.load([3])
