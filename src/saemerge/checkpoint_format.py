"""What a HF checkpoint directory looks like on disk, without torch: file names, the weight-file
rules and the safetensors header.

:mod:`saemerge.checkpoint` reads and writes checkpoints with these rules (it needs torch for
the tensors); :mod:`saemerge.preflight` checks local and ``s3://`` inputs with the same rules
before any heavy step, without torch. Both take the bytes and file names from where they read
them; nothing here does I/O.

safetensors: a file starts with the header's length (8 bytes, little-endian), then the header
(JSON: tensor name -> dtype, shape, data_offsets; ``__metadata__``), then the data section.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# The side files an output takes from its source checkpoint: config, generation config,
# tokenizer and chat template, and license notices (a derived model must carry them). An
# allow-list, so no code (``*.py`` for trust_remote_code), pickle or model card travels.
SIDE_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
        "LICENSE",
        "LICENSE.txt",
        "LICENSE.md",
        "NOTICE",
        "NOTICE.txt",
        "USE_POLICY.md",
    }
)
# A header longer than this is refused before it is read (a corrupt or hostile length).
MAX_HEADER_BYTES = 100_000_000
# safetensors dtype codes -> torch's names (the float8 codes are torch's where it has them).
DTYPE_NAMES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def index_shards(index: Mapping) -> list[str]:
    """The shard files a ``model.safetensors.index.json`` names, sorted, each once.

    Raises:
        KeyError, TypeError or AttributeError: the index has no usable ``weight_map``.
    """
    return sorted(set(index["weight_map"].values()))


def weight_files(top: Iterable[str]) -> list[str]:
    """The weight files of a checkpoint without an index, from the names at its top level:
    ``model.safetensors`` if there, else every ``*.safetensors`` in name order; [] for none."""
    names = sorted(top)
    if SINGLE_FILE in names:
        return [SINGLE_FILE]
    return [n for n in names if n.endswith(".safetensors")]


def pickle_weights(top: Iterable[str]) -> list[str]:
    """The pickle weight files among the names at a checkpoint's top level, in name order (refused:
    unpickling runs arbitrary code)."""
    return [n for n in sorted(top) if PurePosixPath(n).suffix in PICKLE_SUFFIXES]


def header_length(prefix: bytes) -> int:
    """The header's length from a safetensors file's first 8 bytes.

    Raises:
        struct.error: fewer than 8 bytes.
    """
    (n,) = struct.unpack("<Q", prefix[:8])
    return n


def decode_header(raw: bytes) -> dict:
    """A safetensors header's JSON.

    Raises:
        ValueError: not JSON, or not a JSON object.
    """
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header
