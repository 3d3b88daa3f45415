"""Content hashes of tensors and recipes."""

from __future__ import annotations

import math

import pytest
import torch

from saemerge.core.hashing import TensorHasher, recipe_key, state_dict_hash


def test_equal_content_equal_hash_any_insert_order():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3, dtype=torch.bfloat16)}
    b = {"b": torch.ones(3, dtype=torch.bfloat16), "w": torch.arange(6.0).reshape(2, 3).clone()}
    assert state_dict_hash(a) == state_dict_hash(b)
    h = TensorHasher()
    h.update("b", a["b"])
    h.update("w", a["w"])
    assert h.hexdigest() == state_dict_hash(a) and h.count == 2


@pytest.mark.parametrize(
    "other",
    [
        {"w": torch.tensor([1.0, 2.0, 3.5])},  # value
        {"v": torch.tensor([1.0, 2.0, 3.0])},  # name
        {"w": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)},  # dtype
        {"w": torch.tensor([[1.0, 2.0, 3.0]])},  # shape, same bytes
        {"w": torch.tensor([1.0, 2.0, 3.0]), "x": torch.zeros(0)},  # extra empty tensor
    ],
)
def test_any_difference_changes_hash(other):
    assert state_dict_hash({"w": torch.tensor([1.0, 2.0, 3.0])}) != state_dict_hash(other)


def test_bf16_and_fp16_bit_patterns():
    bits = torch.tensor([0x3F80, 0x4000], dtype=torch.int16)
    bf = bits.view(torch.bfloat16)
    fp = bits.view(torch.float16)
    assert state_dict_hash({"w": bf}) != state_dict_hash({"w": fp})  # same bytes, other dtype
    assert state_dict_hash({"w": bf}) == state_dict_hash({"w": torch.tensor([1.0, 2.0]).to(torch.bfloat16)})
    # -0.0 and 0.0 are different checkpoints bit-wise
    assert state_dict_hash({"w": torch.tensor([0.0])}) != state_dict_hash({"w": torch.tensor([-0.0])})


def test_noncontiguous_and_scalar_tensors():
    x = torch.arange(12.0).reshape(3, 4)
    assert state_dict_hash({"w": x.t()}) == state_dict_hash({"w": x.t().contiguous()})
    assert state_dict_hash({"s": torch.tensor(3.0)}) != state_dict_hash({"s": torch.tensor([3.0])})
    state_dict_hash({"m": torch.tensor([True, False])})  # bool is hashable too


def test_framing_no_ambiguity():
    # same concatenated bytes, split differently between two tensors
    a = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0])}
    b = {"a": torch.tensor([1.0]), "b": torch.tensor([2.0, 3.0])}
    assert state_dict_hash(a) != state_dict_hash(b)


def test_order_enforced():
    h = TensorHasher()
    h.update("model.layers.1.w", torch.zeros(1))
    with pytest.raises(ValueError, match="sorted order"):
        h.update("model.layers.0.w", torch.zeros(1))
    with pytest.raises(ValueError):
        h.update("model.layers.1.w", torch.zeros(1))  # repeated name


def test_hash_is_stable_fixed_value():
    # A change here invalidates every stored model key: bump _HASH_VERSION deliberately.
    sd = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
    assert state_dict_hash(sd) == "18e1e438207e1912ca546c7dfd40ab7030f9c04600c39e98b6f9315fbbe81031"


def test_recipe_key_stable_and_canonical():
    k = recipe_key(method="ties", params={"density": 0.2}, inputs=["x", "y"])
    assert k == "2339bd2f98068b37dffa10684070f06bcd4a1ee6bdf3161fd38856a47d87010c"
    assert k == recipe_key(inputs=("x", "y"), params={"density": 0.2}, method="ties")
    assert k != recipe_key(method="ties", params={"density": 0.3}, inputs=["x", "y"])
    assert k != recipe_key(method="ties", params={"density": 0.2}, inputs=["y", "x"])
    assert recipe_key(a={"x": 1, "y": 2}) == recipe_key(a={"y": 2, "x": 1})
    assert recipe_key(a=1) != recipe_key(a="1")


def test_recipe_key_rejects_ambiguous_values():
    with pytest.raises(ValueError):
        recipe_key(alpha=math.nan)
    with pytest.raises(TypeError):
        recipe_key(t=torch.zeros(1))
