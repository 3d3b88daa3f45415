"""The run report: results table, plots, markdown and HTML (written under RUN/final/).

Plots (PNG): fitness per generation (best and mean of the archive), the sparsity schedule
with the archive's mean sparsity, sparsity against score for every individual scored, and the
drift of the archive's best member: its optimisation score per task and its attribution to the
experts (:mod:`saemerge.run.attribution`) per generation. Both reports carry a per-generation table
(the archive's fitness and sparsity, the best member's per-task scores and attribution).
Both the Markdown and the HTML report carry the plots inline (``data:`` URIs): the Kubeflow
UI shows a Markdown artifact on its own and cannot load files next to it. The PNG files are
written beside the reports as well, for S3 browsers and notebooks.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

from saemerge import storage
from saemerge.reports.images import data_uri, png_bytes
from saemerge.run.attribution import generation_bests
from saemerge.run.compute import summarize, summary_lines
from saemerge.run.inspect import generation_metrics
from saemerge.run.layout import RunLayout
from saemerge.run.tables import read_table, table_to_rows, write_json

PLOTS = ("fitness.png", "schedule.png", "sparsity_vs_score.png", "drift.png")


def individuals(layout: RunLayout) -> list[dict]:
    """Every individual scored in the run (initial variants and offspring), with its generation."""
    rows = []
    for where in layout.stages():
        uri = layout.population(where, "offspring")
        if storage.exists(uri):
            rows += [r for r in table_to_rows(read_table(uri)) if r.get("score") is not None]
    return rows


def results_markdown(results: Sequence[Mapping]) -> str:
    tasks = sorted({t for r in results for t in r["scores"]})
    head = "| method | " + " | ".join(tasks) + " | macro avg | sparsity ρ |"
    sep = "|---|" + "---|" * len(tasks) + "---|---|"
    lines = [head, sep]
    for r in results:
        rho = "" if r.get("sparsity") is None else f"{r['sparsity']:.3f}"
        cells = " | ".join(f"{r['scores'].get(t, float('nan')):.3f}" for t in tasks)
        lines.append(f"| {r['method']} | {cells} | {r['macro']:.3f} | {rho} |")
    return "\n".join(lines)


def results_text(results: Sequence[Mapping]) -> str:
    """A fixed-width table for terminals."""
    tasks = sorted({t for r in results for t in r["scores"]})
    width = max(len(r["method"]) for r in results) + 2
    lines = [f"{'method':<{width}}" + "".join(f"{t:>24}" for t in tasks) + f"{'macro avg':>11}{'sparsity':>10}"]
    for r in results:
        rho = "" if r.get("sparsity") is None else f"{r['sparsity']:.3f}"
        lines.append(
            f"{r['method']:<{width}}"
            + "".join(f"{r['scores'].get(t, float('nan')):>24.3f}" for t in tasks)
            + f"{r['macro']:>11.3f}{rho:>10}"
        )
    return "\n".join(lines)


def make_plots(
    metrics: Sequence[Mapping], people: Sequence[Mapping], bests: Sequence[Mapping] = ()
) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    gens = [m for m in metrics if m["generation"] >= 0]
    x = [m["generation"] for m in gens]
    plots = {}

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if metrics and metrics[0]["generation"] < 0:
        ax.axhline(metrics[0]["best_fitness"], color="grey", ls=":", label="initial best")
    ax.plot(x, [m["best_fitness"] for m in gens], "o-", label="best fitness")
    ax.plot(x, [m["mean_fitness"] for m in gens], "s--", label="mean fitness")
    ax.set(
        xlabel="generation",
        ylabel="fitness = score + γ·ρ",
        title="Archive fitness per generation (each on its own optimisation set)",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    plots["fitness.png"] = png_bytes(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, [m["s_t"] for m in gens], "o-", label="schedule s_t")
    ax.plot(x, [m["mean_sparsity"] for m in gens], "s--", label="archive mean ρ")
    ax.set(xlabel="generation", ylabel="sparsity", title="Cyclic sparsity schedule", ylim=(0, 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    plots["schedule.png"] = png_bytes(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    if people:
        sc = ax.scatter(
            [p["sparsity"] for p in people],
            [p["score"] for p in people],
            c=[p.get("born", -1) for p in people],
            cmap="viridis",
            s=22,
        )
        bar = fig.colorbar(sc, ax=ax, label="generation born (-1: initial)")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        acc = [p for p in people if p.get("status") in ("accepted", "member")]
        ax.scatter(
            [p["sparsity"] for p in acc],
            [p["score"] for p in acc],
            facecolors="none",
            edgecolors="red",
            s=60,
            label="entered the archive",
        )
        ax.legend(loc="lower left")
    ax.set(xlabel="sparsity ρ", ylabel="score (optimisation set)", title="Population: sparsity vs score")
    plots["sparsity_vs_score.png"] = png_bytes(fig)
    plt.close(fig)
    if bests:
        plots["drift.png"] = _drift_plot(plt, MaxNLocator, bests)
    return plots


def _drift_plot(plt, locator, bests: Sequence[Mapping]) -> bytes:
    """Per generation: the best member's optimisation score per task (top) and its attribution
    coefficients per expert with the residual share (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    x = [b["generation"] for b in bests]
    for task in sorted({t for b in bests for t in b["scores"]}):
        top.plot(x, [b["scores"].get(task, float("nan")) for b in bests], "o-", label=task)
    top.set(ylabel="optimisation score", title="The archive's best member per generation (-1: initial)")
    top.legend(fontsize="small")
    attributed = [b for b in bests if b.get("attribution")]
    for expert in sorted({e for b in attributed for e in b["attribution"]["coefficients"]}):
        bottom.plot(
            [b["generation"] for b in attributed],
            [b["attribution"]["coefficients"].get(expert, float("nan")) for b in attributed],
            "o-",
            label=f"coefficient {expert}",
        )
    bottom.plot(
        [b["generation"] for b in attributed],
        [_nan(b["attribution"].get("residual_share")) for b in attributed],
        "k:",
        label="residual share",
    )
    bottom.set(xlabel="generation", ylabel="attribution to the experts")
    bottom.xaxis.set_major_locator(locator(integer=True))
    bottom.legend(fontsize="small")
    data = png_bytes(fig)
    plt.close(fig)
    return data


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def bests_columns(bests: Sequence[Mapping]) -> tuple[list[str], list[str]]:
    """(tasks, experts) named in the best members' scores and attributions."""
    tasks = sorted({t for b in bests for t in b["scores"]})
    experts = sorted({e for b in bests if b.get("attribution") for e in b["attribution"]["coefficients"]})
    return tasks, experts


def bests_rows(bests: Sequence[Mapping]) -> tuple[list[str], list[list[str]]]:
    """The per-generation table of the best member: header and rows of cells (text)."""
    tasks, experts = bests_columns(bests)
    head = ["gen", "best member", *[f"opt {t}" for t in tasks], *[f"c {e}" for e in experts]]
    head += ["residual", *[f"top-10 % kept {e}" for e in experts]]
    rows = []
    for b in bests:
        a = b.get("attribution") or {}
        rows.append(
            [
                str(b["generation"]) if b["generation"] >= 0 else "init",
                b["id"],
                *[_fmt(b["scores"].get(t)) for t in tasks],
                *[_fmt((a.get("coefficients") or {}).get(e)) for e in experts],
                _fmt(a.get("residual_share")),
                *[_fmt((a.get("top_kept") or {}).get(e)) for e in experts],
            ]
        )
    return head, rows


def render(
    run: str,
    results: Sequence[Mapping],
    metrics: Sequence[Mapping],
    plots: Mapping[str, bytes],
    compute: Mapping | None = None,
    bests: Sequence[Mapping] = (),
) -> tuple[str, str]:
    layout = RunLayout(run)
    cfg = layout.read_config() if storage.exists(layout.run_json) else {}
    title = f"{str(cfg.get('search', 'sae')).upper()} run report"
    gens = [m for m in metrics if m["generation"] >= 0]
    md = [
        f"# {title}\n\nRun: `{run}`\n",
        "Test-set accuracy per task; *macro avg* is the mean of the per-task accuracies (each task "
        "weighs the same). *sparsity ρ* is the fraction of zero task-vector entries in prunable tensors.\n",
        results_markdown(results),
        "\n## Generations\n",
        "| gen | s_t | best fitness | mean fitness | best score | mean ρ | accepted |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        md.append(
            f"| {m['generation'] if m['generation'] >= 0 else 'init'} | {m['s_t']:.4f} | {m['best_fitness']:.4f} | "
            f"{m['mean_fitness']:.4f} | {m['best_score']:.4f} | {m['mean_sparsity']:.3f} | {m['accepted']}/{m['offspring']} |"
        )
    if bests:
        head, rows = bests_rows(bests)
        md += [
            "\n## The archive's best member per generation\n",
            "Its score on that generation's optimisation set per task (*opt*), its attribution to the "
            "experts: least-squares coefficients *c* of its task vector on theirs, the *residual* share "
            "of its task vector they do not explain, and the fraction of each expert's top-10 % entries "
            "it keeps.\n",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
            *["| " + " | ".join(r) + " |" for r in rows],
        ]
    if compute:
        md.append("\n## Compute\n")
        md += [f"- {line}" for line in summary_lines(compute)]
    md.append("\n## Plots\n")
    md += [f"![{name}]({data_uri(data)})\n" for name, data in plots.items()]
    if cfg:
        md.append("\n## Configuration\n\n```json\n" + json.dumps(cfg, indent=1, sort_keys=True) + "\n```")
    md_text = "\n".join(md) + "\n"
    imgs = "".join(f'<figure><img alt="{name}" src="{data_uri(data)}"/></figure>' for name, data in plots.items())
    table = _html_table(results)
    html_text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}img{max-width:100%}</style></head><body>"
        f"<h1>{title}</h1><p>Run: <code>{html.escape(run)}</code>; {len(gens)} generations.</p>"
        f"{table}<h2>Generations</h2>{_html_generations(metrics, bests)}{imgs}</body></html>"
    )
    return md_text, html_text


