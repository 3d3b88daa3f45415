"""preflight.check_inputs: a bad expert, base or data set fails in seconds with one line naming it."""

from __future__ import annotations

import json
import logging
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from saemerge.errors import SaeMergeError
from saemerge.preflight import check_inputs

TENSOR = "model.layers.0.mlp.up_proj.weight"
OPT = {"saebench_math": 12, "saebench_multilingual": 6}
TEST = {"saebench_math": 8, "saebench_multilingual": 4}


def _jsonl(path, n):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(n)) + "\n")


@pytest.fixture
def inputs(tiny_family, tmp_path):
    """Copies of the tiny base and experts (free to spoil) and a data root for two tasks."""
    paths = {name: shutil.copytree(tiny_family[name], tmp_path / name) for name in ("base", "expert0", "expert1")}
    data = tmp_path / "data"
    for split, n in (("train", 8), ("validation", 4), ("test", 8)):  # math: 12 to draw from, 8 to test
        _jsonl(data / "math" / f"{split}.jsonl", n)
    for split, n in (("train", 6), ("test", 5)):
        _jsonl(data / "multilingual" / f"{split}.jsonl", n)
    paths["data"] = data
    return paths


def _check(p, opt=OPT, test=TEST, experts=("expert0", "expert1"), splits=None):
    check_inputs([str(p[e]) for e in experts], str(p["base"]), str(p["data"]), opt, test, splits)


