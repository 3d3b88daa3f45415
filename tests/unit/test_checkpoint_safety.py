"""checkpoint.py refuses what the safetensors library refuses, and no code travels into outputs."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from saemerge.checkpoint import SIDE_FILES, CheckpointReader, CheckpointWriter, copy_side_files
from saemerge.errors import SaeMergeError


def _raw_checkpoint(path, entries: dict[str, list[int]], data_bytes: int):
    """A checkpoint whose one shard has F32 tensors of 2 entries at the given data_offsets."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    header = {name: {"dtype": "F32", "shape": [2], "data_offsets": offs} for name, offs in entries.items()}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data_bytes))
    return path


def _library_refuses(path) -> bool:
    try:
        load_file(str(path / "model.safetensors"))
    except SafetensorError:
        return True
    return False


def test_tiled_offsets_are_read(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "ok", {"a": [0, 8], "b": [8, 16]}, 16)
    assert CheckpointReader(ckpt).names == ["a", "b"]
    assert not _library_refuses(ckpt)


def test_overlapping_offsets_are_refused(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "overlap", {"a": [0, 8], "b": [4, 12]}, 12)
    with pytest.raises(SaeMergeError, match=r"model\.safetensors: tensors a and b overlap in the data section"):
        CheckpointReader(ckpt)
    assert _library_refuses(ckpt)


def test_two_tensors_on_the_same_bytes_are_refused(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "alias", {"a": [0, 8], "b": [0, 8]}, 8)
    with pytest.raises(SaeMergeError, match="tensors a and b overlap"):
        CheckpointReader(ckpt)


def test_a_gap_between_tensors_is_refused(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "gap", {"a": [0, 8], "b": [12, 20]}, 20)
    with pytest.raises(SaeMergeError, match="4 bytes after tensor a belong to no tensor"):
        CheckpointReader(ckpt)
    assert _library_refuses(ckpt)


def test_a_gap_at_the_start_is_refused(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "lead", {"a": [8, 16]}, 16)
    with pytest.raises(SaeMergeError, match="8 bytes at the start of the data section belong to no tensor"):
        CheckpointReader(ckpt)


@pytest.mark.parametrize("data_bytes", [12, 20])
def test_a_data_section_longer_or_shorter_than_the_tensors_is_refused(tmp_path, data_bytes):
    ckpt = _raw_checkpoint(tmp_path / "tail", {"a": [0, 8], "b": [8, 16]}, data_bytes)
    with pytest.raises(SaeMergeError, match=f"the tensors cover 16 bytes but the data section holds {data_bytes}"):
        CheckpointReader(ckpt)
    assert _library_refuses(ckpt)


def test_bad_offsets_are_refused(tmp_path):
    ckpt = _raw_checkpoint(tmp_path / "bad", {"a": [0, 8]}, 8)
    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}).encode()
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(SaeMergeError, match="tensor a has no valid data_offsets"):
        CheckpointReader(ckpt)


def _source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save_file({"w": torch.ones(2)}, str(src / "model.safetensors"))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        (src / name).write_text("{}")
    for name in ("merges.txt", "LICENSE", "chat_template.jinja"):
        (src / name).write_text("x")
    return src


def test_only_allow_listed_side_files_travel(tmp_path):
    src = _source(tmp_path)
    for name in (
        "modeling_evil.py",
        "configuration_evil.py",
        "evil.pyc",
        "pytorch_model.bin",
        "README.md",
        "manifest.json",
        ".hidden",
        "run.sh",
    ):
        (src / name).write_text("x")
    (src / "sub").mkdir()
    (src / "sub" / "code.py").write_text("x")
    dst = tmp_path / "dst"
    dst.mkdir()
    copy_side_files(src, dst)
    copied = sorted(p.name for p in dst.iterdir())
    assert copied == sorted(
        [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "merges.txt",
            "LICENSE",
            "chat_template.jinja",
        ]
    )
    assert set(copied) <= SIDE_FILES


def test_the_writer_carries_no_python_into_an_output(tmp_path):
    src = _source(tmp_path)
    (src / "modeling_evil.py").write_text("import os\n")
    reader = CheckpointReader(src)
    with CheckpointWriter(tmp_path / "out", reader.infos, side_files_from=src) as out:
        out.write("w", reader.get("w"))
    assert not list((tmp_path / "out").rglob("*.py"))
    assert (tmp_path / "out" / "tokenizer.json").is_file()


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_a_source_with_auto_map_is_refused(tmp_path, name):
    src = _source(tmp_path)
    (src / name).write_text(json.dumps({"auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}))
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(SaeMergeError) as err:
        copy_side_files(src, dst)
    assert str(err.value).startswith(f"{src / name}: has auto_map") and "\n" not in str(err.value)
    assert not any(dst.iterdir())
