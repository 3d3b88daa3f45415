"""Write the generated pages of docs/ from the code: ``make docs`` (or ``python docs/generate.py``).

docs/parameters.md is the run parameters' table, made from :class:`saemerge.config.RunConfig`
(``markdown_table``), so it cannot drift: ``tests/unit/test_docs.py`` fails when the checked-in
page differs from a fresh generation. ``--check`` exits 1 instead of writing when it differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent

PARAMETERS_HEAD = """\
# Run parameters

<!-- Generated from RunConfig (src/saemerge/config.py) by `make docs`; do not edit by hand. -->

Every parameter of a run, as the pipelines take them. The table is generated from
`RunConfig` (`src/saemerge/config.py`), the one table of run parameters, so it cannot drift
from the code: `make docs` rewrites this page, and a test fails when it is out of date. Each
parameter is validated once, at the edge where it enters (`saemerge run --local`,
`saemerge submit --dry-run`, the pipeline's first step), with the same one-line message, such as
`saemerge: error: unknown scoring 'bogus' (known: global, local)`.

Where to set them:

- `saemerge run --local --param NAME=VALUE` (JSON values: `--param 'opt_sizes={"saebench_math": 96}'`);
- `saemerge submit --param NAME=VALUE`, or the run form of the Kubeflow UI, which shows the
  same defaults and descriptions ([kubeflow.md](kubeflow.md));
- a study's `params:` for all of its arms, or an arm's `params:` ([studies.md](studies.md)).

The *searches* column says which pipelines take a parameter. The *paper / spec* column points to
the paper's section ("§3.7") and to [SAE-SPEC.md](SAE-SPEC.md) ("SAE-SPEC §5").

"""

PARAMETERS_TAIL = """
`saemerge run --local` (and `study run --local`) caps the default `test_sizes` at what the
bench's test splits hold, so `--bench-size micro` (32 math and 144 multilingual test items)
runs without `--param`; the tiny bench holds more than the default. A size that the data cannot
hold is refused before the search starts, and the message names the `--param` value the data
can hold.
"""


def parameters_page() -> str:
    from saemerge.config import markdown_table

    return PARAMETERS_HEAD + markdown_table() + "\n" + PARAMETERS_TAIL


PAGES = {"parameters.md": parameters_page}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, make in PAGES.items():
        path, text = DOCS / name, make()
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"docs out of date: {', '.join(stale)} (run `make docs`)", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
