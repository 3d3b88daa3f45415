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


def test_prune_variant_honours_granularity_and_keys_the_recipe_by_it(tmp_path, tiny_family):
    run = str(tmp_path / "run")
    base = str(tiny_family["base"])
    variant = {"source": str(tiny_family["expert0"]), "name": "expert:e0", "sparsity": 0.6}
    per_tensor = prune_variant(run, dict(variant, granularity="tensor"), base_uri=base)
    one_threshold = prune_variant(run, dict(variant, granularity="global"), base_uri=base)
    # a recipe without granularity would have answered the second call with the first model
    assert one_threshold["content_hash"] != per_tensor["content_hash"]
    by_tensor = checkpoint_sparsity(per_tensor["uri"], base=base, per_tensor=True)
    by_model = checkpoint_sparsity(one_threshold["uri"], base=base, per_tensor=True)
    assert by_model["global"] == pytest.approx(0.6, abs=0.01)
    # one threshold over the model: the tensors' sparsities spread; per tensor they are all 0.6
    assert max(by_tensor["tensors"].values()) - min(by_tensor["tensors"].values()) < 0.01
    assert max(by_model["tensors"].values()) - min(by_model["tensors"].values()) > 0.05
    assert prune_variant(run, variant, base_uri=base) == per_tensor  # absent = per tensor


def test_initial_variants_carry_the_run_granularity(tmp_path, tiny_family):
    from saemerge.config import RunConfig
    from saemerge.steps.population import init_population
    from tests.support.fixtures import write_bench_data

    data = write_bench_data(tmp_path / "bench", {"train": 40, "validation": 20, "test": 40}) / "data"

    config = RunConfig.from_params(
        {
            "run_uri": str(tmp_path / "run"),
            "experts": [str(tiny_family["expert0"]), str(tiny_family["expert1"])],
            "base_uri": str(tiny_family["base"]),
            "data_uri": str(data),
            "opt_sizes": {"saebench_math": 8, "saebench_multilingual": 8},
            "test_sizes": {"saebench_math": 8, "saebench_multilingual": 8},
            "granularity": "global",
            "include_base": True,
        }
    )
    variants = init_population(config)
    assert len(variants) == 9 and {v["granularity"] for v in variants} == {"global"}


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
