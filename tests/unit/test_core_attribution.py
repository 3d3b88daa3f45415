"""Attribution of a model to the experts on hand-computed small tensors."""

import math

import pytest
import torch

from saemerge.core.attribution import AttributionAccumulator, attribute, top_count
from saemerge.errors import SaeMergeError

T = torch.tensor
BASE = {"w": torch.zeros(4)}
E1 = {"w": T([1.0, 0.0, 0.0, 2.0])}
E2 = {"w": T([0.0, 1.0, 0.0, 0.0])}


def test_coefficients_residual_and_top_kept_by_hand():
    # τ_m = [.5, .25, 1, 0]: b = [.5, .25], G = diag(5, 1) -> c = [.1, .25]
    got = attribute({"w": T([0.5, 0.25, 1.0, 0.0])}, BASE, [E1, E2])
    assert got.coefficients == pytest.approx([0.1, 0.25])
    # fit [.1, .25, 0, .2], residual [.4, 0, 1, -.2]: ‖r‖² = 1.2, ‖τ_m‖² = 1.3125
    assert got.residual_share == pytest.approx(math.sqrt(1.2 / 1.3125))
    # top 10 % of 4 entries = 1: E1's is entry 3 (|2|), which the model left at the base; E2's entry 1 is kept
    assert got.top_kept == [0.0, 1.0]
    assert got.norm == pytest.approx(math.sqrt(1.3125)) and got.expert_norms == pytest.approx([math.sqrt(5), 1.0])


def test_linear_merges_are_explained_exactly():
    average = {"w": (E1["w"] + E2["w"]) / 2}
    got = attribute(average, BASE, [E1, E2])
    assert got.coefficients == pytest.approx([0.5, 0.5]) and got.residual_share == pytest.approx(0.0, abs=1e-12)
    ta = attribute(
        {"w": 0.7 * (E1["w"] + E2["w"]) + 1.0}, {"w": torch.ones(4)}, [{"w": E1["w"] + 1}, {"w": E2["w"] + 1}]
    )
    assert ta.coefficients == pytest.approx([0.7, 0.7])
    expert = attribute(E1, BASE, [E1, E2])
    assert expert.coefficients == pytest.approx([1.0, 0.0]) and expert.top_kept == [1.0, 0.0]


def test_tensors_accumulate_into_one_system():
    split = attribute(
        {"a": T([0.5, 0.25]), "b": T([1.0, 0.0])},
        {"a": torch.zeros(2), "b": torch.zeros(2)},
        [{"a": T([1.0, 0.0]), "b": T([0.0, 2.0])}, {"a": T([0.0, 1.0]), "b": T([0.0, 0.0])}],
    )
    whole = attribute({"w": T([0.5, 0.25, 1.0, 0.0])}, BASE, [E1, E2])
    assert split.coefficients == pytest.approx(whole.coefficients)
    assert split.residual_share == pytest.approx(whole.residual_share)
    assert split.tensors == 2 and split.top_kept[0] == 0.5  # E1: top of "a" kept, top of "b" not


def test_singular_gram_takes_the_minimum_norm_solution_and_the_base_has_no_share():
    twin = attribute({"w": T([1.0, 0.0, 0.0, 2.0])}, BASE, [E1, E1])  # colinear experts
    assert twin.coefficients == pytest.approx([0.5, 0.5]) and twin.residual_share == pytest.approx(0.0, abs=1e-12)
    assert attribute(BASE, BASE, [E1]).residual_share is None


def test_bad_input_is_one_line():
    with pytest.raises(SaeMergeError, match="at least one expert"):
        AttributionAccumulator(0)
    with pytest.raises(SaeMergeError, match=r"w: shapes differ \(base \[4\], other \[3\]\)"):
        attribute({"w": torch.zeros(4)}, BASE, [{"w": torch.zeros(3)}])
    with pytest.raises(SaeMergeError, match="no tensors"):
        attribute({}, {}, [{}])
    assert [top_count(n) for n in (1, 9, 10, 11, 100)] == [1, 1, 1, 2, 10]


def test_the_accumulator_checks_each_tensor():
    acc = AttributionAccumulator(1)
    with pytest.raises(SaeMergeError, match=r"w: shapes differ \(model \[4\], expert \[3\]\)"):
        acc.add(torch.zeros(4), [torch.zeros(3)], "w")
    with pytest.raises(SaeMergeError, match="w: 2 expert tensors, expected 1"):
        acc.add(torch.zeros(4), [torch.zeros(4)] * 2, "w")
