"""The study report on a small synthetic study: every file is written, the Markdown carries the
methods, the deterministic note, the numbers of summary.parquet and its plots inline, and
paired.parquet holds what paired_difference computes."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saemerge.study.report import JSON_COLUMNS, write_report
from saemerge.study.stats import paired_difference

ACCURACY = {"sae": 0.7, "pso": 0.6, "ties": 0.5, "expert:math": 0.4}
DETERMINISTIC = {"ties", "expert:math"}


ATTRIBUTION = {
    "coefficients": {"code": 0.4, "math": 0.6},
    "residual_share": 0.1,
    "top_kept": {"code": 0.9, "math": 1.0},
}


def reference_attribution(method: str, bench: int) -> dict | None:
    """The attribution of a deterministic row's model: one model per bench seed."""
    if method == "ties":
        return {"content_hash": f"ties-{bench}", "coefficients": {"code": 0.5 + bench / 10, "math": 0.6},
                "residual_share": 0.3, "top_kept": {"code": 0.7, "math": 0.8}}  # fmt: skip
    if method == "expert:math":
        return {"content_hash": f"math-{bench}", "coefficients": {"code": 0.0, "math": 1.0},
                "residual_share": 0.0, "top_kept": {"code": 0.2, "math": 1.0}}  # fmt: skip
    return None


def study() -> tuple[pa.Table, list[dict]]:
    rng = np.random.default_rng(0)
    rows, runs = [], []
    for bench in (0, 1):
        for run in (0, 1):
            for method, p in ACCURACY.items():
                macro = []
                for task in ("math", "code"):
                    scores = (rng.random(50) < p).astype(float)
                    macro.append(scores.mean())
                    rows += [
                        {"bench_seed": bench, "run_seed": run, "method": method, "task": task,
                         "example_id": f"{task}/{i}", "score": s}
                        for i, s in enumerate(scores)
                    ]  # fmt: skip
                search = method in ("sae", "pso")
                runs.append(
                    {"bench_seed": bench, "run_seed": run, "method": method, "macro": float(np.mean(macro)),
                     "opt_score": float(np.mean(macro)) + 0.05 if search else None,
                     "compute_seconds": 100.0 + run if search else 5.0,
                     "evaluated_examples": 4000 if search else None, "run_uri": f"s3://b/study/{method}/{bench}-{run}",
                     "test_by_task": {"math": macro[0], "code": macro[1]},
                     "opt_by_task": {"math": macro[0] + 0.1, "code": macro[1]} if search else {},
                     "attribution": ATTRIBUTION if method == "sae" else reference_attribution(method, bench),
                     "model_uri": f"s3://b/models/{method}-{bench}-{run}"}
                )  # fmt: skip
    return pa.Table.from_pylist(rows), runs


def test_write_report(tmp_path):
    examples, runs = study()
    out = write_report(
        tmp_path / "report",
        examples,
        runs,
        title="Study: SAE vs PSO",
        reference="sae",
        deterministic=DETERMINISTIC,
        header=["command: saemerge study run study.yaml", "machine: test", "wall time: 1 s"],
        n_boot=300,
        arms=["sae", "pso"],
    )
    names = [
        "report.md",
        "report.html",
        "summary.parquet",
        "paired.parquet",
        "runs.parquet",
        "accuracy.png",
        "paired.png",
    ]
    for name in names:
        assert (tmp_path / "report" / name).stat().st_size > 0
        assert out[name] == tmp_path / "report" / name

    md = (tmp_path / "report" / "report.md").read_text()
    for method in ACCURACY:
        assert f"| {method} |" in md
    assert "Deterministic methods (expert:math, ties): evaluated once per bench seed; n counts bench seeds." in md
    assert "## Paired differences: sae − X" in md
    embedded = dict(re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md))
    assert base64.b64decode(embedded["accuracy.png"]) == (tmp_path / "report" / "accuracy.png").read_bytes()
    assert "[paired.png](paired.png)" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "n counts bench seeds" in html

    summary = pq.read_table(out["summary.parquet"]).to_pylist()
    assert summary == out["summary"]
    assert {(r["method"], r["task"]) for r in summary} == {(m, t) for m in ACCURACY for t in ("math", "code", "macro")}
    for r in summary:
        assert f"{r['mean']:.3f} ± [{r['low']:.3f}, {r['high']:.3f}] (n={r['n']})" in md
        assert r["n"] == (2 if r["method"] in DETERMINISTIC else 4)

    paired = pq.read_table(out["paired.parquet"]).to_pylist()
    for other in ("pso", "ties"):
        expected = paired_difference(examples, "sae", other, DETERMINISTIC, n_boot=300)
        mine = {r["task"]: r for r in paired if r["other"] == other}
        assert set(mine) == set(expected)
        for task, d in expected.items():
            row = mine[task]
            assert (row["mean"], row["low"], row["high"]) == (d.mean, d.low, d.high)
            assert (row["wins"], row["ties"], row["n_units"]) == (d.wins, d.ties, d.n_units)
    assert {r["reference"] for r in paired} == {"sae"}

    stored = pq.read_table(out["runs.parquet"]).to_pylist()
    assert [{k: json.loads(v) if k in JSON_COLUMNS and v else v for k, v in r.items()} for r in stored] == [
        {**r, **{k: r[k] or None for k in JSON_COLUMNS}} for r in runs
    ]
    # per task: math's optimisation score is 0.1 above its test score, code's equal
    assert "| sae | math |" in md and "| +0.100 | 4 |" in md and "| +0.000 | 4 |" in md
    attribution = md.split("## Attribution of each pick")[1].split("## Plots")[0]
    assert "| method | c code | c math | residual | top-10 % kept code | top-10 % kept math | n |" in attribution
    assert "| sae | 0.400 | 0.600 | 0.100 | 0.900 | 1.000 | 4 |" in attribution
    assert "| sae | b1 r0 | 0.400 | 0.600 | 0.100 | 0.900 | 1.000 |" in attribution and "| pso |" not in attribution
    assert "| ties |" not in attribution.split("## Attribution of the baselines and experts")[0]
    # the experts and one-shot merges: one row per model of a bench seed, the expert first
    reference = md.split("## Attribution of the baselines and experts")[1].split("## Plots")[0]
    lines = [x for x in reference.splitlines() if x.startswith("| ")]
    assert lines == [
        "| method | bench | run seeds | c code | c math | residual | top-10 % kept code | top-10 % kept math |",
        "| expert:math | b0 | 0, 1 | 0.000 | 1.000 | 0.000 | 0.200 | 1.000 |",
        "| expert:math | b1 | 0, 1 | 0.000 | 1.000 | 0.000 | 0.200 | 1.000 |",
        "| ties | b0 | 0, 1 | 0.500 | 0.600 | 0.300 | 0.700 | 0.800 |",
        "| ties | b1 | 0, 1 | 0.600 | 0.600 | 0.300 | 0.700 | 0.800 |",
    ]
    assert "<h2>Attribution of the baselines and experts</h2>" in html and "<td>expert:math</td><td>b1</td>" in html
    # Compute and optimisation-vs-test tables: per-run means; ties has no optimisation score.
    assert "| sae | 100.5 | 4000 | 4 |" in md
    assert "| ties | 5.0 | – | 4 |" in md
    gap_rows = md.split("## Optimisation vs test")[1].split("## Attribution")[0]
    assert "| sae |" in gap_rows and "+0.050" in gap_rows and "| ties |" not in gap_rows
