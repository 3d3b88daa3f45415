"""A generation's ``metrics.json`` (:data:`saemerge.run.tables.GEN_METRICS` keys) as text, in one place.

* :func:`metrics_line`: one compact line (``saemerge submit --wait``'s progress lines).
* :func:`metrics_header` and :func:`metrics_row`: ``saemerge inspect``'s table, a column per task.
* :func:`metrics_detail`: the line ``saemerge run --local`` prints under each finished generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def metrics_line(metrics: Mapping) -> str:
    """``best F 0.5123, accepted 3/4, mean ρ 0.812``: the keys present, in that order."""
    parts = []
    if metrics.get("best_fitness") is not None:
        parts.append(f"best F {metrics['best_fitness']:.4f}")
    if metrics.get("offspring") is not None:
        parts.append(f"accepted {metrics.get('accepted', 0)}/{metrics['offspring']}")
    if metrics.get("mean_sparsity") is not None:
        parts.append(f"mean ρ {metrics['mean_sparsity']:.3f}")
    return ", ".join(parts)


def metrics_detail(metrics: Mapping) -> str:
    """``best fitness 0.5123  mean 0.4010  [math 0.600, multilingual 0.433]  mean ρ 0.812  accepted 3/4``:
    best and mean fitness, each task's best score (by task name), mean ρ, accepted offspring."""
    m = metrics
    per_task = ", ".join(f"{k[5:]} {v:.3f}" for k, v in sorted(m.items()) if k.startswith("best."))
    return (
        f"best fitness {m['best_fitness']:.4f}  mean {m['mean_fitness']:.4f}  [{per_task}]  "
        f"mean ρ {m['mean_sparsity']:.3f}  accepted {m['accepted']}/{m['offspring']}"
    )


def metrics_header(tasks: Sequence[str]) -> str:
    """The header of :func:`metrics_row`'s table."""
    head = f"{'gen':>4} {'s_t':>7} {'best F':>8} {'mean F':>8}" + "".join(f" {t[:22]:>22}" for t in tasks)
    return head + f" {'accepted':>9} {'mean ρ':>7}"


def metrics_row(metrics: Mapping, tasks: Sequence[str]) -> str:
    """One generation as a row: s_t, best and mean fitness, each task's best score, accepted, mean ρ."""
    m = metrics
    gen = "init" if m["generation"] < 0 else str(m["generation"])
    return (
        f"{gen:>4} {m['s_t']:>7.4f} {m['best_fitness']:>8.4f} {m['mean_fitness']:>8.4f}"
        + "".join(f" {m.get('best.' + t, float('nan')):>22.3f}" for t in tasks)
        + f" {str(m['accepted']) + '/' + str(m['offspring']):>9} {m['mean_sparsity']:>7.3f}"
    )
