"""Attribution of a run's models to its experts (:mod:`saemerge.ops.attribution`), for reports.

A model's attribution is computed once and kept at ``RUN/attribution/<content-hash>.json``
(a function of the model, the base and the experts, all fixed for a run). Each computation
reads the model, the base and every expert once (one pass over the prunable tensors).

* :func:`model_attribution`: one model of the run.
* :func:`generation_bests`: per recorded generation, the archive's best member (best fitness,
  as the generation's ``metrics.json`` names it), its optimisation score per task and its
  attribution: how the search's best model drifts between the experts.
* :func:`pick_attribution`: the attribution of the run's pick (``final/best.json``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack

from saemerge import storage
from saemerge.config import model_name
from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout
from saemerge.run.tables import read_json, write_json

log = logging.getLogger(__name__)


def model_attribution(layout: RunLayout, record: Mapping) -> dict:
    """The attribution of one model of the run (``record`` with "content_hash" and "uri"), cached."""
    from saemerge.ops.attribution import attribute_checkpoint  # torch: only when computing

    uri = layout.attribution(str(record["content_hash"]))
    if storage.exists(uri):
        return read_json(uri)
    info = read_json(layout.run_json)
    experts, base = list(info["experts"]), str(info["base"])
    with ExitStack() as stack:
        model = stack.enter_context(storage.local_input(record["uri"]))
        base_dir = stack.enter_context(storage.local_input(base))
        dirs = [stack.enter_context(storage.local_input(e)) for e in experts]
        result = attribute_checkpoint(model, base_dir, dirs, names=[model_name(e) for e in experts])
    result = {"id": record.get("id"), "content_hash": record["content_hash"], **result}
    write_json(uri, result)
    return result


def generation_bests(layout: RunLayout, *, attribute: bool = True) -> list[dict]:
    """Per stage (``init``, then each generation): the archive's best member by fitness (ties:
    the larger id, as the archive update's summary), its per-task optimisation scores, and with
    `attribute` its attribution.

    Returns:
        Rows {"generation" (-1 for init), "id", "content_hash", "scores": {task: acc}, "fitness",
        "attribution": dict or None}.
    """
    rows = []
    for stage in layout.stages():
        uri = layout.population(stage)
        if not storage.exists(uri):
            continue
        pop = layout.read_population(stage)
        if not pop:
            continue
        best = max(pop, key=lambda r: (r["fitness"], r["id"]))
        generation = -1 if stage == "init" else int(stage.split("-", 1)[1])
        attribution = _try_attribution(layout, best) if attribute else None
        rows.append(
            {
                "generation": generation,
                "id": best["id"],
                "content_hash": best["content_hash"],
                "scores": dict(best.get("scores") or {}),
                "fitness": best["fitness"],
                "attribution": attribution,
            }
        )
    return rows


def _try_attribution(layout: RunLayout, record: Mapping) -> dict | None:
    """The attribution, or None (logged) when a model is gone or unreadable: a report still renders."""
    try:
        return model_attribution(layout, record)
    except SaeMergeError as exc:
        log.warning("attribution of %s: %s", record.get("id"), exc)
        return None


def pick_attribution(layout: RunLayout) -> dict | None:
    """The attribution of the run's reported model (``final/best.json``); None before the final step."""
    if not storage.exists(layout.final("best.json")):
        return None
    return model_attribution(layout, read_json(layout.final("best.json")))


def describe(attribution: Mapping) -> str:
    """One line: ``coefficients math 0.512, multilingual 0.603; residual 0.124; top-10 % kept math 0.95, ...``."""
    coef = ", ".join(f"{k} {v:.3f}" for k, v in attribution["coefficients"].items())
    kept = ", ".join(f"{k} {v:.3f}" for k, v in attribution["top_kept"].items())
    share = attribution.get("residual_share")
    resid = "n/a (the base)" if share is None else f"{share:.3f}"
    return f"coefficients {coef}; residual share {resid}; top-10 % kept {kept}"
