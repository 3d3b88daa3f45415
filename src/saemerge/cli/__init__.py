"""The ``saemerge`` command line.

Each area of the tool keeps its verbs in its own module with a ``register(subparsers)``
function; this module lists them explicitly (no registration by import side effects), puts
each verb's examples after its help (:mod:`saemerge.cli.examples`), sets up logging, and turns
:class:`~saemerge.errors.SaeMergeError` into a one-line message and exit code 2.

Logging: a command's output is its own. Warnings and errors always reach stderr; INFO only
with ``-v`` (``-vv``: DEBUG), except the progress of a verb's long phases
(:data:`PROGRESS_LOGGERS`, e.g. the bench build that ``run --local`` does once).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

# Idle OpenMP threads sleep instead of spinning. Read once, when torch is first imported (so
# it must be set here): on a shared or oversubscribed CPU, spinning threads made tensor ops
# 10-30x slower in our measurements; on an idle machine the cost is negligible.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from saemerge.cli.examples import add_examples
from saemerge.errors import SaeMergeError

# Modules under saemerge.cli that add verbs. Imported lazily so `saemerge schedule`
# does not pay for kfp or lm-eval imports.
VERB_MODULES = ("core", "store", "cache", "bench", "evaluate", "pipeline", "submit", "upload", "study")

# Loggers whose INFO lines are a verb's progress, shown without -v: the bench build (minutes,
# once per bench; its phases and training losses) and which object store a local run uses.
# Everything else at INFO (botocore's "Found credentials", cache hits, uploads) needs -v.
PROGRESS_LOGGERS: dict[str, tuple[str, ...]] = {
    "run": ("saemerge.bench", "saemerge.pipeline.local"),
    "bench": ("saemerge.bench",),
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Version(argparse.Action):
    """``--version``, worked out only when asked (it may run git)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from saemerge import version_line

        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saemerge",
        description="Sparsity-Aware Evolution for merging LLM experts (arXiv 2602.08218).",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log what it does (INFO); -vv: debug messages too"
    )
    parser.add_argument("--version", action=_Version, help="print the version and git commit, and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERB_MODULES:
        importlib.import_module(f"saemerge.cli.{name}").register(sub)
    add_examples(parser)
    return parser


class _Shown(logging.Filter):
    """What reaches stderr: warnings and up always; INFO with -v or from the verb's progress
    loggers; DEBUG with -vv (loggers that set their own level, botocore's, keep it)."""

    def __init__(self, verbose: int, progress: tuple[str, ...]):
        super().__init__()
        self.verbose = verbose
        self.progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or self.verbose >= 2:
            return True
        if record.levelno < logging.INFO:
            return False
        return self.verbose >= 1 or any(record.name == p or record.name.startswith(p + ".") for p in self.progress)


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: int, verb: str | None = None) -> None:
    """One stderr handler for the command (see the module docstring).

    Where the host already configured logging (pytest, a notebook calling :func:`main`), it is
    left alone, as :func:`logging.basicConfig` would.
    """
    root = logging.getLogger()
    if any(not isinstance(h, _Stderr) for h in root.handlers):
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_Shown(verbose, PROGRESS_LOGGERS.get(verb or "", ())))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING)
    # saemerge's own INFO is made (the filter decides what shows), so that the verb's progress
    # loggers work and a child process told this level (the bench build's worker) logs them.
    logging.getLogger("saemerge").setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.verb)
    try:
        result = args.func(args)
    except SaeMergeError as exc:
        print(f"saemerge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saemerge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into `head` & co., which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        found = environment_error(exc, fallback=getattr(args, "out", None))
        if found is None:
            raise
        print(f"saemerge: error: {found}", file=sys.stderr)
        return 2
    return int(result or 0)


# OS errors that are the machine's or the user's to fix, not bugs: one line, exit 2.
USER_OS_ERRORS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
}


def environment_error(exc: BaseException, fallback: str | None = None) -> str | None:
    """'PATH: reason' for a full disk, a permission problem and the like anywhere in the chain of `exc`.

    Writes that fail mid-file carry no file name; `fallback` (the command's output) names them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in USER_OS_ERRORS:
            where = current.filename or fallback or "(no path given)"
            return f"{where}: {current.strerror or os.strerror(current.errno)}"
        current = current.__cause__ or current.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
