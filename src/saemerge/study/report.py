"""The study report: test accuracy with intervals, paired differences, compute, and optimisation
vs test, as Markdown, HTML, Parquet tables and PNG plots in one local directory.

The Markdown carries its plots inline (``data:`` URIs) because the Kubeflow UI shows a Markdown
artifact on its own; a plain link line to the PNG files beside it serves file browsers. The
inputs come from the study collector; nothing here reads S3 or run directories.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saemerge.reports.images import data_uri, png_bytes
from saemerge.study.stats import (
    MACRO,
    Interval,
    PairedDiff,
    load_scores,
    paired_difference,
    per_run_scores,
    summarize_methods,
)

RUNS_SCHEMA = pa.schema(
    [
        ("bench_seed", pa.int64()),
        ("run_seed", pa.int64()),
        ("method", pa.string()),
        ("macro", pa.float64()),
        ("opt_score", pa.float64()),
        ("compute_seconds", pa.float64()),
        ("evaluated_examples", pa.int64()),
        ("run_uri", pa.string()),
        ("test_by_task", pa.string()),  # JSON {task: accuracy}
        ("opt_by_task", pa.string()),  # JSON {task: accuracy over the run's optimisation examples}
        ("attribution", pa.string()),  # JSON: the row's model's attribution (saemerge.run.attribution)
        ("model_uri", pa.string()),  # the row's model: the arm's pick, an expert, a one-shot merge
    ]
)
JSON_COLUMNS = ("test_by_task", "opt_by_task", "attribution")
# A block of the report: ("h2", text) | ("p", text) | ("table", header, rows) | ("plots", {name: png}).
Block = tuple[Any, ...]


def write_report(
    out_dir: Path,
    examples: pa.Table,
    runs: Sequence[Mapping[str, Any]],
    *,
    title: str,
    reference: str,
    deterministic: Collection[str],
    header: Sequence[str],
    n_boot: int = 2000,
    arms: Collection[str] | None = None,
) -> dict[str, Any]:
    """Write report.md, report.html, summary/paired/runs.parquet, accuracy.png and paired.png.

    Args:
        examples: the per-example test scores (columns of ``stats.SCORE_COLUMNS``).
        runs: one dict per run (columns of ``RUNS_SCHEMA``; ``opt_score``, ``compute_seconds``,
            ``evaluated_examples`` may be None when unknown).
        reference: the method every other is compared with (reference − other).
        deterministic: methods evaluated once per bench seed (see ``stats``).
        header: lines shown first (the command to reproduce, the machine, the wall time).
        arms: the study's searches (their rows' models are picks); None: every method. The
            other methods' attributions (experts, one-shot merges) get a table of their own.

    Returns:
        The written paths by file name, and ``"summary"``/``"paired"``: the rows of the tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = load_scores(examples, deterministic)
    summary = summarize_methods(scores, deterministic)
    if reference not in summary:
        raise ValueError(f"reference method {reference!r} has no scores; the table has {sorted(summary)}")
    methods = [reference, *sorted(m for m in summary if m != reference)]
    paired = {m: paired_difference(scores, reference, m, deterministic, n_boot=n_boot) for m in methods[1:]}
    summary_rows = [
        {"method": m, "task": task, "mean": i.mean, "low": i.low, "high": i.high, "n": i.n}
        for m in methods
        for task, i in summary[m].items()
    ]
    paired_rows = [
        {k: getattr(d, k) for k in ("reference", "other", "task", "mean", "low", "high", "wins", "ties", "n_units")}
        for diffs in paired.values()
        for d in diffs.values()
    ]
    unit_macros = {m: [u.macro for u in per_run_scores(scores) if u.method == m] for m in methods}
    plots = {"accuracy.png": accuracy_plot(methods, summary, unit_macros), "paired.png": paired_plot(reference, paired)}
    picks = [m for m in methods if arms is None or m in arms]
    blocks = report_blocks(methods, summary, paired, runs, deterministic, n_boot, plots, picks)

    paths = {
        name: out_dir / name
        for name in ("report.md", "report.html", "summary.parquet", "paired.parquet", "runs.parquet", *plots)
    }
    paths["report.md"].write_text(to_markdown(title, header, blocks))
    paths["report.html"].write_text(to_html(title, header, blocks))
    pq.write_table(pa.Table.from_pylist(summary_rows), paths["summary.parquet"])
    pq.write_table(pa.Table.from_pylist(paired_rows), paths["paired.parquet"])
    rows = [{**r, **{k: json.dumps(r.get(k)) if r.get(k) else None for k in JSON_COLUMNS}} for r in runs]
    pq.write_table(pa.Table.from_pylist(rows, schema=RUNS_SCHEMA), paths["runs.parquet"])
    for name, png in plots.items():
        paths[name].write_bytes(png)
    return {**paths, "summary": summary_rows, "paired": paired_rows}


