"""Examples at the end of every ``saemerge VERB --help``, as git and kubectl print them.

One table, applied where the parsers are built (:func:`saemerge.cli.build_parser`), so no verb
module carries its own; ``tests/unit/test_cli_help.py`` checks that every verb has examples and
that each one parses with today's flags.
"""

from __future__ import annotations

import argparse

# The verb's path -> (command line, what it does). Keep one or two per verb; placeholders in capitals.
EXAMPLES: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {
    (): (
        ("saemerge run --local", "the demo: the whole method on a tiny bench (what `make demo` runs)"),
        ("saemerge inspect s3://saemerge/runs/RUN_ID", "what a run made; `saemerge VERB --help` for each verb"),
    ),
    ("prune",): (
        ("saemerge prune EXPERT --base BASE --sparsity 0.5 --out pruned/", "prune the task vector to 50 % zeros"),
        ("saemerge prune s3://b/models/m --sparsity 0.3 --space weight --out s3://b/models/m-30", "raw weights"),
    ),
    ("merge",): (
        ("saemerge merge --method ties --models A B --base BASE --density 0.2 --out merged/", "TIES"),
        ("saemerge merge --method sae --models A B --base BASE --scores 0.61 0.48 --sparsity 0.3 --out child/", ""),
    ),
    ("schedule",): (
        ("saemerge schedule", "the default 12-step cyclic schedule"),
        ("saemerge schedule --steps 24 --t0 4 --t-mult 1 --reverse", "no growth, cycles from s_max down"),
    ),
    ("sparsity",): (
        ("saemerge sparsity MODEL --base BASE", "zero fraction of the task vector"),
        ("saemerge sparsity MODEL --base BASE --measure hoyer --per-tensor", "per tensor, magnitude-based"),
    ),
    ("attribute",): (("saemerge attribute MODEL --base BASE --experts MATH MULTI", "the model as a mix of experts"),),
    ("hash",): (("saemerge hash MODEL", "the checkpoint's content hash"),),
    ("store",): (
        ("saemerge store start", "keep the embedded S3 server running for several commands"),
        ("eval $(saemerge store env)", "point this shell at it"),
    ),
    ("store", "start"): (("saemerge store start --dir .saemerge/store --bucket saemerge", ""),),
    ("store", "stop"): (("saemerge store stop", "stop the store `store start` started"),),
    ("store", "status"): (("saemerge store status", "is it running, and where"),),
    ("store", "env"): (
        ("eval $(saemerge store env)", "export AWS_* for the running store"),
        ("saemerge store env --readonly", "read-only credentials"),
    ),
    ("cache",): (
        ("saemerge cache info", "what the download cache holds"),
        ("saemerge cache prune --max-size 20G", "evict least recently used entries above 20 GB"),
    ),
    ("cache", "info"): (("saemerge cache info --limit 0", "list every entry"),),
    ("cache", "prune"): (
        ("saemerge cache prune --max-size 20G --dry-run", "say what would go"),
        ("saemerge cache prune --max-size 0 --min-idle 0", "empty it"),
    ),
    ("bench",): (("saemerge bench build --out bench/ --size tiny", "build the tiny benchmark"),),
    ("bench", "build"): (
        ("saemerge bench build --out bench/ --size micro", "the smallest bench (a minute)"),
        ("saemerge bench build --out bench/ --size tiny --seed 1", "another bench seed"),
    ),
    ("bench", "score"): (("saemerge bench score --model bench/models/math --data bench/data --split test", ""),),
    ("evaluate",): (
        (
            "saemerge evaluate MODEL --tasks saebench_math,saebench_multilingual --data bench/data --out scores.parquet",
            "",
        ),
        ("saemerge evaluate MODEL --tasks saebench_math --data bench/data --split opt --size 48", ""),
    ),
    ("compile",): (
        ("saemerge compile --out sae_pipeline.yaml", "the SAE pipeline, for the Kubeflow UI"),
        ("saemerge compile --search pso --cpu-image REG/cpu@sha256:D --gpu-image REG/gpu@sha256:D --out pso.yaml", ""),
    ),
    ("run",): (
        ("saemerge run --local", "the demo: tiny bench, embedded S3 (what `make demo` runs)"),
        ("saemerge run --local --search pso --bench-size micro --param seed=1", "another search, smaller"),
    ),
    ("inspect",): (
        ("saemerge inspect s3://saemerge/runs/RUN_ID", "one row per generation, the pick, its lineage"),
        ("saemerge inspect .saemerge/runs/RUN_ID", ""),
    ),
    ("submit",): (
        ("saemerge submit --host URL --namespace team-a --experiment sae --param run_uri=s3://b/runs/r1 --wait", ""),
        ("saemerge submit --dry-run --json --param run_uri=s3://b/runs/r1", "check parameters, print JSON"),
    ),
    ("upload",): (
        ("saemerge upload ./my-expert s3://team/models/my-expert", "publish a checkpoint with a manifest"),
        ("saemerge upload --data ./data s3://team/data", "publish task data"),
    ),
    ("study",): (
        ("saemerge study run --local scoring --parallel 2", "run a preset locally (again: go on)"),
        ("saemerge study report scoring --out report/", "means, intervals, paired differences"),
    ),
    ("study", "run"): (
        ("saemerge study run --local table1", "a preset"),
        ("saemerge study run --local my-study.yaml --max-runs 4", "a study file, four runs at most"),
    ),
    ("study", "submit"): (("saemerge study submit table1 --host URL --namespace team-a --wait", ""),),
    ("study", "report"): (("saemerge study report scoring --out report/", ""),),
    ("study", "status"): (("saemerge study status scoring --json", "each run's state and URI"),),
}


class Examples(str):
    """An epilog printed as written (the description keeps its parser's formatting)."""


def _keeps_examples(base: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    class Formatter(base):  # type: ignore[valid-type,misc]
        def _format_text(self, text: str) -> str:
            if isinstance(text, Examples):
                return str(text) + "\n"
            return super()._format_text(text)

    return Formatter


def render(examples: tuple[tuple[str, str], ...]) -> Examples:
    lines = ["examples:"]
    for command, what in examples:
        lines.append(f"  {command}" + (f"    # {what}" if what else ""))
    return Examples("\n".join(lines))


def subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (path, parser) under ``parser``: ``(("run",), p)``, ``(("study", "run"), p)``, ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from subparsers(sub, (*path, name))


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Put each verb's examples after its help (a verb without an entry gets none)."""
    for path, sub in [((), parser), *subparsers(parser)]:
        examples = EXAMPLES.get(path)
        if not examples:
            continue
        sub.epilog = render(examples) if not sub.epilog else Examples(f"{sub.epilog}\n\n{render(examples)}")
        sub.formatter_class = _keeps_examples(sub.formatter_class)
