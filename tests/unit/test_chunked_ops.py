"""Prune, every baseline merge and the SAE pair merge give bit-identical results in row blocks.

Each case runs an operation twice on tiny real checkpoints: whole tensors (a block size above
every tensor: the whole-tensor code path) and row blocks far smaller than the tensors (block
sizes below one row, and ones that divide no row count), then compares the complete summaries:
content hashes (names, dtypes, shapes, bytes of every tensor), ρ figures and λ per tensor.
"""

import json
from pathlib import Path

import pytest
import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.cli import main
from saemerge.core.blocks import row_blocks
from saemerge.ops import (
    checkpoint_content_hash,
    checkpoint_sparsity,
    merge_checkpoints,
    prune_checkpoint,
    sae_merge_checkpoints,
)

WHOLE = 10**9  # above every tensor: the whole-tensor path
# 7: below a row (32 entries), so every row is a block; 100: 3 rows of 32,
# which divide neither 320 (embeddings, LM head) nor 64 (MLP) rows.
BLOCKS = [7, 100]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


@pytest.fixture(scope="module")
def tied_family(tmp_path_factory):
    """base + 3 experts whose every value is a multiple of 1/256: huge tie sets at every threshold."""
    from tests.support.tinymodels import llama_config, random_state_dict, write_checkpoint

    root = tmp_path_factory.mktemp("tied")
    cfg = llama_config(320, 32, 2)
    g = torch.Generator().manual_seed(7)
    base = {k: torch.randint(-64, 65, v.shape, generator=g).float() / 256 for k, v in random_state_dict(cfg, 0).items()}
    paths = {"base": write_checkpoint(root / "base", base, cfg)}
    for i in range(3):
        sd = {k: v + torch.randint(-2, 3, v.shape, generator=g).float() / 256 for k, v in base.items()}
        paths[f"expert{i}"] = write_checkpoint(root / f"expert{i}", sd, cfg, tokenizer_from=paths["base"])
    return paths


@pytest.fixture()
def family(request):
    return request.getfixturevalue(request.param)


FAMILIES = ["tiny_family", "tiny_family_bf16", "tied_family"]


def _experts(fam) -> list[Path]:
    return [fam[k] for k in sorted(fam) if k.startswith("expert")]


def _same(run, tmp_path):
    """Run `run(dst, block_elems)` whole and in every block size; every summary must be equal."""
    whole = run(tmp_path / "whole", WHOLE)
    for block in BLOCKS:
        assert run(tmp_path / f"b{block}", block) == whole, f"block size {block}"
    return whole


def test_the_block_sizes_really_split_the_tensors(tiny_family):
    infos = CheckpointReader(tiny_family["base"]).infos
    for block in BLOCKS:
        spans = [row_blocks(i.shape, block) for i in infos]
        assert sum(len(s) > 1 for s in spans) >= len(infos) // 2  # most tensors, norms aside, are split
        if block > 32:  # a short last block somewhere: the block size divides no row count
            assert any(len(s) > 1 and s[-1][1] - s[-1][0] < s[0][1] - s[0][0] for s in spans)


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
@pytest.mark.parametrize(
    "space,granularity", [("delta", "tensor"), ("delta", "global"), ("weight", "tensor"), ("weight", "global")]
)
def test_prune_blockwise_equals_whole(family, tmp_path, space, granularity):
    base = family["base"] if space == "delta" else None

    def prune_to(sparsity):
        return lambda dst, b: prune_checkpoint(
            family["expert0"],
            dst / str(sparsity),
            sparsity,
            base=base,
            space=space,
            granularity=granularity,
            block_elems=b,
        )

    for sparsity in (0.5, 0.9):
        got = _same(prune_to(sparsity), tmp_path)
        assert got["sparsity"] >= sparsity - 0.01


