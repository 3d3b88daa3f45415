"""checkpoint.py: streamed reading, planned-offset writing, compatibility checks."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from saemerge.checkpoint import (
    CheckpointReader,
    CheckpointWriter,
    TensorInfo,
    check_compatible,
    parse_size,
    plan_shards,
)
from saemerge.errors import SaeMergeError


def _write(path, tensors):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    save_file(tensors, str(path / "model.safetensors"))
    return path


def test_writer_round_trips_every_dtype_in_any_order(tmp_path):
    tensors = {
        "a.weight": torch.randn(3, 5),
        "b.weight": torch.randn(7).to(torch.bfloat16),
        "c.weight": torch.randn(2, 2).half(),
        "d.count": torch.arange(6, dtype=torch.int64),
    }
    src = _write(tmp_path / "src", tensors)
    reader = CheckpointReader(src)
    with CheckpointWriter(tmp_path / "out", reader.infos, side_files_from=src) as out:
        for name in reversed(reader.names):
            out.write(name, reader.get(name))
    loaded = load_file(str(tmp_path / "out" / "model.safetensors"))  # the reference reader agrees
    assert loaded.keys() == tensors.keys()
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t)
    assert (tmp_path / "out" / "config.json").read_text() == "{}"


def test_sharded_output_has_index_and_respects_the_size_limit(tmp_path):
    tensors = {f"layer{i}.weight": torch.full((10, 10), float(i)) for i in range(5)}  # 400 bytes each
    src = _write(tmp_path / "src", tensors)
    reader = CheckpointReader(src)
    with CheckpointWriter(tmp_path / "out", reader.infos, max_shard_bytes=900) as out:
        for name, t in reader.items():
            out.write(name, t)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert files == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    assert index["metadata"]["total_size"] == 2000
    again = CheckpointReader(tmp_path / "out")
    assert all(torch.equal(again.get(n), tensors[n]) for n in tensors)


def test_plan_shards_puts_an_oversized_tensor_alone():
    infos = [TensorInfo(f"t{i}", (n,), torch.float32, "") for i, n in enumerate([10, 1000, 10])]
    assert [[i.name for i in s] for s in plan_shards(infos, 100)] == [["t0"], ["t1"], ["t2"]]


def test_writer_refuses_incomplete_wrong_shape_and_nan(tmp_path):
    infos = [TensorInfo("a", (2,), torch.float32, ""), TensorInfo("b", (2,), torch.float32, "")]
    w = CheckpointWriter(tmp_path / "o1", infos)
    with pytest.raises(SaeMergeError, match="shape"):
        w.write("a", torch.zeros(3))
    with pytest.raises(SaeMergeError, match="NaN or Inf"):
        w.write("a", torch.tensor([1.0, float("nan")]))
    w.write("a", torch.zeros(2))
    with pytest.raises(SaeMergeError, match="tensor b was never written"):
        w.close()


def test_reader_rejects_nan_and_pickle_and_empty_dirs(tmp_path):
    src = _write(tmp_path / "nan", {"x.weight": torch.tensor([1.0, float("inf")])})
    with pytest.raises(SaeMergeError, match=r"tensor x.weight contains NaN or Inf"):
        CheckpointReader(src).get("x.weight")
    pick = tmp_path / "pickle"
    pick.mkdir()
    (pick / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(SaeMergeError, match="pickle weights are refused"):
        CheckpointReader(pick)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaeMergeError, match="no model.safetensors"):
        CheckpointReader(tmp_path / "empty")
    with pytest.raises(SaeMergeError, match="no such checkpoint directory"):
        CheckpointReader(tmp_path / "absent")


def test_check_compatible_names_the_first_difference(tmp_path):
    a = _write(tmp_path / "a", {"x": torch.zeros(2, 2), "y": torch.zeros(3)})
    b = _write(tmp_path / "b", {"x": torch.zeros(2, 3), "y": torch.zeros(3)})
    c = _write(tmp_path / "c", {"x": torch.zeros(2, 2)})
    d = _write(tmp_path / "d", {"x": torch.zeros(2, 2), "y": torch.zeros(3).half()})
    with pytest.raises(SaeMergeError, match=r"tensor x: shape \[2, 3\]"):
        check_compatible([CheckpointReader(a), CheckpointReader(b)])
    with pytest.raises(SaeMergeError, match=r"tensor y is missing"):
        check_compatible([CheckpointReader(a), CheckpointReader(c)])
    with pytest.raises(SaeMergeError, match=r"tensor y: dtype float16"):
        check_compatible([CheckpointReader(a), CheckpointReader(d)])


def test_parse_size():
    assert parse_size("2GB") == 2 * 10**9
    assert parse_size("20KB") == 20_000
    assert parse_size("1MiB") == 2**20
    assert parse_size(123) == 123
    with pytest.raises(SaeMergeError, match="--max-shard-size"):
        parse_size("lots")
