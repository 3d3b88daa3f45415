from typing import List

from kfp.dsl import HTML, Markdown, Output


def report(run_uri: str, results: List[dict], report_md: Output[Markdown], report_html: Output[HTML]) -> str:
    """Write the results table and plots (fitness per generation, schedule, sparsity vs score).

    Written under RUN/final/ and as kfp Markdown/HTML artifacts for the UI.

    Returns:
        The URI of RUN/final/report.md.
    """
    from saemerge.report import write_report
    from saemerge.runlog import RunLayout

    md, html = write_report(run_uri, results)
    with open(report_md.path, "w") as f:
        f.write(md)
    with open(report_html.path, "w") as f:
        f.write(html)
    return RunLayout(run_uri).final("report.md")