MERGES = [
    ("linear", {}),
    ("linear", {"weights": "w"}),
    ("task_arithmetic", {"alpha": 0.5, "weights": "w"}),
    ("ties", {}),
    ("ties", {"density": 0.7, "alpha": 0.9, "weights": "w"}),
    ("dare_linear", {"drop_p": 0.8}),
    ("dare_ties", {"drop_p": 0.5}),
    ("dare_ties", {"drop_p": 0.3, "density": 0.2, "weights": "w"}),  # trim threshold above 0 everywhere
    ("rankmean", {}),
]


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
@pytest.mark.parametrize("method,params", MERGES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(MERGES)])
def test_every_baseline_merge_blockwise_equals_whole(family, tmp_path, method, params):
    experts = _experts(family)
    params = {k: ([0.3, 0.7, 1.7][: len(experts)] if v == "w" else v) for k, v in params.items()}
    _same(
        lambda dst, b: merge_checkpoints(method, experts, dst, base=family["base"], seed=3, block_elems=b, **params),
        tmp_path,
    )


SAE_CASES = [
    # scoring, attraction, granularity, measure, with base, sparsity
    *[
        (s, a, g, "zero_count", True, 0.5)
        for s in ("global", "local")
        for a in ("linear", "fill")
        for g in ("tensor", "global")
    ],
    ("local", "fill", "tensor", "hoyer", True, 0.5),
    ("global", "linear", "global", "hoyer", True, 0.3),
    ("local", "fill", "global", "zero_count", False, 0.5),
    ("global", "linear", "tensor", "zero_count", False, 0.0),
]


@pytest.mark.parametrize("case", SAE_CASES, ids=["-".join(map(str, c)) for c in SAE_CASES])
def test_sae_merge_blockwise_equals_whole(tiny_family, tmp_path, case):
    scoring, attraction, granularity, measure, with_base, sparsity = case
    got = _same(
        lambda dst, b: sae_merge_checkpoints(
            tiny_family["expert0"],
            tiny_family["expert1"],
            0.6,
            0.4,
            dst,
            base=tiny_family["base"] if with_base else None,
            sparsity=sparsity,
            scoring=scoring,
            attraction=attraction,
            granularity=granularity,
            measure=measure,
            block_elems=b,
        ),
        tmp_path,
    )
    assert len(set(got["lambdas"].values())) > (1 if scoring == "local" else 0)


@pytest.mark.parametrize("family", ["tiny_family_bf16", "tied_family"], indirect=True)
@pytest.mark.parametrize(
    "scoring,attraction,granularity", [("local", "fill", "tensor"), ("global", "linear", "global")]
)
def test_sae_merge_blockwise_equals_whole_bf16_and_ties(family, tmp_path, scoring, attraction, granularity):
    _same(
        lambda dst, b: sae_merge_checkpoints(
            family["expert0"],
            family["expert1"],
            0.3,
            0.7,
            dst,
            base=family["base"],
            sparsity=0.6,
            scoring=scoring,
            attraction=attraction,
            granularity=granularity,
            block_elems=b,
        ),
        tmp_path,
    )


@pytest.mark.parametrize("measure", ["zero_count", "hoyer"])
def test_sparsity_and_content_hash_blockwise_equal_whole(tied_family, measure):
    src, base = tied_family["expert1"], tied_family["base"]
    whole = checkpoint_sparsity(src, base=base, measure=measure, per_tensor=True, block_elems=WHOLE)
    digest = checkpoint_content_hash(src, block_elems=WHOLE)
    for block in BLOCKS:
        assert checkpoint_sparsity(src, base=base, measure=measure, per_tensor=True, block_elems=block) == whole
        assert checkpoint_content_hash(src, block_elems=block) == digest


def test_cli_block_size_flag(capsys, tmp_path, tiny_family):
    hashes = []
    for flag in ([], ["--block-size", "100"], ["--block-size", "1K"]):
        code = main(
            [
                "merge",
                "--method",
                "ties",
                "--models",
                str(tiny_family["expert0"]),
                str(tiny_family["expert1"]),
                "--base",
                str(tiny_family["base"]),
                "--out",
                str(tmp_path / f"o{len(hashes)}"),
                *flag,
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        hashes.append(json.loads(out)["content_hash"])
    assert len(set(hashes)) == 1
    code = main(
        ["prune", str(tiny_family["expert0"]), "--sparsity", "0.5", "--block-size", "0", "--out", str(tmp_path / "bad")]
    )
    _, err = capsys.readouterr()
    assert code != 0 and "--block-size '0'" in err and not (tmp_path / "bad").exists()
