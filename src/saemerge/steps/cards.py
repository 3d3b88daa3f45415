"""Model cards: the README.md every published model carries (Hugging Face model-card format).

A card is YAML front matter (``base_model``, ``library_name: transformers``, tags ``merge``
and ``saemerge``) and a short Markdown body: what made the model (method, parents, s_t, λ
statistics, seed, the recipe's parameters) and its lineage back to the run's inputs. It is
written from what the publishing step knows: the record, the recipe, the run's
configuration and the population tables of earlier generations. Nothing here reads weights.

``base_model`` is the run's base checkpoint as the user named it (an ``s3://`` URI, a local
path, or a hub id when the base was given as one): the card states where the base came from;
it does not guess a hub id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml

from saemerge.run.layout import member_id

CARD_NAME = "README.md"
TAGS = ("merge", "saemerge")
# Record fields shown in the recipe table, in this order, with their labels.
_FIELDS = (
    ("origin", "method"),
    ("s_t", "s_t (target sparsity)"),
    ("sparsity", "sparsity ρ"),
    ("lambda_min", "λ min"),
    ("lambda_mean", "λ mean"),
    ("lambda_max", "λ max"),
    ("generation", "generation"),
)
# Recipe entries that are inputs' identities (shown as inputs, not as parameters).
_INPUT_KEYS = ("source", "base", "experts", "a", "b", "x", "v")


def _method_tag(record: Mapping, recipe: Mapping) -> str | None:
    origin = str(record.get("origin") or "")
    name = origin.split("@", 1)[0].split(" ", 1)[0]
    if name.startswith("expert:") or name == "base":
        name = str(recipe.get("op") or "prune")
    return name.replace("_", "-") or None


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return str(value)


def render_card(
    record: Mapping,
    recipe: Mapping,
    *,
    base_model: str,
    run: str | None,
    seed: int | None = None,
    inputs: Mapping[str, str] | None = None,
    lineage: Sequence[str] = (),
) -> str:
    """The README.md of one published model.

    Args:
        record: the model's record (id, content_hash, uri, origin, parents, s_t, λ stats, ...).
        recipe: what made it (op, input identities, parameters), as given to ``find_recipe``.
        base_model: the run's base checkpoint, as the user named it.
        run: the run's URI; None for a model made outside a run (``saemerge merge``).
        seed: the seed of the recipe or of the run.
        inputs: input identity -> URI, for the identities the recipe names.
        lineage: lines of an indented tree back to the initial variants (:func:`saemerge.run.inspect.lineage`).
    """
    inputs = inputs or {}
    tags = [*TAGS, *([t] if (t := _method_tag(record, recipe)) and t not in TAGS else [])]
    front = {"base_model": base_model, "library_name": "transformers", "tags": tags}
    rows = [("id", f"`{record['id']}`"), ("content hash", f"`{record['content_hash']}`")]
    rows += [(label, _value(record[key])) for key, label in _FIELDS if record.get(key) is not None]
    if record.get("parents"):
        rows.append(("parents", ", ".join(f"`{p}`" for p in record["parents"])))
    if seed is not None:
        rows.append(("seed", str(seed)))
    params = {k: v for k, v in recipe.items() if k not in _INPUT_KEYS and k != "op"}
    rows += [(f"parameter `{k}`", _value(v)) for k, v in sorted(params.items())]
    named = []
    for key in _INPUT_KEYS:
        for ident in recipe[key] if isinstance(recipe.get(key), list) else [recipe.get(key)]:
            if ident is None:
                continue
            ident = str(ident)
            if inputs.get(ident) == ident:  # named by its URI (outside a run: no identity computed)
                named.append(f"- {key}: `{ident}`")
            elif ident in inputs:
                named.append(f"- {key}: `{inputs[ident]}` (identity `{ident[:16]}`)")
            else:  # a model of the run, named by its content hash
                named.append(f"- {key}: model `{member_id(ident)}` (content hash `{ident[:16]}`)")
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {record['id']}",
        "",
        "Made by saemerge (Sparsity-Aware Evolution model merging) "
        + (f"in run `{run}` " if run else "with `saemerge merge` ")
        + f"({recipe.get('op', 'merge')} of the inputs below). Base model: `{base_model}`.",
        "",
        "## Recipe",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
    ]
    if named:
        lines += ["", "Inputs:", "", *named]
    lines += [
        "",
        "## Lineage",
        "",
        "```text",
        *(lineage or [f"{record['id']}  {record.get('origin', '')}"]),
        "```",
        "",
        *([f"The whole run: `saemerge inspect {run}`.", ""] if run else []),
    ]
    return "\n".join(lines)
