"""`saemerge prune | merge | schedule | sparsity | attribute | hash`: the core library on the command line.

Inputs and outputs are local paths or ``s3://bucket/prefix`` URIs. Outputs are published
atomically: a crash or a bad input leaves nothing at the output URI.
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack

from saemerge.errors import SaeMergeError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def check_sparsity(flag: str, value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise SaeMergeError(f"{flag} {value}: sparsity must lie in [0, 1)")
    return value


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--max-shard-size", default="2GB", help="largest output shard, e.g. 500MB (default: 2GB)")
    p.add_argument(
        "--block-size",
        default=None,
        metavar="N",
        help="process tensors above N entries in row blocks of at most N (e.g. 4M, 1048576; "
        "K/M/G are binary; default 2M); outputs do not depend on it, peak memory does",
    )


def _block_elems(args: argparse.Namespace) -> int | None:
    from saemerge.core.blocks import parse_block_size

    if args.block_size is None:
        return None
    try:
        return parse_block_size(args.block_size)
    except ValueError as exc:
        raise SaeMergeError(f"--block-size {args.block_size!r}: {exc}") from None


def _inputs(stack: ExitStack, *uris: str | None):
    from saemerge.storage import local_input

    return [stack.enter_context(local_input(u)) if u is not None else None for u in uris]


def cmd_prune(args: argparse.Namespace) -> int:
    from saemerge.checkpoint import parse_size
    from saemerge.ops import prune_checkpoint
    from saemerge.storage import local_output

    check_sparsity("--sparsity", args.sparsity)
    shard = parse_size(args.max_shard_size)
    block = _block_elems(args)
    with ExitStack() as stack:
        src, base = _inputs(stack, args.src, args.base)
        summary: dict = {}
        with local_output(args.out, content_hash=lambda: summary["content_hash"]) as out:
            summary = prune_checkpoint(
                src,
                out,
                args.sparsity,
                base=base,
                space=args.space,
                granularity=args.granularity,
                device=args.device,
                max_shard_bytes=shard,
                block_elems=block,
            )
    _print_json({"out": args.out, **summary})
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from saemerge.checkpoint import parse_size
    from saemerge.core.baselines import get_method
    from saemerge.ops import merge_checkpoints, sae_merge_checkpoints
    from saemerge.storage import local_output

    get_method(args.method)  # unknown names fail here, with the closest ones suggested
    shard = parse_size(args.max_shard_size)
    block = _block_elems(args)
    if args.method == "sae":
        for flag in ("weights", "alpha", "density", "drop_p"):
            if getattr(args, flag) is not None:
                raise SaeMergeError(f"--{flag.replace('_', '-')} does not apply to --method sae")
        if len(args.models) != 2:
            raise SaeMergeError(f"--models: sae merges exactly two parents, got {len(args.models)}")
        if args.scores is None or len(args.scores) != 2:
            raise SaeMergeError("--scores SA SB is required by --method sae (the parents' performance in [0, 1])")
        check_sparsity("--sparsity", args.sparsity)
    with ExitStack() as stack:
        *models, base = _inputs(stack, *args.models, args.base)
        summary: dict = {}
        with local_output(args.out, content_hash=lambda: summary["content_hash"]) as out:
            if args.method == "sae":
                summary = sae_merge_checkpoints(
                    models[0],
                    models[1],
                    args.scores[0],
                    args.scores[1],
                    out,
                    base=base,
                    sparsity=args.sparsity,
                    scoring=args.scoring,
                    beta=args.beta,
                    attraction=args.attraction,
                    measure=args.measure,
                    granularity=args.granularity,
                    device=args.device,
                    max_shard_bytes=shard,
                    block_elems=block,
                )
                summary.pop("lambdas")
            else:
                summary = merge_checkpoints(
                    args.method,
                    models,
                    out,
                    base=base,
                    seed=args.seed,
                    device=args.device,
                    max_shard_bytes=shard,
                    weights=args.weights,
                    alpha=args.alpha,
                    density=args.density,
                    drop_p=args.drop_p,
                    block_elems=block,
                )
            _write_card(out, args, summary)
    _print_json({"out": args.out, "method": args.method, **summary})
    return 0


def _write_card(out, args: argparse.Namespace, summary: dict) -> None:
    """The merged model's card (README.md), as the pipeline's merges and mergekit write one.

    Inputs are named by the URIs given on the command line (no identity is computed: that
    would read every input's files again)."""
    from saemerge.run.layout import member_id
    from saemerge.steps.cards import CARD_NAME, render_card

    sae = args.method == "sae"
    names = ("sparsity", "scoring", "beta", "attraction", "measure", "granularity") if sae else ()
    params = {n: getattr(args, n) for n in names}
    if sae:
        params["scores"] = list(args.scores)
    else:
        params.update({n: getattr(args, n) for n in ("weights", "alpha", "density", "drop_p")})
        params = {k: v for k, v in params.items() if v is not None}
    recipe = {"op": "merge", "method": args.method, **params, "experts": list(args.models)}
    if args.base is not None:
        recipe["base"] = args.base
    record = {
        "id": member_id(summary["content_hash"]),
        "content_hash": summary["content_hash"],
        "origin": args.method,
        **{k: summary[k] for k in ("lambda_min", "lambda_mean", "lambda_max") if k in summary},
    }
    if sae and "rho" in summary:
        record["sparsity"] = summary["rho"]
    inputs = {u: u for u in [*args.models, *([args.base] if args.base else [])]}
    text = render_card(record, recipe, base_model=str(args.base or "none"), run=None, seed=args.seed, inputs=inputs)
    (out / CARD_NAME).write_text(text, encoding="utf-8")


def cmd_schedule(args: argparse.Namespace) -> int:
    from saemerge.config import check_sparsity_range, flag_name, typed
    from saemerge.core.schedule import cyclic_schedule

    p = typed(
        label=flag_name,
        steps=args.steps,
        s_min=args.s_min,
        s_max=args.s_max,
        t0=args.t0,
        t_mult=args.t_mult,
        reverse=args.reverse,
    )
    check_sparsity_range(p["s_min"], p["s_max"], flag_name)
    values = cyclic_schedule(**p)
    print(json.dumps([round(v, 6) for v in values]))
    return 0


def cmd_sparsity(args: argparse.Namespace) -> int:
    from saemerge.ops import checkpoint_sparsity

    with ExitStack() as stack:
        src, base = _inputs(stack, args.src, args.base)
        _print_json(checkpoint_sparsity(src, base=base, measure=args.measure, per_tensor=args.per_tensor))
    return 0


def cmd_attribute(args: argparse.Namespace) -> int:
    from saemerge.config import model_name
    from saemerge.ops.attribution import attribute_checkpoint

    if not args.experts:
        raise SaeMergeError("--experts: at least one expert is needed")
    if not args.base:
        raise SaeMergeError("--base: the experts' base model is needed (task vectors are measured against it)")
    with ExitStack() as stack:
        model, base, *experts = _inputs(stack, args.model, args.base, *args.experts)
        result = attribute_checkpoint(model, base, experts, names=[model_name(e) for e in args.experts])
    _print_json({"model": args.model, "base": args.base, **result})
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    from saemerge.ops import checkpoint_content_hash

    with ExitStack() as stack:
        (src,) = _inputs(stack, args.src)
        print(checkpoint_content_hash(src))
    return 0


def register(sub) -> None:
    p = sub.add_parser("prune", help="magnitude-prune a checkpoint (SAE-SPEC §1)")
    p.add_argument("src", metavar="SRC", help="checkpoint directory or s3:// URI")
    p.add_argument("--sparsity", type=float, required=True, help="fraction of entries set to zero, in [0, 1)")
    p.add_argument("--base", help="base model: prune the task vector (delta space, the default with a base)")
    p.add_argument("--space", choices=("delta", "weight"), help="delta (needs --base) or weight")
    p.add_argument("--granularity", choices=("tensor", "global"), default="tensor")
    p.add_argument("--out", required=True, metavar="DST")
    _add_device(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("merge", help="merge checkpoints with SAE or a baseline (SAE-SPEC §3, §7)")
    from saemerge.core.baselines import MERGE_METHODS

    p.add_argument("--method", required=True, help=", ".join(MERGE_METHODS))
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL")
    p.add_argument("--base", help="base model the experts were fine-tuned from")
    p.add_argument("--weights", nargs="+", type=float, help="per-model weights")
    p.add_argument("--alpha", type=float, help="task-vector scale (default 1.0)")
    p.add_argument("--density", type=float, help="TIES: fraction of each task vector kept (default 0.2)")
    p.add_argument("--drop-p", type=float, help="DARE: drop probability (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="DARE: seed")
    p.add_argument("--scores", nargs=2, type=float, metavar=("SA", "SB"), help="SAE: parents' scores in [0, 1]")
    p.add_argument("--scoring", choices=("global", "local"), default="global", help="SAE: ρ per model or per tensor")
    p.add_argument("--beta", type=float, default=1.0, help="SAE: sparsity weight β (default 1.0)")
    p.add_argument("--attraction", choices=("linear", "fill"), default="linear")
    p.add_argument("--sparsity", type=float, default=0.0, help="SAE: generation sparsity s_t for parents and child")
    p.add_argument("--measure", choices=("zero_count", "hoyer"), default="zero_count")
    p.add_argument("--granularity", choices=("tensor", "global"), default="tensor")
    p.add_argument("--out", required=True, metavar="DST")
    _add_device(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("schedule", help="print the cyclic sparsity schedule as JSON (SAE-SPEC §5)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--s-min", type=float, default=0.1)
    p.add_argument("--s-max", type=float, default=0.6)
    p.add_argument("--t0", type=int, default=3)
    p.add_argument("--t-mult", type=int, default=2)
    p.add_argument("--reverse", action="store_true", help="run each cycle from s_max down to s_min")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("sparsity", help="print a checkpoint's sparsity ρ as JSON (SAE-SPEC §2)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("--base", help="measure the task vector against this base")
    p.add_argument("--measure", choices=("zero_count", "hoyer"), default="zero_count")
    p.add_argument("--per-tensor", action="store_true")
    p.set_defaults(func=cmd_sparsity)

    p = sub.add_parser(
        "attribute",
        help="attribute a model to the experts: least-squares coefficients of its task vector, "
        "the residual's share, each expert's top-10 %% entries kept (JSON)",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory or s3:// URI")
    p.add_argument("--base", help="the experts' base model (required)")
    p.add_argument("--experts", nargs="*", default=[], metavar="EXPERT", help="the experts (at least one)")
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser("hash", help="print a checkpoint's content hash")
    p.add_argument("src", metavar="SRC")
    p.set_defaults(func=cmd_hash)