def _refused(p, **kwargs) -> str:
    with pytest.raises(SaeMergeError) as err:
        _check(p, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def _edit_weights(ckpt, edit):
    tensors = load_file(str(ckpt / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})


def _edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_a_good_set_passes_in_well_under_a_second(inputs):
    start = time.perf_counter()
    _check(inputs)
    elapsed = time.perf_counter() - start
    print(f"preflight on the tiny family: {elapsed * 1000:.1f} ms")
    assert elapsed < 2.0  # ~10 ms here; generous for a loaded shared machine


def test_a_tiny_bench_directory_holding_data_is_accepted(inputs, tmp_path):
    bench = tmp_path / "bench"
    shutil.move(inputs["data"], bench / "data")
    _check({**inputs, "data": bench})


def test_a_base_with_another_shape_names_the_tensor_and_both_sides(inputs):
    _edit_weights(inputs["base"], lambda t: t.update({TENSOR: torch.zeros(128, 32)}))
    msg = _refused(inputs)
    assert msg == f"base {inputs['base']}: tensor {TENSOR} has shape [128, 32], the experts have [64, 32]"


def test_an_expert_missing_a_tensor_is_named(inputs):
    _edit_weights(inputs["expert1"], lambda t: t.pop(TENSOR))
    msg = _refused(inputs)
    assert msg == f"expert {inputs['expert1']}: tensor {TENSOR} is missing (expert {inputs['expert0']} has it)"


def test_a_base_with_an_extra_tensor_is_named(inputs):
    _edit_weights(inputs["base"], lambda t: t.update({"extra.bias": torch.zeros(3)}))
    assert _refused(inputs) == f"base {inputs['base']}: tensor extra.bias is not in the experts"


def test_a_different_dtype_is_named(inputs):
    _edit_weights(inputs["base"], lambda t: t.update({TENSOR: t[TENSOR].to(torch.bfloat16)}))
    assert _refused(inputs) == f"base {inputs['base']}: tensor {TENSOR} has dtype bfloat16, the experts have float32"


def test_auto_map_in_config_is_refused(inputs):
    _edit_json(inputs["expert0"] / "config.json", lambda c: c.update(auto_map={"AutoModelForCausalLM": "modeling_x.X"}))
    msg = _refused(inputs)
    assert msg.startswith(f"expert {inputs['expert0']}: config.json has auto_map") and "trust_remote_code" in msg


def test_auto_map_in_tokenizer_config_is_refused(inputs):
    _edit_json(
        inputs["base"] / "tokenizer_config.json", lambda c: c.update(auto_map={"AutoTokenizer": ["tok.T", None]})
    )
    assert _refused(inputs).startswith(f"base {inputs['base']}: tokenizer_config.json has auto_map")


@pytest.mark.parametrize("rel", ["modeling_custom.py", "sub/__init__.py"])
def test_a_python_file_anywhere_is_refused_by_name(inputs, rel):
    (inputs["base"] / rel).parent.mkdir(exist_ok=True)
    (inputs["base"] / rel).write_text("import os\n")
    assert _refused(inputs).startswith(f"base {inputs['base']}: {rel} is Python code")


def test_pickle_only_weights_are_refused(inputs):
    (inputs["expert1"] / "model.safetensors").rename(inputs["expert1"] / "pytorch_model.bin")
    assert "pytorch_model.bin holds pickle weights" in _refused(inputs)


def test_a_missing_expert_is_named(inputs, tmp_path):
    msg = _refused({**inputs, "expert1": tmp_path / "nope"})
    assert msg == f"expert {tmp_path / 'nope'}: no such directory"


def test_a_truncated_header_is_refused(inputs):
    shard = inputs["expert0"] / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    assert (
        _refused(inputs)
        == f"expert {inputs['expert0']}: model.safetensors is not a readable safetensors file (truncated header)"
    )


def test_a_different_vocabulary_names_the_token(inputs):
    def swap(doc):
        vocab = doc["model"]["vocab"]
        a, b = [t for t, i in vocab.items() if i in (300, 301)]
        vocab[a], vocab[b] = vocab[b], vocab[a]

    _edit_json(inputs["expert1"] / "tokenizer.json", swap)
    msg = _refused(inputs)
    assert msg.startswith(
        f"expert {inputs['expert1']}: its tokenizer maps text to other ids than expert {inputs['expert0']}'s"
    )
    assert "has id 301 here, 300 there" in msg


def test_a_different_eos_among_experts_is_refused(inputs):
    _edit_json(inputs["expert1"] / "tokenizer_config.json", lambda c: c.update(eos_token="<pad>"))
    msg = _refused(inputs)
    assert msg.startswith(
        f"expert {inputs['expert1']}: eos_token '<pad>' differs from expert {inputs['expert0']}'s '</s>'"
    )


def test_a_base_with_another_eos_passes_with_a_warning(inputs, caplog):
    _edit_json(inputs["base"] / "tokenizer_config.json", lambda c: c.update(eos_token="<pad>"))
    with caplog.at_level(logging.WARNING, logger="saemerge.preflight"):
        _check(inputs)
    assert "eos_token '<pad>' differs" in caplog.text


def test_a_model_without_tokenizer_is_refused(inputs):
    (inputs["base"] / "tokenizer.json").unlink()
    assert _refused(inputs).startswith(f"base {inputs['base']}: no tokenizer")


def test_a_missing_test_split_is_named(inputs):
    (inputs["data"] / "math" / "test.jsonl").unlink()
    assert _refused(inputs) == f"data_uri {inputs['data']}: task saebench_math has no math/test.jsonl"


def test_missing_pool_splits_are_named(inputs):
    (inputs["data"] / "multilingual" / "train.jsonl").unlink()
    assert _refused(inputs) == (
        f"data_uri {inputs['data']}: task saebench_multilingual has none of "
        "multilingual/train.jsonl, multilingual/validation.jsonl"
    )


def test_an_opt_size_larger_than_train_and_validation_is_refused(inputs):
    msg = _refused(inputs, opt={**OPT, "saebench_math": 13})
    assert msg == (
        f"data_uri {inputs['data']}: task saebench_math asks for 13 optimisation examples "
        "but math/train+validation hold 12; ask for fewer with "
        """--param 'opt_sizes={"saebench_math":12,"saebench_multilingual":6}'"""
    )


def test_a_validation_only_pool_smaller_than_one_sample_is_refused(inputs):
    # math: 4 validation items; 12 fit in train + validation, not in validation alone
    _check(inputs, opt={**OPT, "saebench_math": 4, "saebench_multilingual": 1}, splits=None)
    msg = _refused(inputs, splits=("validation",))
    assert msg == (
        f"data_uri {inputs['data']}: task saebench_math asks for 12 optimisation examples but math/validation hold 4; "
        """ask for fewer with --param 'opt_sizes={"saebench_math":4,"saebench_multilingual":6}'"""
    )
    # multilingual has no validation split at all
    msg = _refused(inputs, opt={**OPT, "saebench_math": 4}, splits=("validation",))
    assert msg == (
        f"data_uri {inputs['data']}: task saebench_multilingual has none of "
        "multilingual/validation.jsonl (opt_splits validation)"
    )


def test_a_test_size_larger_than_the_test_split_is_refused(inputs):
    msg = _refused(inputs, test={**TEST, "saebench_multilingual": 6})
    assert msg == (
        f"data_uri {inputs['data']}: task saebench_multilingual asks for 6 test examples "
        "but multilingual/test.jsonl holds 5; ask for fewer with "
        """--param 'test_sizes={"saebench_math":8,"saebench_multilingual":5}'"""
    )


def test_an_unknown_task_suggests_the_closest(inputs):
    assert "did you mean 'saebench_math'" in _refused(inputs, opt={"saebench_mth": 1}, test={"saebench_mth": 1})


def test_an_invalid_line_in_test_data_is_named_by_preflight(inputs):
    test = inputs["data"] / "multilingual" / "test.jsonl"
    lines = test.read_text().splitlines()
    lines[3] = '{"question": "q3", "answer": '  # cut off; test_sizes asks for 4, the 4th is bad
    test.write_text("\n".join(lines) + "\n")
    assert _refused(inputs).startswith(f"{test}:4: not valid JSON")


def test_a_bad_line_past_the_sizes_asked_for_is_found_too(inputs):
    test = inputs["data"] / "math" / "test.jsonl"
    test.write_text(test.read_text() + "[1, 2]\n")  # sampling reads the whole split
    assert _refused(inputs) == f"{test}:10: expected a JSON object"


def test_an_oversized_record_is_refused_naming_file_and_line(inputs):
    train = inputs["data"] / "math" / "train.jsonl"
    big = json.dumps({"question": "x" * (2 << 20), "answer": "1"})
    train.write_text(train.read_text() + big + "\n")
    assert _refused(inputs) == f"{train}:10: a record of 2.0 MiB; records may be at most 1 MiB"


def test_the_steps_reader_refuses_an_oversized_record_too(tmp_path):
    from saemerge.evaluate.taskspec import read_jsonl

    path = tmp_path / "test.jsonl"
    path.write_text('{"a": 1}\n' + json.dumps({"q": "x" * (3 << 20)}) + "\n")
    with pytest.raises(SaeMergeError, match=r"^s3://b/data/test.jsonl:2: a record of 3.0 MiB"):
        read_jsonl(path, label="s3://b/data/test.jsonl")
