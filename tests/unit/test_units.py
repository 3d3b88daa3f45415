"""saemerge.units: the one size parser (every spelling the flags and SAEMERGE_S3_* accept) and human()."""

from __future__ import annotations

import pytest

from saemerge.errors import SaeMergeError
from saemerge.units import human, parse_size

KI, MI, GI, TI = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain numbers (bytes or counts); a fraction rounds down
        ("0", 0),
        ("512", 512),
        (" 8 ", 8),
        ("1.5", 1),
        ("1e6", 10**6),
        (123, 123),
        ("123456789012345678901", 123456789012345678901),  # exact, not through a float
        # a letter alone or with i / iB: binary (cache --max-size, --block-size, SAEMERGE_S3_*)
        ("1K", KI),
        ("512k", 512 * KI),
        ("64M", 64 * MI),
        ("10G", 10 * GI),
        ("1 t", TI),
        ("1.5G", 3 * GI // 2),
        ("2Mi", 2 * MI),
        ("2mi", 2 * MI),
        ("500MiB", 500 * MI),
        ("1GiB", GI),
        ("1TiB", TI),
        ("4 KiB", 4 * KI),
        # a letter with B: decimal, as transformers' max_shard_size (--max-shard-size, merge_bench)
        ("20KB", 20_000),
        ("100MB", 100 * 10**6),
        ("2GB", 2 * 10**9),
        ("2.5GB", 2_500_000_000),
        ("1TB", 10**12),
        # B alone: bytes
        ("5B", 5),
        ("0b", 0),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "ten",
        "lots",
        "-1G",
        "-3",
        "5X",
        "4Q",
        "M",
        "GB",
        "1.2.3M",
        "inf",
        "nan",
        "1e999",
        "5 K B I",
        "0x10",
        "1KIBB",
        None,
        True,
        1.5,
    ],
)
def test_parse_size_rejects_with_one_line_naming_input_and_text(text):
    with pytest.raises(SaeMergeError) as err:
        parse_size(text, what="--max-size")
    msg = str(err.value)
    assert msg.startswith(f"--max-size {text!r}: not a size (examples:") and "\n" not in msg


def test_parse_size_minimum():
    assert parse_size("1", minimum=1) == 1
    with pytest.raises(SaeMergeError, match=r"^--max-shard-size '0': must be at least 1$"):
        parse_size("0", what="--max-shard-size", minimum=1)
    with pytest.raises(SaeMergeError, match=r"^size -5: must be at least 0$"):
        parse_size(-5)


def test_human():
    assert [human(n) for n in (0, 1023, 1536, 5 * GI, 3 * TI)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3.0 TiB"]
