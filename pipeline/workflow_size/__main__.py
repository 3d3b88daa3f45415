"""``python -m saemerge.pipeline.workflow_size``: a compiled pipeline's report, a run's payload
profile, or a refit of the compiled-size model (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from saemerge.pipeline.workflow_size import DESCRIPTION, measure_payloads, refit, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m saemerge.pipeline.workflow_size", description=DESCRIPTION)
    ap.add_argument("pipeline", nargs="?", help="compiled pipeline YAML (spec + platform spec): print its report")
    ap.add_argument("--refit", metavar="KFP_REPO", help="fit the compiled-size model on this kubeflow/pipelines repo")
    ap.add_argument("--measure", metavar="RUN_DIR", help="print the payload profile of a kfp.local run")
    ap.add_argument("--run-root", help="measure payloads from this local run instead of the built-in profile")
    ap.add_argument("--archive-size", type=int, default=8)
    ap.add_argument("--experts", type=int, default=2)
    args = ap.parse_args(argv)
    if args.refit:
        print(json.dumps(refit(Path(args.refit)), indent=2))
    if args.measure:
        run = Path(args.measure)
        profile = measure_payloads(run)
        arguments = run / "arguments.json"
        if arguments.is_file():
            profile["__arguments__"] = json.loads(arguments.read_text())
        print(json.dumps(profile, sort_keys=True))
    if args.pipeline:
        import yaml

        docs = [d for d in yaml.safe_load_all(Path(args.pipeline).read_text()) if d]
        rep = report(
            docs[0],
            docs[1] if len(docs) > 1 else None,
            args.run_root,
            archive_size=args.archive_size,
            experts=args.experts,
        )
        print(rep["text"])
        print(json.dumps({k: v for k, v in rep.items() if k not in ("compiled", "runtime", "text")}, indent=2))
    if not (args.refit or args.measure or args.pipeline):
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