def fmt_interval(i: Interval) -> str:
    return f"{i.mean:.3f} ± [{i.low:.3f}, {i.high:.3f}] (n={i.n})"


def _mean(values: Sequence[float | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def report_blocks(
    methods: Sequence[str],
    summary: Mapping[str, Mapping[str, Interval]],
    paired: Mapping[str, Mapping[str, PairedDiff]],
    runs: Sequence[Mapping[str, Any]],
    deterministic: Collection[str],
    n_boot: int,
    plots: Mapping[str, bytes],
    picks: Sequence[str] | None = None,
) -> list[Block]:
    """The report's sections, rendered alike into Markdown and HTML. `picks`: the methods whose
    rows are a search's pick (default all); the others' attributions are shown per bench."""
    picks = list(methods) if picks is None else list(picks)
    tasks = sorted({t for m in methods for t in summary[m] if t != MACRO})
    reference = methods[0]
    det = sorted(set(deterministic) & set(methods))
    blocks: list[Block] = [
        ("h2", "Test accuracy"),
        ("p", "Mean test accuracy over units with its Student-t 95 % interval; a unit is one (bench seed, run seed). "
              "macro is the mean of the per-task accuracies."),  # fmt: skip
        ("table", ["method", *tasks, MACRO],
         [[m, *(fmt_interval(summary[m][t]) if t in summary[m] else "–" for t in [*tasks, MACRO])] for m in methods]),
    ]  # fmt: skip
    if det:
        blocks.append(
            ("p", f"Deterministic methods ({', '.join(det)}): evaluated once per bench seed; n counts bench seeds.")
        )
    rows = [
        [m, task, f"{d.mean:+.3f}", f"[{d.low:+.3f}, {d.high:+.3f}]", f"{d.wins}/{d.n_units} ({d.ties} tied)"]
        for m, diffs in paired.items()
        for task, d in diffs.items()
    ]
    blocks += [
        ("h2", f"Paired differences: {reference} − X"),
        ("p", f"Accuracy of {reference} minus that of X on the same test items; the mean over units weighs bench seeds "
              f"equally. 95 % percentile interval of a hierarchical paired bootstrap ({n_boot} replicates: run seeds "
              f"resampled within bench seeds, then test items within each unit, the same items for both methods). "
              f"wins: units where {reference} scored higher."),  # fmt: skip
        ("table", ["X", "task", "mean", "95 % CI", "wins/units"], rows),
        ("h2", "Compute"),
        ("p", "Per run of each search: the step seconds it spent (prune, merge, evaluate; without the final "
              "evaluation) and the optimisation examples it scored (fresh or from the score cache); n counts runs. "
              "Runs of a study share one score cache, so a run whose models another run had scored spends fewer "
              "seconds: the examples are the fair measure of what a search asks for."),  # fmt: skip
        ("table", ["method", "compute s", "examples evaluated", "n"], _compute_rows(methods, runs)),
        ("h2", "Optimisation vs test"),
        ("p", "Per method whose optimisation-set score is known: means over those runs; gap = opt − test macro "
              "(positive: the optimisation set scored higher, by overfitting it or by its being easier)."),  # fmt: skip
        ("table", ["method", "opt score", "test macro", "gap", "n"], _gap_rows(methods, runs)),
        ("p", "Per task: the pick's accuracy over every optimisation example its run drew, on the test set, "
              "and the gap (means over runs)."),  # fmt: skip
        ("table", ["method", "task", "opt", "test", "gap", "n"], _task_gap_rows(methods, runs)),
        ("h2", "Attribution of each pick"),
        ("p", "The pick's task vector fitted by least squares on the experts' (over the prunable tensors): "
              "coefficient c per expert (a weight average is ½, ½; task arithmetic α, α), the residual's share "
              "of its norm (what no mix of the experts explains), and the fraction of each expert's top-10 % "
              "entries by magnitude the pick keeps (non-zero task vector)."),  # fmt: skip
        *_attribution_tables(picks, runs),
        *_reference_attribution(methods, picks, runs),
        ("h2", "Plots"),
        ("plots", dict(plots)),
    ]  # fmt: skip
    return blocks


def _compute_rows(methods: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        if mine:
            seconds = _mean([r.get("compute_seconds") for r in mine])
            examples = _mean([r.get("evaluated_examples") for r in mine])
            rows.append([m, _num(seconds, 1), _num(examples, 0), str(len(mine))])
    return rows


def _gap_rows(methods: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for m in methods:
        known = [r for r in runs if r["method"] == m and r.get("opt_score") is not None]
        if known:
            opt, test = np.array([r["opt_score"] for r in known]), np.array([r["macro"] for r in known])
            rows.append([m, _num(opt.mean()), _num(test.mean()), f"{(opt - test).mean():+.3f}", str(len(known))])
    return rows


def _task_gap_rows(methods: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for m in methods:
        known = [r for r in runs if r["method"] == m and r.get("opt_by_task")]
        for task in sorted({t for r in known for t in r["opt_by_task"]}):
            pairs = [
                (r["opt_by_task"][t], r["test_by_task"][t]) for r in known for t in [task] if t in r["test_by_task"]
            ]
            if pairs:
                opt, test = np.array(pairs).T
                rows.append(
                    [m, task, _num(opt.mean()), _num(test.mean()), f"{(opt - test).mean():+.3f}", str(len(pairs))]
                )
    return rows


def _attribution_tables(methods: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[Block]:
    """Per method: its mean attribution over runs, then every pick (one row per run)."""
    known = [r for r in runs if r.get("attribution")]
    experts = sorted({e for r in known for e in r["attribution"]["coefficients"]})
    if not known:
        return [("p", "No attribution known (no finished search run, or its models are gone).")]
    head = [*[f"c {e}" for e in experts], "residual", *[f"top-10 % kept {e}" for e in experts]]

    def cells(attrs: Sequence[Mapping[str, Any]]) -> list[str]:
        return [
            *[_num(_mean([a["coefficients"].get(e) for a in attrs])) for e in experts],
            _num(_mean([a.get("residual_share") for a in attrs])),
            *[_num(_mean([a["top_kept"].get(e) for a in attrs])) for e in experts],
        ]

    means, each = [], []
    for m in methods:
        mine = sorted((r for r in known if r["method"] == m), key=lambda r: (r["bench_seed"], r["run_seed"]))
        if mine:
            means.append([m, *cells([r["attribution"] for r in mine]), str(len(mine))])
            each += [[m, f"b{r['bench_seed']} r{r['run_seed']}", *cells([r["attribution"]])] for r in mine]
    return [
        ("table", ["method", *head, "n"], means),
        ("p", "Every pick:"),
        ("table", ["method", "unit", *head], each),
    ]


def _reference_attribution(
    methods: Sequence[str], picks: Sequence[str], runs: Sequence[Mapping[str, Any]]
) -> list[Block]:
    """The experts' and the one-shot merges' attributions: one row per model of a bench seed
    (a deterministic merge is one model for every run seed; task arithmetic's α, chosen per run,
    may give one per run seed), with the run seeds whose row it is."""
    rows = [r for r in runs if r["method"] not in picks and r.get("attribution")]
    if not rows:
        return []
    experts = sorted({e for r in rows for e in r["attribution"]["coefficients"]})
    rank = {m: i for i, m in enumerate(methods)}
    order = sorted({r["method"] for r in rows}, key=lambda m: (not m.startswith("expert:"), rank.get(m, len(rank)), m))
    models: dict[tuple[str, int, str], list[Mapping[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (order.index(r["method"]), r["bench_seed"], r["run_seed"])):
        key = (r["method"], r["bench_seed"], str(r["attribution"].get("content_hash") or r.get("model_uri")))
        models.setdefault(key, []).append(r)
    table = []
    for (method, bench, _), mine in models.items():
        a = mine[0]["attribution"]
        table.append(
            [method, f"b{bench}", ", ".join(str(r["run_seed"]) for r in mine),
             *[_num(a["coefficients"].get(e)) for e in experts], _num(a.get("residual_share")),
             *[_num(a["top_kept"].get(e)) for e in experts]]
        )  # fmt: skip
    head = [*[f"c {e}" for e in experts], "residual", *[f"top-10 % kept {e}" for e in experts]]
    return [
        ("h2", "Attribution of the baselines and experts"),
        (
            "p",
            "The same measures for the models every pick is compared with: each expert (c = 1 on itself; its "
            "top-10 % kept of the other expert is how much the two task vectors share) and each one-shot merge "
            "the runs evaluated, once per model of a bench seed (run seeds: the runs whose row it is). The base "
            "is left out: its task vector is zero.",
        ),
        ("table", ["method", "bench", "run seeds", *head], table),
    ]


# ---------------------------------------------------------------------------------------------
# Plots


def accuracy_plot(
    methods: Sequence[str], summary: Mapping[str, Mapping[str, Interval]], unit_macros: Mapping[str, Sequence[float]]
) -> bytes:
    """Macro test accuracy per method: mean with its 95 % interval, and one dot per unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(methods) + 1.5), 3.8))
    for x, m in enumerate(methods):
        units = np.asarray(unit_macros[m])
        ax.scatter(x + np.linspace(-0.15, 0.15, units.size) + 0.12, units, s=10, color="grey", alpha=0.6)
        i = summary[m][MACRO]
        ax.errorbar([x], [i.mean], yerr=[[i.mean - i.low], [i.high - i.mean]], fmt="o", color="C0", capsize=4)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set(ylabel="macro test accuracy", title="Test accuracy: mean, 95 % interval, units (grey)")
    png = png_bytes(fig)
    plt.close(fig)
    return png


def paired_plot(reference: str, paired: Mapping[str, Mapping[str, PairedDiff]]) -> bytes:
    """Differences ``reference − X`` per task and macro, with their bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = list(paired)
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.5 * len(others) + 1.5)))
    tasks = list(next(iter(paired.values()))) if paired else []
    for k, task in enumerate(tasks):
        y = np.arange(len(others)) + (k - (len(tasks) - 1) / 2) * 0.2
        d = [paired[o][task] for o in others]
        mean = np.array([x.mean for x in d])
        err = [mean - [x.low for x in d], [x.high for x in d] - mean]
        style = {"color": "black", "fmt": "s"} if task == MACRO else {"color": f"C{k}", "fmt": "o", "alpha": 0.7}
        ax.errorbar(mean, y, xerr=err, capsize=3, label=task, **style)
    ax.axvline(0, color="grey", ls=":")
    ax.set_yticks(range(len(others)), others)
    ax.invert_yaxis()
    ax.set(xlabel=f"{reference} − X (test accuracy)", title="Paired differences, 95 % bootstrap intervals")
    if tasks:
        ax.legend(fontsize="small")
    png = png_bytes(fig)
    plt.close(fig)
    return png


# ---------------------------------------------------------------------------------------------
# Rendering


def to_markdown(title: str, header: Sequence[str], blocks: Sequence[Block]) -> str:
    out = [f"# {title}", "", *(f"- {line}" for line in header), ""]
    for block in blocks:
        if block[0] == "h2":
            out += [f"## {block[1]}", ""]
        elif block[0] == "p":
            out += [block[1], ""]
        elif block[0] == "table":
            head, rows = block[1], block[2]
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(row) + " |" for row in rows] or ["| " + " | ".join(["–"] * len(head)) + " |"]
            out.append("")
        elif block[0] == "plots":
            out += [f"![{name}]({data_uri(png)})\n" for name, png in block[1].items()]
            out += ["Files: " + " · ".join(f"[{name}]({name})" for name in block[1]), ""]
    return "\n".join(out)


def to_html(title: str, header: Sequence[str], blocks: Sequence[Block]) -> str:
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{e(title)}</h1><ul>" + "".join(f"<li>{e(line)}</li>" for line in header) + "</ul>",
    ]
    for block in blocks:
        if block[0] == "h2":
            out.append(f"<h2>{e(block[1])}</h2>")
        elif block[0] == "p":
            out.append(f"<p>{e(block[1])}</p>")
        elif block[0] == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif block[0] == "plots":
            out += [f'<figure><img alt="{e(n)}" src="{data_uri(png)}"/></figure>' for n, png in block[1].items()]
            out.append("<p>Files: " + " · ".join(f'<a href="{e(n)}">{e(n)}</a>' for n in block[1]) + "</p>")
    out.append("</body></html>")
    return "".join(out)
