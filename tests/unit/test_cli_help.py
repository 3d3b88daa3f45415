"""Every `saemerge VERB --help` ends with examples, and every example parses with today's flags."""

from __future__ import annotations

import re
import shlex

import pytest

from saemerge.cli import build_parser
from saemerge.cli.examples import EXAMPLES, subparsers

PARSER = build_parser()
VERBS = {(): PARSER, **dict(subparsers(PARSER))}


def _command(line: str) -> list[str]:
    """The saemerge argv of an example line (inside `eval $(...)` too), without `saemerge`."""
    inner = re.search(r"\$\((saemerge [^)]*)\)", line)
    words = shlex.split(inner.group(1) if inner else line)
    assert words[0] == "saemerge", line
    return words[1:]


@pytest.mark.parametrize("path", sorted(VERBS), ids=lambda p: " ".join(p) or "saemerge")
def test_every_verbs_help_ends_with_examples_of_that_verb(path):
    text = VERBS[path].format_help()
    tail = text[text.rindex("\nexamples:\n") :].strip().splitlines()
    assert tail[0] == "examples:" and 1 <= len(tail) - 1 <= 2, text
    for line in tail[1:]:
        assert line.startswith("  "), line
        assert _command(line.split("    # ")[0])[: len(path)] == list(path), line


@pytest.mark.parametrize("path", sorted(EXAMPLES), ids=lambda p: " ".join(p) or "saemerge")
def test_every_example_names_a_verb_and_parses(path):
    assert path in VERBS, f"examples for `saemerge {' '.join(path)}`, which is no verb"
    for command, _what in EXAMPLES[path]:
        PARSER.parse_args(_command(command))  # exits (a failed test) on an unknown flag or a bad value


def test_the_description_keeps_its_formatting():
    """Only the examples are printed as written; a verb's own text wraps as it did."""
    text = VERBS[("run",)].format_help()
    assert "\nexamples:\n  saemerge run --local" in text
    assert all(len(line) < 130 for line in text.splitlines())
