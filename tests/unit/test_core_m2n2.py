"""M2N2's pure math on hand-computed values: resource sharing, attraction, mate selection,
the replacement rule, SLERP (incl. colinear and zero-norm tensors) and the split-point crossover."""

import math

import numpy as np
import pytest
import torch

from saemerge.core.m2n2 import (
    SlerpStats,
    attraction,
    compete,
    crossover,
    draw_mating,
    flat_offsets,
    parent_a_probabilities,
    parent_b_probabilities,
    shared_fitness,
    slerp,
    slerp_coefficients,
    split_index,
    tensor_order,
)
from saemerge.errors import SaeMergeError

# 3 members × 4 examples. Column sums z = [2, 2, 1, 1].
S = np.array(
    [
        [1, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 1, 0, 1],
    ]
)


def test_resource_shared_fitness_by_hand():
    # f0 = 1/2 + 1/2 + 1/1 = 2; f1 = 1/2; f2 = 1/2 + 1/1 = 1.5
    assert shared_fitness(S).tolist() == [2.0, 0.5, 1.5]
    # α = 2: z^α = [4, 4, 1, 1]
    assert shared_fitness(S, alpha=2.0).tolist() == [1.5, 0.25, 1.25]
    # α = 0: no sharing, plain counts
    assert shared_fitness(S, alpha=0.0).tolist() == [3.0, 1.0, 2.0]
    # an example nobody solves changes nothing (z = 0 is taken as 1, as in the authors' code)
    assert shared_fitness(np.hstack([S, np.zeros((3, 1))])).tolist() == [2.0, 0.5, 1.5]


def test_attraction_by_hand():
    # to A = 0: member 1 solves nothing 0 misses; member 2 solves example 3 (z = 1) that 0 misses
    assert attraction(S, 0).tolist() == [0.0, 0.0, 1.0]
    # to A = 1: member 0 adds examples 1 (z = 2) and 2 (z = 1); member 2 adds 1 and 3
    assert attraction(S, 1).tolist() == [1.5, 0.0, 1.5]
    # to A = 2: member 0 adds 0 (z = 2) and 2 (z = 1); member 1 adds 0
    assert attraction(S, 2).tolist() == [1.5, 0.5, 0.0]


def test_mate_selection_probabilities_by_hand():
    assert parent_a_probabilities(S).tolist() == [0.5, 0.125, 0.375]  # f / Σf = [2, .5, 1.5] / 4
    assert parent_b_probabilities(S, 0).tolist() == [0.0, 0.0, 1.0]
    assert parent_b_probabilities(S, 1).tolist() == [0.5, 0.0, 0.5]
    assert parent_b_probabilities(S, 2).tolist() == [0.75, 0.25, 0.0]


def test_mate_selection_edge_cases():
    # A dominates everyone: no attraction; B by resource-shared fitness among the others
    dominated = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0]])  # z = [2, 2, 1]: f = [2, .5, .5]
    assert parent_b_probabilities(dominated, 0).tolist() == [0.0, 0.5, 0.5]
    # nobody solves anything: A uniform, B uniform over the others
    zeros = np.zeros((4, 5))
    assert parent_a_probabilities(zeros).tolist() == [0.25] * 4
    assert parent_b_probabilities(zeros, 2).tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    # a single member mates with itself (the step then discards the identical child)
    assert parent_b_probabilities(np.ones((1, 3)), 0).tolist() == [1.0]


def test_draw_mating_is_seeded_and_follows_the_probabilities():
    first = draw_mating(S, np.random.default_rng(7))
    assert first == draw_mating(S, np.random.default_rng(7))
    assert 0.0 <= first.t < 1.0 and 0.0 <= first.split_u < 1.0
    rng = np.random.default_rng(0)
    draws = [draw_mating(S, rng) for _ in range(4000)]
    freq_a = np.bincount([d.a for d in draws], minlength=3) / len(draws)
    assert freq_a == pytest.approx([0.5, 0.125, 0.375], abs=0.03)
    assert all(d.a != d.b for d in draws)
    assert all(d.b == 2 for d in draws if d.a == 0)  # g(·|0) = [0, 0, 1]
    assert all(d.p_a == parent_a_probabilities(S)[d.a] for d in draws[:20])


def test_compete_replaces_the_weakest_unless_the_child_is_strictly_weaker():
    # child solves 2 and 3: z = [2, 2, 2, 2]; f = [1.5, .5, 1, 1] -> replaces member 1
    won = compete(S, [0, 0, 1, 1])
    assert won.replaced == 1 and won.worst == 1
    assert won.fitness.tolist() == [1.5, 0.5, 1.0, 1.0]
    # a copy of member 1's answers: z = [3, 2, 1, 1]; both get 1/3. The authors' argmin over
    # archive + child (child last) picks member 1: a tie lets the child in
    tie = compete(S, [1, 0, 0, 0])
    assert tie.replaced == 1 and tie.child_fitness == tie.worst_fitness == pytest.approx(1 / 3)
    # strictly weaker: solves nothing -> 0 < 0.5 of member 1
    lost = compete(S, [0, 0, 0, 0])
    assert lost.replaced is None and lost.child_fitness == 0.0
    # the child's share lowers the members' shares of what it solves too
    assert tie.fitness[0] == pytest.approx(1 / 3 + 1 / 2 + 1)
    with pytest.raises(SaeMergeError, match="3 scores, the archive 4 examples"):
        compete(S, [1, 0, 0])


