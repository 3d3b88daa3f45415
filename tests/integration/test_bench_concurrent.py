"""The bench build's two ways to train the experts, and a build that copies a finished build's base.

Both must give the bytes of the plain one-after-the-other build: the concurrent build trains the
multilingual expert in a second process from the files the build wrote; the copying build
(``base_from``, how the ``plain`` size reuses a cached tiny base) loads data, tokenizer and base
from another build's directory.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from saemerge.bench.build import build_bench
from saemerge.errors import SaeMergeError

pytestmark = pytest.mark.integration


def _hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "bench.json"
    }


@pytest.fixture(scope="module")
def in_turn(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "micro-seed0"
    bench = build_bench(out, "micro", seed=0, threads=1, concurrent_experts=False)
    return out, bench


def test_concurrent_experts_give_the_bytes_of_experts_in_turn(in_turn, tmp_path):
    out = tmp_path / "micro-seed0"
    bench = build_bench(out, "micro", seed=0, threads=2, concurrent_experts=True)
    assert (in_turn[1]["experts"], bench["experts"]) == ("in turn", "concurrent")
    first, second = _hashes(in_turn[0]), _hashes(out)
    assert "models/multilingual/model.safetensors" in first
    assert first == second
    assert bench["models"] == in_turn[1]["models"]
    assert "experts and evaluation (concurrent wall time)" in bench["phase_seconds"]
    assert not list(out.glob(".*"))  # the second process's score file is gone


def test_a_build_from_a_copied_base_has_the_same_bytes(in_turn, tmp_path):
    out = tmp_path / "copied"
    bench = build_bench(out, "micro", seed=0, threads=1, base_from=in_turn[0], concurrent_experts=False)
    assert bench["base_from"] == str(in_turn[0].resolve())
    assert "base" not in bench["phase_seconds"]  # not pre-trained again
    assert _hashes(out) == _hashes(in_turn[0])
    assert bench["tasks"] == in_turn[1]["tasks"] and bench["models"] == in_turn[1]["models"]


def test_base_from_refuses_another_seed_an_unfinished_build_and_other_base_settings(in_turn, tmp_path):
    with pytest.raises(SaeMergeError, match="built with seed 0, not 1"):
        build_bench(tmp_path / "a", "micro", seed=1, base_from=in_turn[0])
    with pytest.raises(SaeMergeError, match="other data or base settings"):
        build_bench(tmp_path / "b", "micro", seed=0, base_from=in_turn[0], overrides={"base_steps": 7})
    with pytest.raises(SaeMergeError, match="not a finished bench build"):
        build_bench(tmp_path / "c", "micro", seed=0, base_from=tmp_path)
    assert not any((tmp_path / d).exists() for d in "abc")  # refused before writing


def test_expert_settings_do_not_stop_a_copy(in_turn, tmp_path):
    out = tmp_path / "other-experts"
    bench = build_bench(
        out,
        "micro",
        seed=0,
        threads=1,
        base_from=in_turn[0],
        overrides={"expert_anchor": 0.0, "expert_scale_cycle": ()},
    )
    first, second = _hashes(in_turn[0]), _hashes(out)
    assert second["models/base/model.safetensors"] == first["models/base/model.safetensors"]
    assert second["models/math/model.safetensors"] != first["models/math/model.safetensors"]
    assert json.loads((out / "bench.json").read_text())["config"]["expert_anchor"] == 0.0
    assert bench["base_from"]
