"""Evicting from the local download cache (`saemerge cache prune`): stale temp directories, then least recently used entries."""

from __future__ import annotations

import os
import time

import pytest

from saemerge.cache import evict, usage
from saemerge.cli import main

NOW = time.time()  # the CLI prunes against the real clock


def _entry(root, kind, name, size, age_s):
    d = root / kind / name
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"x" * size)
    os.utime(d / "model.safetensors", (NOW - age_s, NOW - age_s))
    os.utime(d, (NOW - age_s, NOW - age_s))
    return d


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "cache"
    _entry(root, "objects", "old", 300, age_s=5 * 86400)
    _entry(root, "objects", "mid", 200, age_s=86400)
    _entry(root, "objects", "new", 100, age_s=60)  # in use by a running job
    _entry(root, "tmp", "in-dead", 50, age_s=7200)
    live = _entry(root, "tmp", "in-live", 70, age_s=7200)
    os.utime(live / "model.safetensors", (NOW - 5, NOW - 5))  # still being written
    return root


def test_usage_lists_entries_least_recently_used_first(cache):
    u = usage(cache)
    assert [e.path.name for e in u.entries] == ["old", "mid", "new"]
    assert u.entry_bytes == 600 and u.temp_bytes == 120


def test_prune_without_a_limit_sweeps_only_dead_temp_directories(cache):
    r = evict(None, root=cache, now=NOW)
    assert (r.removed_entries, r.removed_temp, r.freed_bytes, r.kept_bytes) == (0, 1, 50, 600)
    assert sorted(p.name for p in (cache / "tmp").iterdir()) == ["in-live"]
    assert len(list((cache / "objects").iterdir())) == 3


def test_prune_removes_least_recently_used_until_the_cache_fits(cache):
    r = evict(350, root=cache, now=NOW)
    assert r.removed_entries == 1 and r.kept_bytes == 300
    assert sorted(p.name for p in (cache / "objects").iterdir()) == ["mid", "new"]


def test_prune_never_removes_an_entry_used_within_min_idle(cache):
    r = evict(0, root=cache, now=NOW, min_idle_s=600)
    assert sorted(p.name for p in (cache / "objects").iterdir()) == ["new"]
    assert r.kept_bytes == 100
    evict(0, root=cache, now=NOW, min_idle_s=0)
    assert list((cache / "objects").iterdir()) == []


def test_dry_run_removes_nothing(cache):
    before = sorted(p.name for p in cache.rglob("*"))
    r = evict(0, root=cache, now=NOW, dry_run=True)
    assert r.removed_entries == 2 and r.removed_temp == 1
    assert sorted(p.name for p in cache.rglob("*")) == before


def test_an_empty_or_missing_cache_is_fine(tmp_path):
    r = evict(0, root=tmp_path / "nothing")
    assert (r.removed_entries, r.removed_temp, r.kept_bytes) == (0, 0, 0)


def test_cli_prune_and_info(cache, capsys):
    assert main(["cache", "info", "--dir", str(cache), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "entries: 3, 600 B" in out and "  new " in out and "... 2 older entries" in out
    assert main(["cache", "prune", "--dir", str(cache), "--max-size", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and (cache / "objects" / "old").is_dir()
    assert main(["cache", "prune", "--dir", str(cache), "--max-size", "0", "--min-idle", "0"]) == 0
    assert "removed 3 entries and 1 temp directories" in capsys.readouterr().out
    assert main(["cache", "info", "--dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "entries: 0, 0 B" in out and "in-live" in out


def test_cli_bad_size_is_one_line_exit_2(cache, capsys):
    assert main(["cache", "prune", "--dir", str(cache), "--max-size", "lots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "saemerge: error: --max-size 'lots': not a size (examples: 0, 500M, 10G, 2.5GB)"
    assert (cache / "objects" / "old").is_dir()


def test_a_new_cache_root_is_private(tmp_path, monkeypatch):
    from saemerge.cache.paths import scratch_dir

    monkeypatch.setenv("SAEMERGE_CACHE", str(tmp_path / "deep" / "cache"))
    scratch_dir("t-")
    assert (tmp_path / "deep" / "cache").stat().st_mode & 0o777 == 0o700


CACHE_LAYERS = ("paths", "evict", "budget", "downloads")  # each may import only those before it


def _cache_imports(module: str) -> set[str]:
    """The saemerge.cache modules `module` imports anywhere (module level or inside functions)."""
    import ast
    from pathlib import Path

    import saemerge.cache

    tree = ast.parse((Path(saemerge.cache.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("saemerge.cache."):
                found.add(node.module.split(".")[2])
            elif node.module == "saemerge.cache":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("saemerge.cache."))
    return found


def test_the_cache_modules_import_one_way_only():
    for i, module in enumerate(CACHE_LAYERS):
        upward = _cache_imports(module) - set(CACHE_LAYERS[:i])
        assert not upward, f"saemerge.cache.{module} imports {sorted(upward)}: only {CACHE_LAYERS[:i]} may be"
