"""The ``saemerge`` command line.

Each area of the tool keeps its verbs in its own module with a ``register(subparsers)``
function; this module lists them explicitly (no registration by import side effects)
and turns :class:`~saemerge.errors.SaeMergeError` into a one-line message and exit code 2.
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

from saemerge.errors import SaeMergeError

# Modules under saemerge.cli that add verbs. Imported lazily so `saemerge schedule`
# does not pay for kfp or lm-eval imports.
VERB_MODULES = ("core", "store", "cache", "bench", "evaluate", "pipeline", "submit", "upload", "study")


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
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action=_Version, help="print the version and git commit, and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"saemerge.cli.{name}")
        except ModuleNotFoundError as exc:  # an area not built yet
            if exc.name == f"saemerge.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