def test_slerp_by_hand():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    h = math.sqrt(0.5)
    assert slerp(a, b, 0.5).tolist() == pytest.approx([h, h])  # Ω = π/2: sin(π/4) each
    assert slerp(a, b, 1 / 3).tolist() == pytest.approx([math.sqrt(3) / 2, 0.5])  # sin(π/3), sin(π/6)
    assert slerp(a, b, 0.0).tolist() == [1.0, 0.0] and slerp(a, b, 1.0).tolist() == pytest.approx([0.0, 1.0])
    # unequal norms: the angle comes from the directions, the weights apply to the tensors
    assert slerp(2 * a, b, 0.5).tolist() == pytest.approx([2 * h, h])
    # 2-D tensors are flattened: the same as the vectors
    assert slerp(torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 0.5).flatten().tolist() == pytest.approx(
        [h, h, h, h]
    )


def test_slerp_falls_back_to_linear_on_colinear_opposite_and_zero_norm():
    assert slerp_coefficients(10.0, math.sqrt(5), math.sqrt(20), 0.25) == (0.75, 0.25, False)  # [1,2] vs [2,4]
    assert slerp(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]), 0.25).tolist() == [1.25, 2.5]
    assert slerp(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), 0.25).tolist() == [0.5, 0.0]  # opposite
    assert slerp(torch.zeros(2), torch.tensor([3.0, 4.0]), 0.25).tolist() == [0.75, 1.0]  # zero norm
    assert slerp(torch.zeros(3), torch.zeros(3), 0.7).tolist() == [0.0, 0.0, 0.0]
    assert slerp_coefficients(0.0, 1.0, 1.0, 0.5)[2] is True
    with pytest.raises(SaeMergeError, match="must lie in"):
        slerp_coefficients(0.0, 1.0, 1.0, 1.5)


def test_slerp_keeps_dtype_and_blocks_give_the_same_coefficients():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(37, 5, generator=g), torch.randn(37, 5, generator=g)
    whole = SlerpStats()
    whole.add(a, b)
    blocks = SlerpStats()
    for start in range(0, 37, 4):
        blocks.add(a[start : start + 4], b[start : start + 4])
    assert whole.coefficients(0.3) == blocks.coefficients(0.3)
    assert slerp(a.bfloat16(), b.bfloat16(), 0.3).dtype == torch.bfloat16


def test_tensor_order_is_natural_and_split_points_cover_every_tensor():
    names = ["model.layers.10.w", "model.layers.2.w", "model.embed", "lm_head", "model.layers.1.w"]
    assert tensor_order(names) == [
        "lm_head",
        "model.embed",
        "model.layers.1.w",
        "model.layers.2.w",
        "model.layers.10.w",
    ]
    assert [split_index(u, 4) for u in (0.0, 0.24, 0.25, 0.5, 0.999999)] == [0, 0, 1, 2, 3]


def test_crossover_takes_one_angle_over_the_flattened_vector_and_splits_inside_a_tensor():
    # order: embed, layers.2.w, layers.10.w -> flat vector A = [1,0, 0,0, 0,0], B = [0,0, 0,1, 0,0]
    a = {
        "layers.10.w": torch.tensor([0.0, 0.0]),
        "layers.2.w": torch.tensor([0.0, 0.0]),
        "embed": torch.tensor([1.0, 0.0]),
    }
    b = {
        "layers.10.w": torch.tensor([0.0, 0.0]),
        "layers.2.w": torch.tensor([0.0, 1.0]),
        "embed": torch.tensor([0.0, 0.0]),
    }
    assert flat_offsets(list(a), {n: 2 for n in a}) == {"embed": 0, "layers.2.w": 2, "layers.10.w": 4}
    # one angle over the whole vector: A ⟂ B, Ω = π/2. Per tensor, A's layers.2.w has norm 0
    # (the old per-tensor rule fell back to linear there: 2/3 instead of sin(π/3) = √3/2)
    child = crossover(a, b, 1 / 3, 3)  # split inside layers.2.w: its entry 2 before, entry 3 after
    r3 = math.sqrt(3) / 2
    assert child["embed"].tolist() == pytest.approx([r3, 0.0])  # SLERP(A, B, 1/3): c_A = sin(π/3)
    # entry 2 (before): c_A·0 + c_B·0; entry 3 (after): SLERP(B, A, 1/3): c_B = sin(π/3)
    assert child["layers.2.w"].tolist() == pytest.approx([0.0, r3])
    assert child["layers.10.w"].tolist() == [0.0, 0.0]
    # split 1: embed's second entry is after the split; split 0: SLERP(B, A, t) everywhere
    assert crossover(a, b, 1 / 3, 1)["layers.2.w"].tolist() == pytest.approx([0.0, r3])
    assert crossover(a, b, 1 / 3, 0)["embed"].tolist() == pytest.approx([0.5, 0.0])  # c_A = sin(π/6)
    with pytest.raises(SaeMergeError, match="shapes differ"):
        crossover(a, dict(b, embed=torch.zeros(3)), 0.5, 1)
