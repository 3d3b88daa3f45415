"""One lm-eval HFLM per process, with each checkpoint's weights swapped in.

Building an HFLM costs a model construction, a tokenizer load and a device transfer. A
generation scores many checkpoints of one architecture (the archive members, the offspring),
so the first checkpoint builds the HFLM and later ones only copy their tensors, streamed one
by one, into the live parameters. A checkpoint with a different architecture or tokenizer
gets a fresh HFLM.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from saemerge import cpus
from saemerge.checkpoint import CheckpointReader
from saemerge.devices import resolve_device
from saemerge.errors import SaeMergeError

if TYPE_CHECKING:
    from lm_eval.models.huggingface import HFLM

log = logging.getLogger(__name__)

# config.json keys that may differ between checkpoints whose tensors are interchangeable
_VOLATILE_CONFIG = {"_name_or_path", "dtype", "torch_dtype", "transformers_version", "use_cache"}
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)
DTYPES = ("auto", "float32", "bfloat16", "float16")


def eval_threads_setting() -> int | str | None:
    """``SAEMERGE_EVAL_THREADS``: a thread count, ``"idle"``, or None when unset.

    Raises:
        SaeMergeError: any other value (one line naming the variable).
    """
    wanted = os.environ.get(cpus.EVAL_THREADS_ENV, "")
    if not wanted or wanted == cpus.IDLE:
        return wanted or None
    if not wanted.isdigit() or int(wanted) < 1:
        raise SaeMergeError(f"{cpus.EVAL_THREADS_ENV}={wanted!r}: expected a thread count >= 1 or {cpus.IDLE!r}")
    return int(wanted)


def set_cpu_threads(probe: cpus.CoreProbe | None = None) -> int:
    """torch's CPU threads for evaluation; returns the count in effect.

    ``SAEMERGE_EVAL_THREADS`` decides when set (:func:`eval_threads_setting`): a count, or
    ``idle`` (:func:`saemerge.cpus.idle_cores`: the cores other processes left idle over
    `probe`'s window, or over the next 0.2 s without one). The local runner sets ``idle``: its
    steps run one thread each, because merges run side by side, but an evaluate step runs
    alone in its run, so on a quiet laptop it takes every core and beside other work only what
    is free. Else ``OMP_NUM_THREADS`` when set, else :func:`saemerge.cpus.usable_cores`:
    torch's own default is every core the process is allowed to run on, which in a container
    with a CPU limit is the node's cores, not the pod's share (one thread per node core then
    contend for a few cores' time).
    """
    wanted = eval_threads_setting()
    if wanted == cpus.IDLE:
        torch.set_num_threads(cpus.idle_cores(probe))
    elif isinstance(wanted, int):
        torch.set_num_threads(wanted)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(cpus.usable_cores())
    return torch.get_num_threads()


def check_model_dir(model_dir: Path) -> CheckpointReader:
    """Fails with one line when the directory is not a loadable checkpoint with a tokenizer."""
    if not model_dir.is_dir():
        raise SaeMergeError(f"{model_dir}: no such model directory")
    if not (model_dir / "config.json").is_file():
        raise SaeMergeError(f"{model_dir}: config.json is missing (not an HF checkpoint)")
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise SaeMergeError(
            f"{model_dir}: no tokenizer (tokenizer.json, tokenizer.model or vocab.json) in the model directory"
        )
    return CheckpointReader(model_dir)


def _identity(model_dir: Path, reader: CheckpointReader) -> str:
    """What must match for one checkpoint's tensors to be loaded into another's HFLM."""
    cfg = {k: v for k, v in reader.config.items() if k not in _VOLATILE_CONFIG}
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
    for name in _TOKENIZER_FILES:
        f = model_dir / name
        if f.is_file():
            h.update(name.encode() + f.read_bytes())
    for info in reader.infos:
        h.update(f"{info.name}{info.shape}".encode())
    return h.hexdigest()


def _embedding_rows(reader: CheckpointReader) -> int | None:
    for name in reader.names:
        if (
            name.endswith("embed_tokens.weight")
            or name.endswith("wte.weight")
            or name.endswith("word_embeddings.weight")
        ):
            return reader.info(name).shape[0]
    return reader.config.get("vocab_size")


def _torch_dtype(dtype: str, reader: CheckpointReader, device: str) -> str:
    if dtype not in DTYPES:
        from saemerge.errors import unknown_name

        raise unknown_name("dtype", dtype, DTYPES)
    if dtype != "auto":
        return dtype
    stored = {i.dtype for i in reader.infos if i.dtype.is_floating_point}
    stored_dtype = stored.pop() if len(stored) == 1 else torch.float32
    if device == "cpu" and stored_dtype in (torch.float16, torch.bfloat16):
        return "float32"  # half-precision matmuls are slow (fp16: unsupported) on many CPUs
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"  # the GPU's fast path; a run that needs another dtype names it (eval_dtype)
    return str(stored_dtype).removeprefix("torch.")


def batch_size_for(batch_size: int | str, device: str, reader: CheckpointReader, dtype: str) -> int | str:
    """The batch to evaluate with: as given, or for 0 (``eval_batch_size``'s default) the
    device's: :data:`~saemerge.evaluate.device.CPU_BATCH` on the CPU, and on CUDA
    :func:`~saemerge.evaluate.device.cuda_batch_size` of the model and the GPU's memory."""
    from saemerge.evaluate.device import CPU_BATCH, cuda_batch_size

    if batch_size != 0:
        return batch_size
    if not device.startswith("cuda"):
        return CPU_BATCH
    element = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    weights = sum(i.numel for i in reader.infos) * element
    gpu = torch.cuda.get_device_properties(torch.device(device)).total_memory
    return cuda_batch_size(reader.config, weights, gpu)


class HFBackend:
    """Hands out an HFLM holding a given checkpoint's weights.

    Args:
        device: ``cuda``, ``cuda:N``, ``cpu`` or ``auto`` (CUDA when present).
        dtype: ``auto`` (bfloat16 on a CUDA GPU that has it, else the checkpoint's; float32 on
            CPU for half-precision checkpoints),
            ``float32``, ``bfloat16`` or ``float16``.
        batch_size: an int, 0 for the device's (:func:`batch_size_for`), or ``"auto"`` (lm-eval
            probes the largest that fits).
        max_length: context length cap; default the model's.
    """

    def __init__(
        self, device: str = "auto", dtype: str = "auto", batch_size: int | str = 16, max_length: int | None = None
    ):
        self.device = resolve_device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_length = max_length
        # Threads are set when the first model is built; until then the probe watches the
        # machine while lm-eval's model code is imported (no window of its own to wait for).
        self._probe = cpus.CoreProbe(0.2) if eval_threads_setting() == cpus.IDLE else None
        self.threads: int | None = None
        self._lm: HFLM | None = None
        self._identity: str | None = None
        self.loads = 0  # full HFLM builds, for tests and logs
        self.swaps = 0

    def lm_for(self, model_dir: str | Path):
        model_dir = Path(model_dir)
        reader = check_model_dir(model_dir)
        ident = _identity(model_dir, reader)
        if self._lm is not None and ident == self._identity:
            self._swap_weights(reader)
            self.swaps += 1
            return self._lm
        if self._lm is not None:  # free the old model before building the next
            self._lm = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self._lm = self._build(model_dir, reader)
        self._identity = ident
        self.loads += 1
        return self._lm

    def _build(self, model_dir: Path, reader: CheckpointReader):
        from lm_eval.models.huggingface import HFLM
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise SaeMergeError(f"{model_dir}: the tokenizer does not load ({str(exc).splitlines()[0]})") from None
        rows = _embedding_rows(reader)
        if rows is not None and rows < len(tokenizer):
            raise SaeMergeError(
                f"{model_dir}: vocabulary mismatch: the embedding has {rows} rows but the tokenizer has {len(tokenizer)} tokens"
            )
        dtype = _torch_dtype(self.dtype, reader, self.device)
        batch = batch_size_for(self.batch_size, self.device, reader, dtype)
        if self.threads is None:
            self.threads = set_cpu_threads(self._probe)
        log.info(
            "loading %s on %s as %s, batch %s (%d CPU threads)", model_dir, self.device, dtype, batch, self.threads
        )
        return HFLM(
            pretrained=str(model_dir),
            tokenizer=tokenizer,
            device=self.device,
            dtype=dtype,
            batch_size=batch,
            max_length=self.max_length,
            trust_remote_code=False,
        )

    @torch.no_grad()
    def _swap_weights(self, reader: CheckpointReader) -> None:
        assert self._lm is not None, "weights are swapped only into a model already built"
        model = self._lm.model
        # remove_duplicate=False: a tied lm_head.weight stored in the file still finds its place
        params = dict(model.named_parameters(remove_duplicate=False))
        params.update(dict(model.named_buffers()))
        seen = set()
        for name in reader.names:
            target = params.get(name)
            if target is None:
                raise SaeMergeError(f"{reader.path}: tensor {name} has no place in the loaded model")
            target.copy_(reader.get(name, device=target.device))
            seen.add(id(target))
        # every parameter must have been written, directly or through a tied twin
        missing = [n for n, p in model.named_parameters() if id(p) not in seen]
        if missing:
            raise SaeMergeError(f"{reader.path}: tensor {missing[0]} is missing")
        log.info("swapped in the weights of %s", reader.path)
