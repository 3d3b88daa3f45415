"""HF-format checkpoints, streamed tensor by tensor.

A checkpoint is a directory with ``config.json``, tokenizer/generation files, and weights in
``model.safetensors`` or ``model-0000k-of-0000n.safetensors`` shards with a
``model.safetensors.index.json``. Pickle weights (``*.bin``, ``*.pt``) are refused: loading
them runs arbitrary code.

Reading never loads the whole model: :class:`CheckpointReader` reads each tensor's bytes at
its offset with plain file reads (no memory map: a mapped file's pages stay in the process's
resident set once touched, so a streamed pass over a model would end up "holding" all of it). Writing never holds the whole model either:
:class:`CheckpointWriter` plans every shard's safetensors header up front from the output's
names, shapes and dtypes (known before any merge starts: they are the inputs'), then writes
each tensor's bytes at its offset as it arrives. Peak memory is the tensors in flight, not
the shard size. Both also work on row blocks of one tensor (:meth:`CheckpointReader.get_rows`,
:meth:`CheckpointWriter.write_block`), so an operation can stream a large tensor in pieces and
hold a block, not the tensor.

The writer fills a directory it is given. Atomicity (a crash never leaves something that
looks like a checkpoint) is the caller's: :func:`saemerge.storage.local_output` yields a
temporary directory and publishes it, manifest last, only on success.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from saemerge.checkpoint_format import (
    DTYPE_NAMES,
    INDEX_FILE,
    MAX_HEADER_BYTES,
    PICKLE_SUFFIXES,  # noqa: F401  (its old name here, for callers)
    SIDE_FILES,
    SINGLE_FILE,
    decode_header,
    header_length,
    index_shards,
    pickle_weights,
    weight_files,
)
from saemerge.errors import SaeMergeError
from saemerge.util import units

DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3

_DTYPE_CODES = {getattr(torch, name): code for code, name in DTYPE_NAMES.items()}
if hasattr(torch, "float8_e4m3fn"):
    _DTYPE_CODES[torch.float8_e4m3fn] = "F8_E4M3"
    _DTYPE_CODES[torch.float8_e5m2] = "F8_E5M2"
_CODE_DTYPES = {v: k for k, v in _DTYPE_CODES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it is, read from a safetensors header."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: str
    offset: int = 0  # of its bytes in `file` (data section start included)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def rows(self) -> int:
        """Entries of the first dimension (1 for a scalar): the unit of row blocks."""
        return self.shape[0] if self.shape else 1

    @property
    def row_numel(self) -> int:
        """Entries per row (``numel / rows``; 1 for vectors and scalars)."""
        return math.prod(self.shape[1:])


def _read_header(path: Path) -> tuple[dict, int]:
    """The safetensors header of `path` and where its data section starts."""
    try:
        with open(path, "rb") as f:
            n = header_length(f.read(8))
            if n > MAX_HEADER_BYTES:
                raise ValueError("header too large")
            return decode_header(f.read(n)), 8 + n
    except (OSError, ValueError, struct.error) as exc:
        raise SaeMergeError(f"{path}: not a readable safetensors file ({exc})") from None


def _check_spans(path: Path, spans: list[tuple[int, int, str]], data_bytes: int) -> None:
    """Tensors must tile the data section exactly, as the safetensors library requires:
    sorted by offset, each starts where the previous ends, the last ends at the file's end.
    An overlap would let two tensors alias the same bytes; a gap or a tail hides data."""
    end, prev = 0, None
    for begin, stop, name in sorted(spans):
        if begin < end:
            raise SaeMergeError(
                f"{path}: tensors {prev} and {name} overlap in the data section (offsets {begin} < {end})"
            )
        if begin > end:
            after = f"after tensor {prev}" if prev else "at the start of the data section"
            raise SaeMergeError(f"{path}: {begin - end} bytes {after} belong to no tensor (data_offsets leave a gap)")
        end, prev = stop, name
    if end != data_bytes:
        raise SaeMergeError(f"{path}: the tensors cover {end} bytes but the data section holds {data_bytes}")


def all_finite(t: torch.Tensor) -> bool:
    """True when no entry is NaN or Inf. The sum is non-finite whenever an entry is (or it
    overflows), so the full check runs only then: one cheap reduction in the common case."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if torch.isfinite(t.sum(dtype=torch.float32)):
        return True
    return bool(torch.isfinite(t).all())


