"""Preflight: cheap checks of a run's inputs before any heavy work.

:func:`check_inputs` reads only what answers "will this run fail?": manifests, the
``config.json`` and tokenizer files of each model, the safetensors *headers* of its shards
(one ranged read each, no weights), and every record of the data splits the run reads. On the tiny test models it takes milliseconds; on
7B checkpoints in S3, a few small GETs per model. A bad input fails with one
:class:`SaeMergeError` line naming it, instead of after minutes of downloads.

What is checked, in this order:

1. Every expert and the base exists: a local directory, or an ``s3://`` directory, either
   *published* (with ``manifest.json``: its files are what the manifest lists) or, for the
   experts and the base, *plain* (a user's HF checkpoint: its files are the objects under the
   prefix; the steps read it the same way, :mod:`saemerge.storage.plain`). ``data_uri`` in
   S3 must be published (``saemerge upload --data``).
2. No input carries code: a ``*.py``/``*.pyc`` file anywhere in it, or ``auto_map`` in its
   ``config.json`` or ``tokenizer_config.json`` (custom classes loaded with
   ``trust_remote_code``, which saemerge never turns on), is refused, naming the file.
3. The experts and the base hold the same tensors, with the same shapes and dtypes
   (safetensors headers; pickle-only checkpoints are refused as the reader refuses them).
4. Tokenizers agree. The rule, and why:

   - every input ships a tokenizer (``tokenizer.json``, or a slow tokenizer's vocabulary
     file), since the evaluator loads it from the model directory;
   - the *token-to-id mapping* must be identical across experts and base: in
     ``tokenizer.json`` its ``model`` (vocabulary, merges), ``added_tokens``,
     ``normalizer`` and ``pre_tokenizer``; without one, the vocabulary files byte for
     byte. Merged weights are only meaningful if row ``i`` of every embedding is the same
     token. ``decoder``, ``post_processor``, ``padding`` and ``truncation`` may differ;
   - the ``bos_token`` and ``eos_token`` must be identical among the *experts*: an
     offspring takes its tokenizer files from one parent, so a difference would make a
     model's stop token depend on which parent came first. The base may differ (a base
     model and its instruct experts usually do: ``<|endoftext|>`` vs ``<|im_end|>``);
     that, and a differing ``pad_token``/``unk_token`` or chat template, is logged only.

5. Every task's splits exist under ``data_uri`` (a data root, or a tiny-benchmark
   directory holding ``data/``, as :func:`saemerge.evaluate.taskspec.resolve_data_root`
   reads it) with at least the requested sizes: the optimisation size against the task's
   ``pool_splits`` together (train/validation, never test), the test size against
   ``test.jsonl``. Rows are non-blank lines, each a JSON object of at most 1 MiB
   (:data:`saemerge.evaluate.taskspec.MAX_RECORD_BYTES`); the splits a run reads are parsed
   whole, so a bad line fails here, naming the file and line, not at final evaluation.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from saemerge import manifest as mf
from saemerge import storage
from saemerge.checkpoint_format import (
    DTYPE_NAMES,
    INDEX_FILE,
    MAX_HEADER_BYTES,
    decode_header,
    header_length,
    index_shards,
    pickle_weights,
    weight_files,
)
from saemerge.devices import GPU_MERGES_ENV
from saemerge.errors import SaeMergeError

if TYPE_CHECKING:
    from saemerge.config import RunConfig
    from saemerge.evaluate.taskset import TaskSet

log = logging.getLogger(__name__)

# Inputs that may be plain s3:// directories (a user's HF checkpoint without manifest.json).
PLAIN_ROLES = ("expert", "base", "checkpoint")
CODE_SUFFIXES = (".py", ".pyc")
# A slow tokenizer's vocabulary, compared byte for byte when there is no tokenizer.json.
VOCAB_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt", "vocab.txt")
# Sections of tokenizer.json that decide which id a text becomes.
TOKENIZER_SECTIONS = ("model", "added_tokens", "normalizer", "pre_tokenizer")
# One ranged read covers a shard's header in the common case (a 7B shard's is ~30 KB).
_HEAD_BYTES = 256 << 10


def check_inputs(
    experts: Sequence[str],
    base_uri: str,
    data_uri: str,
    opt_sizes: Mapping[str, int],
    test_sizes: Mapping[str, int],
    opt_splits: Sequence[str] | None = None,
    tasks: TaskSet | None = None,
) -> None:
    """Refuse a run whose inputs cannot work, in seconds, before any heavy step.

    Args:
        experts: expert checkpoint URIs (local directories or ``s3://`` ones, published or plain).
        base_uri: the base checkpoint's URI.
        data_uri: the data root (or a tiny-benchmark directory holding ``data/``).
        opt_sizes: optimisation-set examples per task and generation.
        test_sizes: held-out test examples per task.
        opt_splits: the splits optimisation sets draw from (default: every pool split); a pool
            smaller than one generation's sample is refused.
        tasks: the run's task set (default: the shipped and installed lm-eval tasks named by the sizes).

    Raises:
        SaeMergeError: one line naming the input and what is wrong (see the module doc).
    """
    if not experts:
        raise SaeMergeError("experts: at least one expert URI is needed")
    models = [_Source.open(uri, "expert") for uri in experts] + [_Source.open(base_uri, "base")]
    for model in models:
        _check_no_code(model)
    _check_same_tensors([(m.label, _tensors(m)) for m in models])
    _check_tokenizers(models)
    if tasks is None:
        from saemerge.evaluate.taskset import resolve_tasks

        tasks = resolve_tasks([*opt_sizes, *test_sizes])
    _check_data(_Source.open(data_uri, "data_uri"), opt_sizes, test_sizes, opt_splits, tasks)


def check_run_tasks(config: RunConfig) -> dict:
    """Preflight of a whole run: its task set, its inputs, and every task built without a model.

    The task set is resolved (``tasks_uri`` fetched), checked for code
    (:func:`saemerge.evaluate.tasksafety.check_task_safety`), the inputs checked
    (:func:`check_inputs`), and each task built on a few rows of every split the run reads
    (:mod:`saemerge.evaluate.taskcheck`). Nothing is written.

    Returns:
        What ``run.json`` records of the tasks: ``tasks`` (each task's source and sidecar values,
        weights included), ``chat`` (the chat settings), ``task_code`` (code files the opt-in
        lets run, with their sha256),
        ``evaluator_identity`` and ``lm_eval`` (its version).

    Raises:
        SaeMergeError: one line naming the input, the task and its file.
    """
    from importlib.metadata import version

    from saemerge.evaluate.taskcheck import build_tasks
    from saemerge.evaluate.tasksafety import check_task_safety
    from saemerge.steps.score_cache import cache_identity
    from saemerge.steps.settings import run_tasks

    with run_tasks(config) as tasks:
        code = check_task_safety(tasks, allow_code=config.task_code)
        check_inputs(
            config.experts,
            config.base_uri,
            config.data_uri,
            config.opt_sizes,
            config.test_sizes,
            config.splits,
            tasks=tasks,
        )
        build_tasks(tasks, *_few_rows(_Source.open(config.data_uri, "data_uri"), tasks, config.splits))
        identity = cache_identity(config.to_json(), tasks)
        return {
            "tasks": tasks.record(),
            "chat": dict(tasks.chat),
            "task_code": code,
            "evaluator_identity": identity,
            "lm_eval": version("lm_eval"),
        }


# rows of each split a run reads that preflight builds the tasks on
FEW_ROWS = 3


def _few_rows(src: _Source, tasks: TaskSet, opt_splits: Sequence[str]) -> tuple[dict, dict]:
    """The first rows of each split the run reads, per task (ids filled as the sampler fills them),
    and the first rows of its shot split."""
    from saemerge.evaluate.taskspec import parse_record

    tops = {f.split("/", 1)[0] for f in src.files if "/" in f}
    prefix = "data/" if "data" in tops and not any(d in tops for d in tasks.data_dirs) else ""

    def first(spec, split: str | None) -> list[dict]:
        rel = f"{prefix}{spec.data}/{split}.jsonl"
        if split is None or rel not in src.files:
            return []
        out: list[dict] = []
        for lineno, line in enumerate(src.lines(rel), 1):
            if line.strip():
                row = parse_record(line, src.where(rel), lineno)
                row.setdefault("id", f"{spec.name}-{split}-{len(out)}")
                out.append(row)
                if len(out) == FEW_ROWS:
                    break
        return out

    rows, shots = {}, {}
    for spec in tasks:
        splits = [s for s in spec.pool_splits if s in opt_splits] + ["test"]
        rows[spec.name] = [r for s in splits for r in first(spec, s)]
        shots[spec.name] = first(spec, spec.shot_split) if spec.shots else []
    return rows, shots


def check_merge_device(merge_device: str) -> None:
    """Refuse ``merge_device=cuda`` in a pipeline compiled without ``--gpu-merges``.

    Such a pipeline runs its prune and merge steps on the CPU image without a GPU; its pods
    carry ``SAEMERGE_GPU_MERGES=false`` (:mod:`saemerge.pipeline.resources`). Outside those pods
    (``saemerge run --local``, tests) the variable is unset and any device is allowed.
    """
    if os.environ.get(GPU_MERGES_ENV) == "false" and str(merge_device).startswith("cuda"):
        raise SaeMergeError(
            f"merge_device {merge_device}: this pipeline was compiled without --gpu-merges, so its prune and "
            "merge steps run on the CPU image without a GPU; recompile with `saemerge compile --gpu-merges` "
            "or run with merge_device=cpu"
        )


def check_model(uri: str, role: str = "model") -> None:
    """One checkpoint on its own: it exists, ships no code, and has readable safetensors weights.

    What ``saemerge upload`` checks before publishing a copy (the same checks as
    :func:`check_inputs`, less the comparisons between models).
    """
    src = _Source.open(uri, role)
    _check_no_code(src)
    _tensors(src)


# -- reading local and s3:// directories (published or plain) ----------------------------------
@dataclass(frozen=True)
class _Source:
    """A local or ``s3://`` directory (published or plain), read one file (or range) at a time."""

    uri: str
    role: str  # "expert", "base" or "data_uri": the start of every message about it
    files: frozenset[str]  # relative POSIX paths

    @property
    def label(self) -> str:
        return f"{self.role} {self.uri}"

    @classmethod
    def open(cls, uri: str, role: str) -> _Source:
        loc = storage.parse_uri(uri)
        if loc.path is None:  # s3://: what the steps download: the manifest's files, else every object
            manifest = storage.read_manifest(loc.uri)
            if manifest is not None:
                files = [f["path"] for f in manifest["files"]]
            elif role not in PLAIN_ROLES:  # the steps read data only when published
                raise SaeMergeError(
                    f"{role} {loc.uri}: no published directory there (no manifest.json: missing, or its "
                    "upload did not finish); publish it with `saemerge upload --data SRC DEST`"
                )
            else:
                prefix = loc.uri.rstrip("/") + "/"
                files = [u[len(prefix) :] for u in storage.list_uris(loc.uri) if not u.endswith("/")]
                if not files:
                    raise SaeMergeError(f"{role} {loc.uri}: no such directory (no objects under this prefix)")
                log.info("%s %s has no manifest.json: a plain directory of %d objects", role, loc.uri, len(files))
        else:
            if not loc.path.is_dir():
                raise SaeMergeError(f"{role} {loc.uri}: no such directory")
            files = mf.list_files(loc.path)
        return cls(loc.uri, role, frozenset(files))

    def where(self, rel: str) -> str:
        return storage.join(self.uri, rel)

    def read(self, rel: str) -> bytes:
        return storage.read_bytes(self.where(rel))

    def read_json(self, rel: str) -> dict:
        try:
            data = json.loads(self.read(rel))
        except ValueError as exc:
            raise SaeMergeError(f"{self.label}: {rel} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SaeMergeError(f"{self.label}: {rel} is not a JSON object")
        return data

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` (fewer at the end of the file)."""
        return _read_range(self.where(rel), start, length)

    def lines(self, rel: str) -> Iterator[bytes]:
        """The file's lines, streamed (the caller may stop early)."""
        loc = storage.parse_uri(self.where(rel))
        if loc.path is not None:
            with open(loc.path, "rb") as f:
                yield from f
            return
        body = _s3_call(loc, lambda c: c.get_object(Bucket=loc.bucket, Key=loc.key))["Body"]
        try:
            yield from body.iter_lines(chunk_size=1 << 20)
        finally:
            body.close()


def _s3_call(loc: storage.Location, call):
    """One S3 request with the shared client; a failure becomes a one-line SaeMergeError."""
    try:
        return call(storage.s3_client())
    except SaeMergeError:
        raise
    except Exception as exc:  # botocore's ClientError, connection errors: never carry the secret
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SaeMergeError(f"{loc.uri}: S3 read failed: {text}") from None


def _read_range(uri: str, start: int, length: int) -> bytes:
    """Bytes ``start:start+length`` of a file or object: a ranged GET on S3 (``storage`` has none)."""
    loc = storage.parse_uri(uri)
    if loc.path is not None:
        try:
            with open(loc.path, "rb") as f:
                f.seek(start)
                return f.read(length)
        except FileNotFoundError:
            raise SaeMergeError(f"{loc.uri}: no such file") from None
    rng = f"bytes={start}-{start + length - 1}"
    return _s3_call(loc, lambda c: c.get_object(Bucket=loc.bucket, Key=loc.key, Range=rng)["Body"].read())


# -- 2. no code ---------------------------------------------------------------------------------
def _check_no_code(src: _Source) -> None:
    for rel in sorted(src.files):
        if rel.endswith(CODE_SUFFIXES):
            raise SaeMergeError(
                f"{src.label}: {rel} is Python code; inputs that ship code are refused (trust_remote_code stays off)"
            )
    if "config.json" not in src.files:
        raise SaeMergeError(f"{src.label}: config.json is missing")
    for rel in ("config.json", "tokenizer_config.json"):
        if rel in src.files and "auto_map" in src.read_json(rel):
            raise SaeMergeError(
                f"{src.label}: {rel} has auto_map (custom code loaded with trust_remote_code); "
                "refused, saemerge never runs a checkpoint's code"
            )


# -- 3. tensors ---------------------------------------------------------------------------------
def _weight_files(src: _Source) -> list[str]:
    """The safetensors files the checkpoint reader would read (same rules as CheckpointReader)."""
    if INDEX_FILE in src.files:
        try:
            files = index_shards(src.read_json(INDEX_FILE))
        except (KeyError, AttributeError, TypeError):
            raise SaeMergeError(f"{src.label}: {INDEX_FILE} has no weight_map") from None
        for f in files:
            if f not in src.files:
                raise SaeMergeError(f"{src.label}: shard {f} listed in {INDEX_FILE} is missing")
        return files
    top = [f for f in src.files if "/" not in f]
    shards = weight_files(top)
    if shards:
        return shards
    pickles = pickle_weights(top)
    if pickles:
        raise SaeMergeError(
            f"{src.label}: {pickles[0]} holds pickle weights, which are refused (unpickling "
            "can run arbitrary code); convert the checkpoint to safetensors first"
        )
    raise SaeMergeError(f"{src.label}: no model.safetensors or safetensors shards found")


def _header(src: _Source, rel: str) -> dict:
    """A shard's safetensors header, from one ranged read (two for a header over 256 KiB)."""
    bad = f"{src.label}: {rel} is not a readable safetensors file"
    head = src.read_range(rel, 0, _HEAD_BYTES)
    if len(head) < 8:
        raise SaeMergeError(f"{bad} (shorter than 8 bytes)")
    n = header_length(head)
    if n > MAX_HEADER_BYTES:
        raise SaeMergeError(f"{bad} (header of {n} bytes)")
    raw = head[8 : 8 + n]
    if len(raw) < n and len(head) == _HEAD_BYTES:
        raw += src.read_range(rel, _HEAD_BYTES, 8 + n - _HEAD_BYTES)
    if len(raw) < n:
        raise SaeMergeError(f"{bad} (truncated header)")
    try:
        return decode_header(raw)
    except ValueError as exc:  # not JSON, or not a JSON object
        raise SaeMergeError(f"{bad} ({exc})") from None


def _tensors(src: _Source) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype code, shape)}`` over every shard of a checkpoint."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for rel in _weight_files(src):
        for name, meta in _header(src, rel).items():
            if name == "__metadata__":
                continue
            try:
                entry = (str(meta["dtype"]), tuple(int(d) for d in meta["shape"]))
            except (KeyError, TypeError, ValueError):
                raise SaeMergeError(f"{src.label}: {rel}: tensor {name} has no valid dtype and shape") from None
            if name in out:
                raise SaeMergeError(f"{src.label}: tensor {name} appears in two shards")
            out[name] = entry
    if not out:
        raise SaeMergeError(f"{src.label}: the checkpoint holds no tensors")
    return out


def _dtype(code: str) -> str:
    return DTYPE_NAMES.get(code, code)


def _compare(ref: dict, other: dict, here: str, there: str, verb: str) -> None:
    """Name the first tensor where ``other`` (``here``) differs from ``ref`` (``there``)."""
    for name in sorted(ref.keys() | other.keys()):
        if name not in other:
            raise SaeMergeError(f"{here}: tensor {name} is missing ({there} {verb} it)")
        if name not in ref:
            raise SaeMergeError(f"{here}: tensor {name} is not in {there}")
        (a_dtype, a_shape), (b_dtype, b_shape) = ref[name], other[name]
        if a_shape != b_shape:
            raise SaeMergeError(f"{here}: tensor {name} has shape {list(b_shape)}, {there} {verb} {list(a_shape)}")
        if a_dtype != b_dtype:
            raise SaeMergeError(f"{here}: tensor {name} has dtype {_dtype(b_dtype)}, {there} {verb} {_dtype(a_dtype)}")


def _check_same_tensors(models: list[tuple[str, dict]]) -> None:
    """Experts against the first expert, then the base (last) against the experts."""
    (ref_label, ref), *others = models
    experts, (base_label, base) = others[:-1], others[-1]
    for label, tensors in experts:
        _compare(ref, tensors, label, ref_label, "has")
    _compare(ref, base, base_label, "the experts" if experts else ref_label, "have" if experts else "has")


# -- 4. tokenizers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tokenizer:
    label: str
    vocab: dict  # the sections that decide ids (or the vocabulary files' bytes)
    specials: dict[str, str | None]
    chat_template: str | None


def _token_text(value) -> str | None:
    if isinstance(value, dict):  # AddedToken serialised: {"content": "</s>", ...}
        return value.get("content")
    return value if isinstance(value, str) else None


def _tokenizer(src: _Source) -> _Tokenizer:
    if "tokenizer.json" in src.files:
        doc = src.read_json("tokenizer.json")
        vocab = {k: doc.get(k) for k in TOKENIZER_SECTIONS}
        vocab["added_tokens"] = [
            (t.get("id"), t.get("content"), t.get("special"))
            for t in vocab["added_tokens"] or []
            if isinstance(t, dict)
        ]
    else:
        vocab = {f: src.read(f) for f in VOCAB_FILES if f in src.files}
        if not vocab:
            raise SaeMergeError(
                f"{src.label}: no tokenizer (tokenizer.json, tokenizer.model or vocab.json); "
                "the evaluator loads it from the model directory"
            )
    config = src.read_json("tokenizer_config.json") if "tokenizer_config.json" in src.files else {}
    special_map = src.read_json("special_tokens_map.json") if "special_tokens_map.json" in src.files else {}
    specials = {
        k: _token_text(config.get(k, special_map.get(k))) for k in ("bos_token", "eos_token", "pad_token", "unk_token")
    }
    template = config.get("chat_template")
    if template is None and "chat_template.jinja" in src.files:
        template = src.read("chat_template.jinja").decode("utf-8", "replace")
    return _Tokenizer(src.label, vocab, specials, template if isinstance(template, str) else json.dumps(template))


def _id_map(vocab: dict) -> dict[str, int]:
    """token -> id from tokenizer.json's model vocabulary and added tokens (best effort)."""
    model_vocab = (vocab.get("model") or {}).get("vocab")
    if isinstance(model_vocab, dict):
        ids = {str(t): i for t, i in model_vocab.items()}
    elif isinstance(model_vocab, list):  # Unigram: [[piece, score], ...]
        ids = {str(p[0]) if isinstance(p, list) else str(p): i for i, p in enumerate(model_vocab)}
    else:
        ids = {}
    ids.update({str(c): i for i, c, _ in vocab.get("added_tokens", []) if i is not None})
    return ids


def _vocab_difference(a: dict, b: dict) -> str:
    """A few words on how two tokenizers' id-deciding parts differ."""
    if set(a) != set(b) or any(isinstance(v, bytes) for v in a.values()):
        files = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        return f"{', '.join(files)} differ"
    ids_a, ids_b = _id_map(a), _id_map(b)
    for token in sorted(
        ids_a.keys() | ids_b.keys(), key=lambda t: (min(ids_a.get(t, 1 << 62), ids_b.get(t, 1 << 62)), t)
    ):
        ia, ib = ids_a.get(token), ids_b.get(token)
        if ia != ib:
            return f"token {token!r} has id {ib if ib is not None else 'none'} here, {ia if ia is not None else 'none'} there"
    sections = [k for k in TOKENIZER_SECTIONS if a.get(k) != b.get(k)]
    return f"same vocabulary, but tokenizer.json's {', '.join(sections)} differ"


def _check_tokenizers(models: list[_Source]) -> None:
    toks = [_tokenizer(m) for m in models]
    ref, experts, base = toks[0], toks[1:-1], toks[-1]
    for tok in [*experts, base]:
        if tok.vocab != ref.vocab:
            raise SaeMergeError(
                f"{tok.label}: its tokenizer maps text to other ids than {ref.label}'s "
                f"({_vocab_difference(ref.vocab, tok.vocab)})"
            )
    for tok in experts:
        for key in ("bos_token", "eos_token"):
            if tok.specials[key] != ref.specials[key]:
                raise SaeMergeError(
                    f"{tok.label}: {key} {tok.specials[key]!r} differs from {ref.label}'s {ref.specials[key]!r} "
                    "(an offspring takes its tokenizer files from one parent)"
                )
    for tok in [*experts, base]:
        for key, value in tok.specials.items():
            if value != ref.specials[key]:
                log.warning("%s: %s %r differs from %s's %r", tok.label, key, value, ref.label, ref.specials[key])
        if tok.chat_template != ref.chat_template:
            log.warning("%s: its chat template differs from %s's", tok.label, ref.label)


# -- 5. data ------------------------------------------------------------------------------------
def _count_rows(src: _Source, rel: str) -> int:
    """Records (non-blank lines) of a JSONL file, each parsed: a line that is not a JSON object,
    or larger than :data:`~saemerge.evaluate.taskspec.MAX_RECORD_BYTES`, fails here naming the
    file and line. The whole file is read: sampling reads every record of a split it draws from."""
    from saemerge.evaluate.taskspec import parse_record

    n = 0
    for lineno, line in enumerate(src.lines(rel), 1):
        if line.strip():
            parse_record(line, src.where(rel), lineno)
            n += 1
    return n


def _fewer(param: str, sizes: Mapping[str, int], task: str, have: int) -> str:
    """How to ask for what the data holds: the run parameter with this task's size lowered."""
    value = json.dumps({**{t: int(n) for t, n in sizes.items()}, task: have}, separators=(",", ":"))
    return f"ask for fewer with --param '{param}={value}'"


def _check_data(
    src: _Source,
    opt_sizes: Mapping[str, int],
    test_sizes: Mapping[str, int],
    opt_splits: Sequence[str] | None,
    tasks: TaskSet,
) -> None:
    # resolve_data_root's rule: a tiny-benchmark directory holds the data root in data/
    tops = {f.split("/", 1)[0] for f in src.files if "/" in f}
    prefix = "data/" if "data" in tops and not any(d in tops for d in tasks.data_dirs) else ""
    for task in dict.fromkeys([*opt_sizes, *test_sizes]):
        spec = tasks[task]
        where = f"{prefix}{spec.data}"
        if task in opt_sizes:
            want = int(opt_sizes[task])
            pool = [s for s in spec.pool_splits if opt_splits is None or s in opt_splits]
            splits = [s for s in pool if f"{where}/{s}.jsonl" in src.files]
            if not splits:
                chosen = "" if opt_splits is None else f" (opt_splits {','.join(opt_splits)})"
                raise SaeMergeError(
                    f"{src.label}: task {task} has none of {', '.join(f'{where}/{s}.jsonl' for s in pool)}{chosen}"
                )
            have = 0
            for split in splits:
                have += _count_rows(src, f"{where}/{split}.jsonl")
            if have < want:
                raise SaeMergeError(
                    f"{src.label}: task {task} asks for {want} optimisation examples but "
                    f"{where}/{'+'.join(splits)} hold {have}; {_fewer('opt_sizes', opt_sizes, task, have)}"
                )
        if task in test_sizes:
            want, rel = int(test_sizes[task]), f"{where}/test.jsonl"
            if rel not in src.files:
                raise SaeMergeError(f"{src.label}: task {task} has no {rel}")
            have = _count_rows(src, rel)
            if have < want:
                raise SaeMergeError(
                    f"{src.label}: task {task} asks for {want} test examples but {rel} holds {have}; "
                    + _fewer("test_sizes", test_sizes, task, have)
                )
