"""Every published model carries a model card that huggingface_hub loads and that names its base."""

import pytest
from huggingface_hub import ModelCard

from saemerge import runlog, storage
from saemerge.runlog import RunLayout
from saemerge.steps.models import pair_and_merge, prune_variant

pytestmark = pytest.mark.integration


def _card(record) -> ModelCard:
    with storage.local_input(record["uri"]) as model_dir:
        return ModelCard.load(model_dir / "README.md")


def test_published_models_carry_a_card_naming_base_recipe_and_lineage(tmp_path, tiny_family):
    run = str(tmp_path / "run")
    base = str(tiny_family["base"])
    runlog.write_json(RunLayout(run).run_json, {"config": {"base_uri": base, "seed": 7, "search": "sae"}})
    a = prune_variant(run, {"source": str(tiny_family["expert0"]), "name": "expert:e0", "sparsity": 0.1}, base_uri=base)
    b = prune_variant(run, {"source": str(tiny_family["expert1"]), "name": "expert:e1", "sparsity": 0.1}, base_uri=base)
    RunLayout(run).write_population("init", [dict(a, score=0.4, fitness=0.4), dict(b, score=0.6, fitness=0.6)])

    card = _card(a)
    assert card.data.base_model == base
    assert card.data.library_name == "transformers"
    assert {"merge", "saemerge", "prune"} <= set(card.data.tags)
    assert f"`{a['content_hash']}`" in card.text and str(tiny_family["expert0"]) in card.text

    pair = {
        "generation": 0,
        "index": 0,
        "s_t": 0.3,
        "a": dict(a, score=0.4),
        "b": dict(b, score=0.6),
        "archive_hashes": [],
    }
    child = pair_and_merge(run, pair, base_uri=base)
    card = _card(child)
    assert card.data.base_model == base and {"merge", "saemerge", "sae"} <= set(card.data.tags)
    text = card.text
    for expected in (
        "| method | sae |",
        "| s_t (target sparsity) | 0.3 |",
        f"| λ mean | {child['lambda_mean']:.6g} |",
        "| seed | 7 |",
        f"`{a['id']}`, `{b['id']}`",
        "parameter `scoring` | global",
    ):
        assert expected in text, expected
    lineage = text[text.index("## Lineage") :]
    assert child["id"] in lineage and f"  {a['id']}  expert:e0@0.1" in lineage and f"  {b['id']}" in lineage


def test_a_card_without_a_run_json_still_names_the_base(tmp_path, tiny_family):
    run = str(tmp_path / "run")
    base = str(tiny_family["base"])
    rec = prune_variant(
        run, {"source": str(tiny_family["expert1"]), "name": "expert:e1", "sparsity": 0.5}, base_uri=base
    )
    assert _card(rec).data.base_model == base  # from the recipe's base identity
