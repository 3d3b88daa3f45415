"""``saemerge evaluate``: score one checkpoint with lm-eval and print per-task accuracy.

    saemerge evaluate .saemerge/bench/models/math --data .saemerge/bench
    saemerge evaluate MODEL --tasks saebench_math --samples gen-03/saebench_math.jsonl
    saemerge evaluate s3://bucket/run/models/<hash> --data bench --split opt --size 64 \\
        --generation 3 --out s3://bucket/run/eval/results.parquet

With ``--data`` the examples are drawn here: the test split (``--split test``, the default;
``--size`` subsamples it, stratified by language where the task has one) or an
optimisation set (``--split opt``, ``--size`` required, seeded by ``--sample-seed`` and
``--generation``). With ``--samples`` the given JSONL files are scored as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from saemerge.errors import SaeMergeError


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a checkpoint on tasks (lm-eval), per example")
    p.add_argument("model", metavar="MODEL", help="HF checkpoint directory or s3:// URI (with tokenizer)")
    p.add_argument("--tasks", help="comma-separated task names (default: those with data, or named by --samples)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="DIR", help="data root, or a tiny-benchmark directory holding data/")
    src.add_argument(
        "--samples",
        nargs="+",
        metavar="[TASK=]FILE",
        help="JSONL samples; the task is TASK= or the file name's stem (saebench_math.jsonl)",
    )
    p.add_argument(
        "--split",
        choices=("test", "opt"),
        default="test",
        help="with --data: the test split, or an optimisation set from train/validation",
    )
    p.add_argument("--size", type=int, help="with --data: examples per task (default: whole test split)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed for drawing examples (default 0)")
    p.add_argument("--generation", type=int, default=0, help="with --split opt: the generation index")
    p.add_argument("--shots", type=int, help="few-shot examples per doc (default: the task's)")
    p.add_argument("--limit", type=int, help="score only the first N examples of each task")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--batch-size", default="16", help="an integer, or auto")
    p.add_argument("--max-gen-toks", type=int, help="cap on generated tokens for generation tasks")
    p.add_argument(
        "--tasks-dir", metavar="DIR", help="a task directory (lm-eval YAMLs + sidecars), local or s3:// (published)"
    )
    # default None: the task directory's saemerge.yaml decides (docs/own-tasks.md)
    p.add_argument(
        "--apply-chat-template", action="store_true", default=None, help="render prompts with the model's chat template"
    )
    p.add_argument("--system-instruction", help="a system message before each prompt")
    p.add_argument(
        "--fewshot-as-multiturn", action="store_true", default=None, help="shots as chat turns (with the chat template)"
    )
    p.add_argument(
        "--allow-task-code", action="store_true", help="let the task directory's Python (!function, .py files) run"
    )
    p.add_argument("--out", metavar="FILE", help="write the per-example table as Parquet (local path or s3://)")
    p.set_defaults(func=_evaluate)


def _positive(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise SaeMergeError(f"{flag} {value}: must be at least 1")


def _samples_from_files(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        task, sep, file = item.partition("=")
        if not sep:
            file, task = item, Path(item).name.split(".")[0]
        if task in out:
            raise SaeMergeError(f"--samples: two files for task {task}")
        out[task] = Path(file)
    return out


def _draw(args: argparse.Namespace, out_dir: Path, task_dir: Path | None) -> dict[str, Path]:
    from saemerge.evaluate.sampling import draw_test_set, sample_optimisation_set
    from saemerge.evaluate.taskset import resolve_tasks, shipped_tasks
    from saemerge.evaluate.taskspec import resolve_data_root

    if args.tasks:
        tasks = resolve_tasks(args.tasks, task_dir)
        root = resolve_data_root(args.data, tasks.data_dirs)
    else:  # the shipped tasks whose data is there
        shipped = shipped_tasks()
        root = resolve_data_root(args.data, [s.data for s in shipped.values()])
        names = [t for t, s in shipped.items() if (root / s.data).is_dir()]
        if not names:
            raise SaeMergeError(
                f"--data {args.data}: no task data found (expected {', '.join(s.data for s in shipped.values())}); "
                "name the tasks with --tasks"
            )
        tasks = resolve_tasks(names)
    if args.split == "opt":
        if args.size is None:
            raise SaeMergeError("--split opt needs --size (examples per task)")
        return sample_optimisation_set(
            tasks,
            args.size,
            data=root,
            seed=args.sample_seed,
            generation=args.generation,
            out_dir=out_dir,
            shots=args.shots,
        )
    return draw_test_set(tasks, args.size, data=root, seed=args.sample_seed, out_dir=out_dir, shots=args.shots)


def _evaluate(args: argparse.Namespace) -> int:
    from saemerge import storage
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.evaluate.tasksafety import check_task_safety
    from saemerge.evaluate.taskset import resolve_tasks

    for flag, value in (("--size", args.size), ("--limit", args.limit), ("--max-gen-toks", args.max_gen_toks)):
        _positive(flag, value)
    batch_size: int | str = args.batch_size
    if batch_size != "auto":
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise SaeMergeError(f"--batch-size {args.batch_size}: not an integer or 'auto'") from None
        _positive("--batch-size", batch_size)

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="saemerge-evaluate-"))
        task_dir = Path(stack.enter_context(storage.local_input(args.tasks_dir))) if args.tasks_dir else None
        if args.samples:
            samples = _samples_from_files(args.samples)
            if args.tasks:
                wanted = [t.strip() for t in args.tasks.split(",") if t.strip()]
                missing = [t for t in wanted if t not in samples]
                if missing:
                    raise SaeMergeError(f"--tasks {','.join(missing)}: no --samples file for it")
                samples = {t: samples[t] for t in wanted}
            tasks = resolve_tasks(list(samples), task_dir)
            for file in samples.values():
                if not file.is_file():
                    raise SaeMergeError(f"--samples {file}: no such file")
        else:
            samples = _draw(args, Path(tmp) / "samples", task_dir)
            tasks = resolve_tasks(list(samples), task_dir)
        check_task_safety(tasks, allow_code=args.allow_task_code)
        model_dir = stack.enter_context(storage.local_input(args.model))
        evaluator = stack.enter_context(
            Evaluator(
                tasks,
                device=args.device,
                dtype=args.dtype,
                batch_size=batch_size,
                max_gen_toks=args.max_gen_toks,
                workdir=Path(tmp) / "work",
                apply_chat_template=args.apply_chat_template,
                system_instruction=args.system_instruction,
                fewshot_as_multiturn=args.fewshot_as_multiturn,
                allow_task_code=args.allow_task_code,
            )
        )
        result = evaluator.score(model_dir, samples, limit=args.limit)
        result.model = str(args.model)
        print(result.summary())
        if args.out:
            local = result.write_parquet(Path(tmp) / "results.parquet")
            storage.write_bytes(args.out, local.read_bytes())
            print(f"per-example results: {args.out}")
    return 0
