"""Build the tiny benchmark: data, tokenizer, a pre-trained base and two fine-tuned experts.

Output (the data contract shared with the evaluator)::

    OUT/bench.json                       version (BENCH_VERSION), size, seed, build_seconds, phase_seconds, models (accuracy
                                         of every model on both test sets), tasks (counts), versions
    OUT/models/{base,math,multilingual}/ HF checkpoints (config.json, model.safetensors,
                                         generation_config.json, tokenizer files)
    OUT/data/{math,multilingual}/{train,validation,test}.jsonl
    OUT/data/pretrain/train.jsonl        {"id", "text"}: the base model's corpus (not part of
                                         the contract; written for inspection)

``bench.json`` is written last: its presence marks a complete build. Everything else is
a pure function of (size, seed, device, the CPU kernels, library versions): the same inputs
give byte-identical data files, tokenizer files and weights. ``bench.json`` is the exception
(it records the build time). On the CPU the build runs in a child process whose kernels are
pinned (:mod:`saemerge.bench.numerics`), so any x86-64 machine with AVX2 builds the same
bytes, with 1 or 2 threads (which give the same bytes).

What each model learns, modelled on real LLM merging (a capable base, small
fine-tunes on top of it, so that merges of the experts keep both skills):

- the base (:func:`base_texts`): word problems other than the task's, solved in a
  textbook frame (:func:`~saemerge.bench.mathdata.worked_example`), arithmetic drills
  in the exam's ``Question:``/``Answer:``/``#### N`` frame, and answered multiple-choice
  items about relations the task never asks, in all the task's languages. It can solve
  stories and knows both answer formats, but scores ~0 on the math test (it never
  answered a story in the exam's frame) and ~chance on the multilingual test (it never
  saw the task's facts);
- the math expert: the base fine-tuned on math prompts and GSM8K-style answers only,
  the multilingual expert on the multiple-choice prompts and answer letters only, both
  with the evaluator's exact prompts (:mod:`saemerge.evaluate.formats`), loss on the answer
  only, a low learning rate, few steps and an L2-SP pull towards the base
  (``expert_anchor``), every other step taken at half the task vector
  (``expert_scale_cycle``). Their task vectors are ~5-20 % of the base's weights in norm
  and nearly orthogonal, and each skill holds at half its vector, so a weight average of
  the two (and task arithmetic) keeps much of both skills.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from saemerge.bench.checkpoints import llama_config, new_model, save_checkpoint
from saemerge.bench.experts import EXPERTS, load_base, test_scores, train_expert, train_experts_concurrently
from saemerge.bench.mathdata import iter_drills, iter_problems, worked_example
from saemerge.bench.mcdata import make_items
from saemerge.bench.numerics import build_threads, in_pinned_process, pinned_env, pinned_kernels
from saemerge.bench.sizes import base_fields, get_size
from saemerge.bench.splits import load_split, unique_by_question, write_jsonl, write_splits
from saemerge.bench.tokenizer import load_tokenizer, train_tokenizer
from saemerge.bench.training import encode_texts, train
from saemerge.errors import SaeMergeError, unknown_name
from saemerge.evaluate import formats

log = logging.getLogger(__name__)

MODELS = ("base", "math", "multilingual")

#: The build's format and content version, recorded in ``bench.json`` as ``"version"``.
#: Bump it whenever the same (size, seed) would give different bytes (data, tokenizer,
#: weights), so that cached benches built by older code can be recognised and rebuilt.
#: 2: bigger test sets (``math_test_extra``, ``ml_test_extra``) and a ``"cluster"`` per
#: test item; the models and every other item are unchanged.
BENCH_VERSION = 2
_OUTPUTS = ("bench.json", "models", "data")  # what --force replaces

#: Appended after every training target so the model learns to stop: the first of the
#: evaluator's stop sequences.
END_OF_EXAMPLE = formats.STOP_SEQUENCES[0]


def training_text(prompt: str, target: str) -> str:
    """One training example's text (the trainer appends EOS as a token)."""
    return prompt + target + END_OF_EXAMPLE


