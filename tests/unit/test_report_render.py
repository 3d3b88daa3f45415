"""The Markdown report embeds its plots: the Kubeflow UI shows it without the PNG files beside it."""

import base64
import re

from saemerge.report import make_plots, render

RESULTS = [{"method": "sae", "scores": {"saebench_math": 0.5}, "macro": 0.5, "sparsity": 0.3}]
METRICS = [
    {
        "generation": -1,
        "s_t": 0.0,
        "best_fitness": 0.4,
        "mean_fitness": 0.3,
        "best_score": 0.4,
        "mean_sparsity": 0.1,
        "accepted": 4,
        "offspring": 4,
    },
    {
        "generation": 0,
        "s_t": 0.2,
        "best_fitness": 0.5,
        "mean_fitness": 0.4,
        "best_score": 0.5,
        "mean_sparsity": 0.2,
        "accepted": 1,
        "offspring": 2,
    },
]


def test_markdown_and_html_carry_every_plot_inline(tmp_path):
    people = [{"sparsity": 0.2, "score": 0.5, "born": 0, "status": "accepted"}]
    plots = make_plots(METRICS, people)
    md, html = render(str(tmp_path / "run"), RESULTS, METRICS, plots)
    embedded = dict(re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md))
    assert set(embedded) == set(plots)
    for name, data in plots.items():
        assert base64.b64decode(embedded[name]) == data  # the PNG itself, not a link to a file
        assert f"]({name})" not in md
    assert html.count("data:image/png;base64,") == len(plots)


BESTS = [
    {"generation": -1, "id": "m-aaa", "scores": {"math": 0.7, "ml": 0.2}, "attribution": None},
    {
        "generation": 0,
        "id": "m-bbb",
        "scores": {"math": 0.5, "ml": 0.6},
        "attribution": {
            "coefficients": {"math": 0.4, "ml": 0.7},
            "residual_share": 0.25,
            "top_kept": {"math": 0.9, "ml": 1.0},
        },
    },
]


def test_the_best_members_drift_is_plotted_and_tabled_per_generation(tmp_path):
    plots = make_plots(METRICS, [], BESTS)
    assert "drift.png" in plots
    md, html = render(str(tmp_path / "run"), RESULTS, METRICS, plots, bests=BESTS)
    assert "| gen | best member | opt math | opt ml | c math | c ml | residual |" in md
    assert "| 0 | m-bbb | 0.500 | 0.600 | 0.400 | 0.700 | 0.250 | 0.900 | 1.000 |" in md
    assert "| init | m-aaa | 0.700 | 0.200 |  |  |  |  |  |" in md  # no attribution: empty cells
    # the HTML report has the per-generation table too: every generation, with the best member
    assert "<h2>Generations</h2>" in html and html.count("<td>m-bbb</td>") == 1
    assert "<td>init</td>" in html and "<td>0.2000</td>" in html  # generation 0's s_t