def _html_generations(metrics: Sequence[Mapping], bests: Sequence[Mapping]) -> str:
    """The per-generation table: the archive's fitness, sparsity and acceptance, and the best
    member's optimisation scores and attribution (where known)."""
    head = ["gen", "s_t", "best fitness", "mean fitness", "mean ρ", "accepted"]
    b_head, b_rows = bests_rows(bests) if bests else ([], [])
    by_gen = {row[0]: row[1:] for row in b_rows}
    cells_head = head + b_head[1:]
    rows = []
    for m in metrics:
        gen = str(m["generation"]) if m["generation"] >= 0 else "init"
        cells = [
            gen,
            f"{m['s_t']:.4f}",
            f"{m['best_fitness']:.4f}",
            f"{m['mean_fitness']:.4f}",
            f"{m['mean_sparsity']:.3f}",
            f"{m['accepted']}/{m['offspring']}",
            *by_gen.get(gen, [""] * (len(b_head) - 1)),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in cells_head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _html_table(results: Sequence[Mapping]) -> str:
    tasks = sorted({t for r in results for t in r["scores"]})
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ["method", *tasks, "macro avg", "sparsity ρ"])
    rows = []
    for r in results:
        rho = "" if r.get("sparsity") is None else f"{r['sparsity']:.3f}"
        cells = "".join(f"<td>{r['scores'].get(t, float('nan')):.3f}</td>" for t in tasks)
        rows.append(f"<tr><th>{html.escape(r['method'])}</th>{cells}<td>{r['macro']:.3f}</td><td>{rho}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(run: str, results: Sequence[Mapping]) -> tuple[str, str]:
    """Write report.md, report.html, compute.json and the plots under RUN/final/; return (markdown, html)."""
    layout = RunLayout(run)
    metrics = generation_metrics(layout)
    bests = generation_bests(layout) if storage.exists(layout.run_json) else []
    plots = make_plots(metrics, individuals(layout), bests)
    compute = summarize(layout)
    write_json(layout.final("compute.json"), compute)
    md, html_text = render(run, results, metrics, plots, compute, bests)
    for name, data in plots.items():
        storage.write_bytes(layout.final(name), data)
    storage.write_bytes(layout.final("report.md"), md.encode())
    storage.write_bytes(layout.final("report.html"), html_text.encode())
    return md, html_text
