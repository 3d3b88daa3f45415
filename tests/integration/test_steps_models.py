"""The model-making steps on tiny checkpoints and a local run directory: recipes, ρ, duplicates."""

import pytest

from saemerge import storage
from saemerge.ops import checkpoint_sparsity
from saemerge.steps.models import pair_and_merge, prune_variant

pytestmark = pytest.mark.integration


def test_prune_variant_is_content_addressed_and_measures_with_the_run_measure(tmp_path, tiny_family):
    run = str(tmp_path / "run")
    variant = {"source": str(tiny_family["expert0"]), "name": "expert:e0", "sparsity": 0.6}
    zc = prune_variant(run, variant, base_uri=str(tiny_family["base"]))
    again = prune_variant(run, variant, base_uri=str(tiny_family["base"]))
    hoyer = prune_variant(run, variant, base_uri=str(tiny_family["base"]), measure="hoyer")
    assert again == zc  # the recipe file answered; nothing was recomputed
    assert zc["content_hash"] == hoyer["content_hash"] and storage.exists(zc["uri"])
    assert zc["sparsity"] == pytest.approx(0.6, abs=0.01)
    expected = checkpoint_sparsity(zc["uri"], base=tiny_family["base"], measure="hoyer")["global"]
    assert hoyer["sparsity"] == pytest.approx(expected) and hoyer["sparsity"] != pytest.approx(zc["sparsity"])
    assert zc["origin"] == "expert:e0@0.6" and zc["born"] == -1


def test_pair_and_merge_records_lineage_and_discards_a_twin_of_the_archive(tmp_path, tiny_family):
    run = str(tmp_path / "run")
    base = str(tiny_family["base"])
    a = prune_variant(run, {"source": str(tiny_family["expert0"]), "name": "e0", "sparsity": 0.1}, base_uri=base)
    b = prune_variant(run, {"source": str(tiny_family["expert1"]), "name": "e1", "sparsity": 0.1}, base_uri=base)
    a, b = dict(a, score=0.4), dict(b, score=0.6)
    pair = {
        "generation": 2,
        "index": 0,
        "s_t": 0.3,
        "a": a,
        "b": b,
        "archive_hashes": [a["content_hash"], b["content_hash"]],
    }
    child = pair_and_merge(run, pair, base_uri=base)
    assert child["parents"] == [a["id"], b["id"]] and child["born"] == 2 and child["origin"] == "sae"
    assert child["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert 0.0 < child["lambda_min"] <= child["lambda_mean"] <= child["lambda_max"] < 0.5  # s_A < s_B
    assert child.get("status") != "discarded"
    twin = pair_and_merge(run, dict(pair, archive_hashes=[child["content_hash"]]), base_uri=base)
    assert twin["status"] == "discarded" and twin["content_hash"] == child["content_hash"]
