"""saemerge.checkpoint_format: the checkpoint rules preflight and the reader share, without torch."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
import torch

from saemerge import checkpoint_format as fmt
from saemerge.checkpoint import CheckpointReader, CheckpointWriter, TensorInfo
from saemerge.errors import SaeMergeError


def test_it_imports_without_torch():
    code = "import sys, saemerge.checkpoint_format; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_weight_file_rules():
    assert fmt.weight_files(["config.json", "model.safetensors", "a.safetensors"]) == ["model.safetensors"]
    assert fmt.weight_files(["model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"]) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert fmt.weight_files(["config.json", "pytorch_model.bin"]) == []
    assert fmt.pickle_weights(["z.pt", "config.json", "pytorch_model.bin"]) == ["pytorch_model.bin", "z.pt"]
    assert fmt.index_shards({"weight_map": {"a": "s2", "b": "s1", "c": "s2"}}) == ["s1", "s2"]
    with pytest.raises(KeyError):
        fmt.index_shards({})


def test_header_parsing():
    raw = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    assert fmt.header_length(struct.pack("<Q", len(raw)) + raw) == len(raw)
    assert fmt.decode_header(raw)["w"]["shape"] == [2]
    with pytest.raises(struct.error):
        fmt.header_length(b"\x01\x02")
    with pytest.raises(ValueError, match="not a JSON object"):
        fmt.decode_header(b"[1, 2]")
    with pytest.raises(ValueError):
        fmt.decode_header(b"{not json")


def test_the_reader_follows_the_rules(tmp_path):
    """A written checkpoint reads back through the shared rules; dtype names are torch's."""
    infos = [TensorInfo("w", (2, 3), torch.float32, ""), TensorInfo("b", (3,), torch.bfloat16, "")]
    with CheckpointWriter(tmp_path / "ck", infos) as writer:
        writer.write("w", torch.ones(2, 3))
        writer.write("b", torch.zeros(3, dtype=torch.bfloat16))
    (tmp_path / "ck" / "config.json").write_text("{}")
    assert fmt.weight_files(p.name for p in (tmp_path / "ck").iterdir()) == [fmt.SINGLE_FILE]
    with CheckpointReader(tmp_path / "ck") as reader:
        assert [(i.name, str(i.dtype)) for i in reader.infos] == [("b", "torch.bfloat16"), ("w", "torch.float32")]
    for code, name in fmt.DTYPE_NAMES.items():
        assert isinstance(getattr(torch, name), torch.dtype), code
    (tmp_path / "ck" / fmt.SINGLE_FILE).rename(tmp_path / "ck" / "pytorch_model.bin")
    with pytest.raises(SaeMergeError, match="pickle weights are refused"):
        CheckpointReader(tmp_path / "ck")
