"""The cache budget (SAEMERGE_CACHE_MAX_SIZE): room is made for a new entry by removing the least
recently used ones, never one being read, never one used recently unless the volume is a pod's own."""

import os
import time

import pytest

from saemerge.cache import budget

MB = 1_000_000


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAEMERGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAEMERGE_CACHE_MIN_IDLE_S", "0")
    objects = tmp_path / "cache" / "objects"
    now = time.time()
    for age, name in enumerate(["c", "b", "a"]):  # a is the least recently used
        entry = objects / name
        entry.mkdir(parents=True)
        (entry / "model.safetensors").write_bytes(b"\0" * MB)
        os.utime(entry, (now - 100 * (age + 1),) * 2)
    return objects


def test_without_a_budget_nothing_is_removed(cache, monkeypatch):
    monkeypatch.delenv("SAEMERGE_CACHE_MAX_SIZE", raising=False)
    budget.make_room("new", 10 * MB)
    assert sorted(p.name for p in cache.iterdir()) == ["a", "b", "c"]


def test_least_recently_used_go_first_and_a_pinned_entry_stays(cache, monkeypatch):
    monkeypatch.setenv("SAEMERGE_CACHE_MAX_SIZE", str(int(2.5 * MB)))
    with budget.in_use(cache / "a"):  # being read: kept although least recently used
        budget.make_room("new", MB)
        assert sorted(p.name for p in cache.iterdir()) == ["a"]
    assert cache.joinpath("a").stat().st_mtime > time.time() - 5  # its use ended now: most recent


def test_just_enough_is_removed(cache, monkeypatch):
    monkeypatch.setenv("SAEMERGE_CACHE_MAX_SIZE", str(int(3.5 * MB)))
    budget.make_room("new", MB)
    assert sorted(p.name for p in cache.iterdir()) == ["b", "c"]


def test_entries_another_pod_used_recently_stay_on_a_shared_volume(cache, monkeypatch, caplog):
    monkeypatch.setenv("SAEMERGE_CACHE_MAX_SIZE", str(MB))
    monkeypatch.setenv("SAEMERGE_CACHE_MIN_IDLE_S", "600")
    budget.make_room("new", MB)
    assert sorted(p.name for p in cache.iterdir()) == ["a", "b", "c"]
    assert "exceeded" in caplog.text


def test_paths_outside_the_cache_are_not_pinned(tmp_path, cache):
    with budget.in_use(tmp_path / "elsewhere") as path:
        assert path == tmp_path / "elsewhere"
    assert not budget._PINS