class CheckpointReader:
    """Lazy, read-only view of an HF checkpoint directory.

    Args:
        path: the checkpoint directory.
        check_finite: reject a tensor holding NaN or Inf when it is read.
    """

    def __init__(self, path: str | Path, *, check_finite: bool = True):
        self.path = Path(path)
        self.check_finite = check_finite
        if not self.path.is_dir():
            raise SaeMergeError(f"{self.path}: no such checkpoint directory")
        self._infos = self._scan()
        self._handles: dict[str, io.BufferedReader] = {}

    def _scan(self) -> dict[str, TensorInfo]:
        files = self._weight_files()
        infos: dict[str, TensorInfo] = {}
        for file in files:
            header, data_start = _read_header(self.path / file)
            spans: list[tuple[int, int, str]] = []
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                try:
                    begin, stop = (int(o) for o in meta["data_offsets"])
                    spans.append((begin, stop, name))
                except (KeyError, TypeError, ValueError):
                    raise SaeMergeError(f"{self.path / file}: tensor {name} has no valid data_offsets") from None
                if meta["dtype"] not in _CODE_DTYPES:
                    raise SaeMergeError(f"{self.path / file}: tensor {name} has unsupported dtype {meta['dtype']}")
                if name in infos:
                    raise SaeMergeError(f"{self.path}: tensor {name} appears in two shards")
                info = TensorInfo(
                    name, tuple(meta["shape"]), _CODE_DTYPES[meta["dtype"]], file, data_start + meta["data_offsets"][0]
                )
                if meta["data_offsets"][1] - meta["data_offsets"][0] != info.nbytes:
                    raise SaeMergeError(f"{self.path / file}: tensor {name} has a size that does not match its shape")
                infos[name] = info
            _check_spans(self.path / file, spans, (self.path / file).stat().st_size - data_start)
        if not infos:
            raise SaeMergeError(f"{self.path}: the checkpoint holds no tensors")
        return infos

    def _weight_files(self) -> list[str]:
        index = self.path / INDEX_FILE
        if index.exists():
            try:
                files = index_shards(json.loads(index.read_text()))
            except (ValueError, KeyError) as exc:
                raise SaeMergeError(f"{index}: not a valid safetensors index ({exc})") from None
            for f in files:
                if not (self.path / f).is_file():
                    raise SaeMergeError(f"{self.path / f}: shard listed in {INDEX_FILE} is missing")
            return files
        top = [p.name for p in self.path.iterdir()]
        shards = weight_files(top)
        if shards:
            return shards
        pickles = pickle_weights(top)
        if pickles:
            raise SaeMergeError(
                f"{self.path / pickles[0]}: pickle weights are refused (unpickling can run arbitrary code); "
                "convert the checkpoint to safetensors first"
            )
        raise SaeMergeError(f"{self.path}: no model.safetensors or safetensors shards found")

    # -- metadata -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Tensor names in sorted order (the order every streamed pass uses)."""
        return sorted(self._infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise SaeMergeError(f"{self.path}: tensor {name} is missing") from None

    @property
    def infos(self) -> list[TensorInfo]:
        return [self._infos[n] for n in self.names]

    @property
    def config(self) -> dict:
        cfg = self.path / "config.json"
        if not cfg.is_file():
            raise SaeMergeError(f"{self.path}: config.json is missing")
        return json.loads(cfg.read_text())

    @property
    def total_bytes(self) -> int:
        return sum(i.nbytes for i in self._infos.values())

    # -- tensors ------------------------------------------------------------------------
    def get(self, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
        """One tensor, in its stored dtype, on `device` (a fresh copy the caller owns)."""
        info = self.info(name)
        return self._read(info, 0, info.rows, info.shape, device)

    def get_rows(self, name: str, start: int, stop: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """Rows ``start:stop`` of a tensor (first dimension), reading only their bytes.

        Equal to ``get(name)[start:stop]``; a scalar has one row and comes back with shape (1,).
        """
        info = self.info(name)
        if not 0 <= start <= stop <= info.rows:
            raise ValueError(f"tensor {name}: rows {start}:{stop} outside 0:{info.rows}")
        shape = (stop - start, *info.shape[1:])
        return self._read(info, start, stop, shape, device)

    def _read(self, info: TensorInfo, start: int, stop: int, shape: tuple[int, ...], device) -> torch.Tensor:
        handle = self._handles.get(info.file)
        if handle is None:
            handle = self._handles[info.file] = open(self.path / info.file, "rb")
        row_bytes = info.row_numel * info.itemsize
        nbytes = (stop - start) * row_bytes
        buf = bytearray(nbytes)
        handle.seek(info.offset + start * row_bytes)
        if handle.readinto(buf) != nbytes:
            raise SaeMergeError(f"{self.path / info.file}: truncated while reading tensor {info.name}")
        if nbytes:
            tensor = torch.frombuffer(buf, dtype=info.dtype).reshape(shape)
        else:
            tensor = torch.empty(shape, dtype=info.dtype)
        if self.check_finite and not all_finite(tensor):
            raise SaeMergeError(f"{self.path}: tensor {info.name} contains NaN or Inf")
        return tensor.to(device) if str(device) != "cpu" else tensor

    def items(self, device: str | torch.device = "cpu") -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.names:
            yield name, self.get(name, device)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_compatible(readers: Sequence[CheckpointReader]) -> None:
    """Require identical tensor names, shapes and dtypes; name the first difference."""
    ref = readers[0]
    ref_names = set(ref.names)
    for other in readers[1:]:
        names = set(other.names)
        missing = sorted(ref_names - names)
        if missing:
            raise SaeMergeError(f"{other.path}: tensor {missing[0]} is missing (present in {ref.path})")
        extra = sorted(names - ref_names)
        if extra:
            raise SaeMergeError(f"{ref.path}: tensor {extra[0]} is missing (present in {other.path})")
        for name in ref.names:
            a, b = ref.info(name), other.info(name)
            if a.shape != b.shape:
                raise SaeMergeError(
                    f"tensor {name}: shape {list(b.shape)} in {other.path} differs from {list(a.shape)} in {ref.path}"
                )
            if a.dtype != b.dtype:
                raise SaeMergeError(
                    f"tensor {name}: dtype {str(b.dtype).removeprefix('torch.')} in {other.path} differs from "
                    f"{str(a.dtype).removeprefix('torch.')} in {ref.path}"
                )


def copy_side_files(src: Path, dst: Path) -> None:
    """Copy the :data:`SIDE_FILES` of src (config, tokenizer, generation config, licenses) to dst.

    Nothing else travels: no ``*.py`` (custom model code), no pickles, no weights. A source
    whose ``config.json`` or ``tokenizer_config.json`` has ``auto_map`` (classes loaded with
    trust_remote_code) is refused: its output would name code that is not there.
    """
    src = Path(src)
    for name in ("config.json", "tokenizer_config.json"):
        path = src / name
        if path.is_file():
            try:
                custom = "auto_map" in json.loads(path.read_text())
            except (ValueError, TypeError):
                raise SaeMergeError(f"{path}: not valid JSON") from None
            if custom:
                raise SaeMergeError(
                    f"{path}: has auto_map (custom code loaded with trust_remote_code); "
                    "refused, saemerge never runs or copies a checkpoint's code"
                )
    for item in src.iterdir():
        if item.name in SIDE_FILES and item.is_file():
            shutil.copy2(item, Path(dst) / item.name)


def plan_shards(infos: Sequence[TensorInfo], max_shard_bytes: int) -> list[list[TensorInfo]]:
    """Group tensors, in order, into shards of at most max_shard_bytes (a bigger tensor gets its own)."""
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    return shards


def parse_size(text: str | int) -> int:
    """``--max-shard-size``: '500MB', '2GB', '1GiB' or a byte count -> bytes (at least 1).

    KB/MB/GB are decimal, as transformers uses; see :func:`saemerge.util.units.parse_size`.
    """
    return units.parse_size(text, what="--max-shard-size", minimum=1)


class _ShardFile:
    """One safetensors file whose header is written first and tensors at planned offsets."""

    def __init__(self, path: Path, infos: Sequence[TensorInfo]):
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        self.offsets: dict[str, int] = {}
        offset = 0
        for info in infos:
            header[info.name] = {
                "dtype": _DTYPE_CODES[info.dtype],
                "shape": list(info.shape),
                "data_offsets": [offset, offset + info.nbytes],
            }
            self.offsets[info.name] = offset
            offset += info.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
        self.data_start = 8 + len(raw)
        self.path = path
        self.file = open(path, "wb")
        self.file.write(struct.pack("<Q", len(raw)) + raw)
        self.file.truncate(self.data_start + offset)

    def write(self, name: str, tensor: torch.Tensor, byte_start: int = 0) -> None:
        self.file.seek(self.data_start + self.offsets[name] + byte_start)
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        self.file.write(flat.view(torch.uint8).numpy().data)

    def close(self) -> None:
        self.file.close()


class CheckpointWriter:
    """Write an HF checkpoint into `out_dir`, one tensor at a time, in any order.

    Args:
        out_dir: an empty or absent directory (usually the temp dir of ``storage.local_output``).
        layout: every output tensor's name, shape and dtype (e.g. ``reader.infos``).
        side_files_from: a checkpoint whose config/tokenizer/generation files are copied through.
        max_shard_bytes: split into ``model-0000k-of-0000n.safetensors`` above this size.

    Every tensor of the layout must be written exactly once, with its planned shape and dtype
    and only finite values; :meth:`close` refuses an incomplete checkpoint.
    """

    def __init__(
        self,
        out_dir: str | Path,
        layout: Sequence[TensorInfo],
        *,
        side_files_from: str | Path | None = None,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if any(self.out_dir.iterdir()):
            raise SaeMergeError(f"{self.out_dir}: output directory is not empty")
        self.layout = {i.name: i for i in layout}
        shards = plan_shards(sorted(layout, key=lambda i: i.name), max_shard_bytes)
        n = len(shards)
        names = [SINGLE_FILE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]
        self._files = [_ShardFile(self.out_dir / fname, group) for fname, group in zip(names, shards)]
        self._file_of = {i.name: f for f, group in zip(self._files, shards) for i in group}
        self._written: set[str] = set()
        self._rows_written: dict[str, list[tuple[int, int]]] = {}
        if n > 1:
            index = {
                "metadata": {"total_size": sum(i.nbytes for i in layout)},
                "weight_map": {i.name: fname for fname, group in zip(names, shards) for i in group},
            }
            (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        if side_files_from is not None:
            copy_side_files(Path(side_files_from), self.out_dir)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write a whole tensor (planned shape and dtype, finite values)."""
        info = self._info(name)
        if tuple(tensor.shape) != info.shape or tensor.dtype != info.dtype:
            raise SaeMergeError(
                f"tensor {name}: output has shape {list(tensor.shape)} {tensor.dtype}, "
                f"expected {list(info.shape)} {info.dtype}"
            )
        self._put(info, 0, tensor)

    def write_block(self, name: str, row_start: int, block: torch.Tensor) -> None:
        """Write rows ``row_start:row_start + len(block)`` of a tensor, in any order.

        The rows of a tensor may come in any number of blocks; together they must cover it
        exactly once (an overlap is refused here, a gap by :meth:`close`).
        """
        info = self._info(name)
        if (
            block.dtype != info.dtype
            or tuple(block.shape[1:]) != info.shape[1:]
            or block.dim() != max(len(info.shape), 1)
        ):
            raise SaeMergeError(
                f"tensor {name}: output block has shape {list(block.shape)} {block.dtype}, "
                f"expected rows of shape {list(info.shape[1:])} {info.dtype}"
            )
        if not 0 <= row_start <= row_start + block.shape[0] <= info.rows:
            raise SaeMergeError(f"tensor {name}: rows {row_start}:{row_start + block.shape[0]} outside 0:{info.rows}")
        self._put(info, row_start, block)

    def _info(self, name: str) -> TensorInfo:
        info = self.layout.get(name)
        if info is None:
            raise SaeMergeError(f"tensor {name} is not part of the output checkpoint")
        return info

    def _put(self, info: TensorInfo, row_start: int, tensor: torch.Tensor) -> None:
        rows = tensor.shape[0] if tensor.dim() else 1
        spans = self._rows_written.setdefault(info.name, [])
        stop = row_start + rows
        if any(a < stop and row_start < b for a, b in spans) or (rows == 0 and info.name in self._written):
            raise SaeMergeError(f"tensor {info.name}: rows {row_start}:{stop} were already written")
        if not all_finite(tensor):
            raise SaeMergeError(f"tensor {info.name}: merge produced NaN or Inf")
        self._file_of[info.name].write(info.name, tensor, row_start * info.row_numel * info.itemsize)
        spans.append((row_start, stop))
        if sum(b - a for a, b in spans) == info.rows:
            self._written.add(info.name)

    def close(self) -> None:
        for f in self._files:
            f.close()
        missing = sorted(set(self.layout) - self._written)
        if missing:
            name = missing[0]
            done = sum(b - a for a, b in self._rows_written.get(name, []))
            if done:
                raise SaeMergeError(
                    f"{self.out_dir}: tensor {name} was only partly written ({done} of {self.layout[name].rows} rows)"
                )
            raise SaeMergeError(f"{self.out_dir}: tensor {name} was never written")

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            for f in self._files:
                f.close()