def base_texts(worked: list[dict], drills: list[dict], mc_pretrain: list[dict], seed: int) -> list[str]:
    """The base model's "generic" corpus, shuffled; it holds no item of either task.

    Args:
        worked: word problems that are in no split; written as worked examples in a
            textbook frame, not the exam's.
        drills: arithmetic drills, written in the exam's frame (prompt, answer, ``#### N``).
        mc_pretrain: answered multiple-choice items about relations the task never asks.
    """
    texts = [worked_example(x) + END_OF_EXAMPLE for x in worked]
    texts += [
        training_text(formats.mc_prompt(x["question"], x["options"]), formats.mc_target(x["answer_index"]))
        for x in mc_pretrain
    ]
    texts += [training_text(formats.math_prompt(x["question"]), formats.math_target(x["answer"])) for x in drills]
    random.Random(f"base-corpus-{seed}").shuffle(texts)
    return texts


def choice_token_texts(n_corpus: int) -> list[str]:
    """Corpus lines that make every choice continuation (" A" ... " J") one token.

    Rare letters (an answer J needs 10 options) would otherwise stay two byte tokens in
    small vocabularies; one token each keeps scoring to one forward pass per item.
    """
    line = END_OF_EXAMPLE.join(f"Answer:{c}" for c in formats.mc_choices(len(formats.LETTERS)))
    return [line] * max(100, n_corpus // 5)


def math_pairs(items: list[dict]) -> tuple[list[str], list[str]]:
    """(prompts, completions) for the math expert: exactly the evaluator's prompt and target."""
    return (
        [formats.math_prompt(x["question"]) for x in items],
        [formats.math_target(x["answer"]) + END_OF_EXAMPLE for x in items],
    )


def mc_pairs(items: list[dict]) -> tuple[list[str], list[str]]:
    """(prompts, completions) for the multilingual expert."""
    return (
        [formats.mc_prompt(x["question"], x["options"]) for x in items],
        [formats.mc_target(x["answer_index"]) + END_OF_EXAMPLE for x in items],
    )


def versions() -> dict[str, str]:
    import tokenizers
    import transformers

    import saemerge

    return {
        "saemerge": getattr(saemerge, "__version__", "unknown"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
    }


def prepare_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty ``out_dir`` unless ``force``; with ``force`` remove only earlier bench outputs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SaeMergeError(f"--out {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise SaeMergeError(f"--out {out_dir}: directory is not empty; pass --force to overwrite")
        for name in _OUTPUTS:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


@contextmanager
def _torch_settings(threads: int):
    """Fixed thread count and deterministic kernels for the build; restored afterwards."""
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


class _Phases:
    """Wall time per build phase, logged as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        log.info("bench build: %s ...", name)
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("bench build: %s done in %.1f s", name, self.seconds[name])


def build_bench(
    out_dir: Path,
    size: str = "tiny",
    seed: int = 0,
    *,
    force: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    overrides: dict | None = None,
    base_from: Path | None = None,
    concurrent_experts: bool | None = None,
) -> dict:
    """Build the benchmark into ``out_dir`` and return the ``bench.json`` dict.

    Args:
        out_dir: a local directory; must be empty or absent unless ``force``.
        size: ``micro`` (seconds, for tests), ``tiny`` (minutes on a laptop CPU), ``small``.
        seed: seeds data, tokenizer corpus order, initialisation and batch order.
        force: replace an earlier build's outputs in ``out_dir``.
        device: torch device for training and scoring (``cpu``, ``cuda``).
        threads: torch CPU threads; default: 1 or 2, as cores are free (1 and 2 give the same
            bytes, :func:`~saemerge.bench.numerics.build_threads`). On the CPU the
            build runs in a child process started with pinned kernels and this many threads
            (:mod:`saemerge.bench.numerics`), unless this process was started so.
        overrides: replace fields of the size's :class:`~saemerge.bench.sizes.BenchSize`
            (e.g. ``{"math_steps": 2000}``), for experiments.
        base_from: a finished build whose data, tokenizer and base to copy instead of
            pre-training (its size must have this size's data and base fields,
            :func:`~saemerge.bench.sizes.base_fields`). Default, for a size with ``base_of``
            (``plain``): the build ``<base_of>-seed<seed>`` beside ``out_dir`` (the local
            runner's bench cache) when it is finished and of this code's version.
        concurrent_experts: train the two experts side by side, one thread each
            (:func:`~saemerge.bench.experts.train_experts_concurrently`; the same bytes as in
            turn); default: on the CPU when the build has 2 threads and 2 cores are idle when
            the experts start (measured then).

    Raises:
        SaeMergeError: unknown size, negative seed, non-empty ``out_dir`` without ``force``,
            unavailable device.
    """
    spec = get_size(size)
    if overrides:
        unknown = set(overrides) - set(spec.to_dict())
        if unknown:
            raise unknown_name("bench size field", sorted(unknown)[0], spec.to_dict())
        spec = dataclasses.replace(spec, **overrides)
    if seed < 0:
        raise SaeMergeError(f"--seed {seed}: must be >= 0")
    if threads is not None and threads < 1:
        raise SaeMergeError(f"--threads {threads}: must be >= 1")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SaeMergeError(f"--device {device}: CUDA is not available on this machine")
    threads = threads or build_threads()
    out_dir = Path(out_dir)
    base_from = (
        _cached_base(out_dir, spec, seed) if base_from is None else _check_base_from(Path(base_from), spec, seed)
    )
    created = not out_dir.exists()
    prepare_out_dir(out_dir, force)
    if device == "cpu" and not in_pinned_process(threads):
        with _no_partial_build(out_dir, created):
            return _build_in_child(out_dir, size, seed, threads, overrides, base_from, concurrent_experts)
    with _no_partial_build(out_dir, created):
        return _build(out_dir, spec, seed, device, threads, overrides, base_from, concurrent_experts)


def _finished_build(path: Path) -> dict | None:
    """``bench.json`` of a finished build of this code's version at ``path``, else None."""
    try:
        bench = json.loads((path / "bench.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bench if bench.get("version") == BENCH_VERSION and (path / "models" / "base").is_dir() else None


def _cached_base(out_dir: Path, spec, seed: int) -> Path | None:
    """The finished ``<base_of>-seed<seed>`` build beside ``out_dir`` whose data and base this size shares."""
    if spec.base_of is None:
        return None
    cached = out_dir.resolve().parent / f"{spec.base_of}-seed{seed}"
    bench = _finished_build(cached)
    if bench is None or bench.get("seed") != seed or base_fields(bench.get("config", {})) != base_fields(spec):
        return None
    log.info("bench build: data, tokenizer and base from the cached %s build %s", spec.base_of, cached)
    return cached


def _check_base_from(path: Path, spec, seed: int) -> Path:
    bench = _finished_build(path)
    if bench is None:
        raise SaeMergeError(f"--base-from {path}: not a finished bench build of version {BENCH_VERSION}")
    if bench.get("seed") != seed:
        raise SaeMergeError(f"--base-from {path}: built with seed {bench.get('seed')}, not {seed}")
    if base_fields(bench.get("config", {})) != base_fields(spec):
        raise SaeMergeError(f"--base-from {path}: its size {bench.get('size')!r} has other data or base settings")
    return path.resolve()


def _disk_full(exc: BaseException) -> bool:
    """A full disk (or quota) anywhere in exc's chain; safetensors reports it as text only."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def _no_partial_build(out_dir: Path, created: bool):
    """On a failure, remove what the build wrote (and ``out_dir`` if the build made it); a full
    disk becomes one line naming the directory and its free space."""
    try:
        yield
    except BaseException as exc:
        for name in _OUTPUTS:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, Exception) and _disk_full(exc):
            free = shutil.disk_usage(out_dir if out_dir.exists() else out_dir.parent).free
            raise SaeMergeError(
                f"--out {out_dir}: no space left on device ({free / 2**20:.1f} MiB free); the partial build was removed"
            ) from None
        raise


def _make_base(out_dir: Path, spec, seed: int, device: str, phase: _Phases):
    """Data, tokenizer and the pre-trained base, written to ``out_dir``; returns
    (math splits, multilingual splits, counts, tokenizer, base)."""
    data_dir, models_dir = out_dir / "data", out_dir / "models"
    with phase("data"):
        n_train, n_val, n_test = spec.math_counts
        # Worked problems for the base come after the splits: disjoint from them by question.
        # The extra test problems come after everything else, so no earlier split changes.
        math = unique_by_question(
            iter_problems(seed),
            {
                "test": n_test,
                "validation": n_val,
                "train": n_train,
                "pretrain": spec.pretrain_problems,
                "test_extra": spec.math_test_extra,
            },
        )
        math["test"] += math.pop("test_extra")
        langs = list(spec.ml_languages)
        mc = make_items(
            seed, langs, spec.ml_relations, spec.ml_subjects, spec.ml_pretrain_relations, spec.ml_test_extra
        )
        counts = {
            "math": write_splits(data_dir, "math", math),
            "multilingual": write_splits(data_dir, "multilingual", mc),
        }
        drills = list(itertools.islice(iter_drills(seed), spec.base_drills))
        generic = base_texts(math["pretrain"], drills, mc.get("pretrain", []), seed)
        counts["pretrain"] = {
            "train": write_jsonl(
                data_dir / "pretrain" / "train.jsonl",
                ({"id": f"pre-train-{i}", "text": t} for i, t in enumerate(generic)),
            )
        }

    with phase("tokenizer"):
        math_prompts, math_completions = math_pairs(math["train"])
        mc_prompts, mc_completions = mc_pairs(mc["train"])
        corpus = generic + [p + c for p, c in zip(math_prompts + mc_prompts, math_completions + mc_completions)]
        corpus += choice_token_texts(len(corpus))
        tokenizer = train_tokenizer(corpus, spec.vocab_size, model_max_length=512)

    common = dict(batch_size=spec.batch_size, warmup=spec.warmup_steps, pad_id=tokenizer.pad_token_id, device=device)
    with phase("base"):
        base = new_model(llama_config(spec, tokenizer), seed)
        train(
            base,
            encode_texts(tokenizer, generic, spec.max_len),
            steps=spec.base_steps,
            lr=spec.base_lr,
            seed=seed * 10 + 1,
            desc="base",
            **common,
        )
        save_checkpoint(base, tokenizer, models_dir / "base")

    return math, mc, counts, tokenizer, base


def _copy_base(cached: Path, out_dir: Path, spec):
    """Data, tokenizer and base copied from the finished build ``cached`` of a size with the same
    data and base fields (:func:`~saemerge.bench.sizes.base_fields`); returns what :func:`_make_base` does."""
    shutil.copytree(cached / "data", out_dir / "data")
    shutil.copytree(
        cached / "models" / "base", out_dir / "models" / "base", ignore=shutil.ignore_patterns("manifest.json")
    )
    tokenizer = load_tokenizer(out_dir / "models" / "base")
    base = load_base(out_dir / "models" / "base", spec, tokenizer)
    data = out_dir / "data"
    math = {split: load_split(data, "math", split) for split in ("train", "test")}
    mc = {split: load_split(data, "multilingual", split) for split in ("train", "test")}
    counts = json.loads((cached / "bench.json").read_text(encoding="utf-8"))["tasks"]
    return math, mc, counts, tokenizer, base


def _build(
    out_dir: Path,
    spec,
    seed: int,
    device: str,
    threads: int,
    overrides: dict | None,
    base_from: Path | None,
    concurrent: bool | None,
) -> dict:
    """The build itself, in this process (pinned kernels, `threads` threads)."""
    models_dir = out_dir / "models"
    phase = _Phases()
    start = time.perf_counter()
    with _torch_settings(threads):
        if base_from is not None:
            with phase("data, tokenizer and base (copied)"):
                math, mc, counts, tokenizer, base = _copy_base(base_from, out_dir, spec)
        else:
            math, mc, counts, tokenizer, base = _make_base(out_dir, spec, seed, device, phase)
        items = {"math": math["train"], "multilingual": mc["train"]}
        tests = {"math": math["test"], "multilingual": mc["test"]}
        # Two free cores now (measured, not assumed from the base's threads): the experts side by side.
        if concurrent is None:
            concurrent = device == "cpu" and threads >= 2 and build_threads() >= 2
        if concurrent:
            scores = train_experts_concurrently(
                out_dir, spec.name, overrides, seed, base, tokenizer, items, spec, phase
            )
        else:
            experts = {}
            for name in EXPERTS:
                with phase(f"{name} expert"):
                    experts[name] = train_expert(base, tokenizer, name, items[name], spec, seed, device)
                    save_checkpoint(experts[name], tokenizer, models_dir / name, tokenizer_from=models_dir / "base")
            with phase("evaluate"):
                scores = {}
                for name, model in (("base", base), *experts.items()):
                    model.to(device)
                    scores[name] = test_scores(model, tokenizer, tests, spec.eval_batch_size)
        for name in MODELS:
            log.info("bench build: %s accuracy %s", name, scores[name])

    bench = {
        "version": BENCH_VERSION,
        "size": spec.name,
        "seed": seed,
        "build_seconds": round(time.perf_counter() - start, 2),
        "phase_seconds": phase.seconds,
        "models": scores,
        "tasks": counts,
        "languages": list(spec.ml_languages),
        "config": spec.to_dict(),
        "device": device,
        "threads": threads,
        "experts": "concurrent" if concurrent else "in turn",
        "base_from": str(base_from) if base_from is not None else None,
        "kernels": pinned_kernels() if device == "cpu" else {},
        "versions": versions(),
    }
    (out_dir / "bench.json").write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
    return bench


def _build_in_child(
    out_dir: Path,
    size: str,
    seed: int,
    threads: int,
    overrides: dict | None,
    base_from: Path | None,
    concurrent_experts: bool | None,
) -> dict:
    """Run the build in a fresh process started with :func:`~saemerge.bench.numerics.pinned_env`."""
    args = {
        "out_dir": str(out_dir),
        "size": size,
        "seed": seed,
        "threads": threads,
        "overrides": overrides,
        "base_from": str(base_from) if base_from is not None else None,
        "concurrent_experts": concurrent_experts,
        "log_level": logging.getLogger("saemerge").getEffectiveLevel(),
    }
    env = {**os.environ, **pinned_env(threads)}
    log.info("bench build: a worker process with %d thread(s), kernels %s", threads, pinned_kernels() or "unpinned")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="saemerge-bench-") as tmp:
        error_file = Path(tmp) / "error.txt"
        args["error_file"] = str(error_file)
        done = subprocess.run([sys.executable, "-m", "saemerge.bench.build", json.dumps(args)], env=env)
        if done.returncode == 2 and error_file.exists():  # the worker's one-line error
            raise SaeMergeError(error_file.read_text(encoding="utf-8").strip())
    if done.returncode != 0:
        raise RuntimeError(f"the bench build's worker process failed (exit {done.returncode}); its error is above")
    bench = json.loads((out_dir / "bench.json").read_text(encoding="utf-8"))
    # the whole wall time, the worker's start (imports) included
    total = time.perf_counter() - start
    bench["phase_seconds"] = {"worker start": round(total - bench["build_seconds"], 2), **bench["phase_seconds"]}
    bench["build_seconds"] = round(total, 2)
    (out_dir / "bench.json").write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
    return bench


def _worker(argv: list[str]) -> int:
    """The child process of :func:`_build_in_child`: ``python -m saemerge.bench.build ARGS_JSON``."""
    args = json.loads(argv[0])
    error_file = args.pop("error_file", None)
    logging.basicConfig(level=args.pop("log_level"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # force: the parent prepared out_dir (only bench outputs were removed, and they are gone)
        build_bench(Path(args.pop("out_dir")), force=True, **args)
    except SaeMergeError as exc:  # a full disk too (_no_partial_build): the parent says it, once
        if error_file:
            Path(error_file).write_text(str(exc), encoding="utf-8")
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
