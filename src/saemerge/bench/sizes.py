"""Benchmark sizes: data counts, model shape and training budget, one frozen record each.

- ``micro``: seconds; for the test suite (files, formats, determinism). Accuracies are noise.
- ``tiny``: the default; a few minutes on a 2-core laptop CPU; the experts are clear specialists.
  Measured (seed 0): 1 thread 260 s, math expert 0.755 exact match, multilingual expert 0.870;
  2 threads 160 s on an idle machine, 0.720 / 0.807 (other bytes). Batch 16 reached a given
  accuracy in less wall time than batch 32.
- ``small``: a larger variant for experiments (GPU optional); not tuned, expect better experts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from saemerge.bench.lexicon import LANGUAGE_CODES
from saemerge.errors import unknown_name


@dataclass(frozen=True)
class BenchSize:
    name: str
    # data
    math_counts: tuple[int, int, int]  # train, validation, test
    ml_languages: tuple[str, ...]
    ml_relations: int
    ml_subjects: int
    base_drills: int  # arithmetic drill texts in the base corpus
    # model (LLaMA)
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    max_len: int  # training sequences are cut to this many tokens
    # training
    batch_size: int
    base_steps: int
    base_lr: float
    math_steps: int
    math_lr: float
    ml_steps: int
    ml_lr: float
    warmup_steps: int
    eval_batch_size: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


SIZES: dict[str, BenchSize] = {
    s.name: s
    for s in (
        BenchSize(
            name="micro", math_counts=(160, 16, 16), ml_languages=LANGUAGE_CODES[:4], ml_relations=2,
            ml_subjects=6, base_drills=100, vocab_size=512, hidden=32, layers=2, heads=4, kv_heads=2,
            intermediate=64, max_len=128, batch_size=16, base_steps=6, base_lr=3e-3, math_steps=6,
            math_lr=3e-3, ml_steps=6, ml_lr=3e-3, warmup_steps=2, eval_batch_size=32,
        ),
        BenchSize(
            name="tiny", math_counts=(4000, 200, 200), ml_languages=LANGUAGE_CODES[:4], ml_relations=4,
            ml_subjects=12, base_drills=4000, vocab_size=1024, hidden=128, layers=4, heads=4, kv_heads=4,
            intermediate=384, max_len=128, batch_size=16, base_steps=600, base_lr=3e-3, math_steps=1400,
            math_lr=3e-3, ml_steps=800, ml_lr=2e-3, warmup_steps=20,
        ),
        BenchSize(
            name="small", math_counts=(20000, 500, 1000), ml_languages=LANGUAGE_CODES[:6], ml_relations=6,
            ml_subjects=24, base_drills=20000, vocab_size=2048, hidden=256, layers=6, heads=8, kv_heads=4,
            intermediate=768, max_len=160, batch_size=32, base_steps=2000, base_lr=2e-3, math_steps=4000,
            math_lr=1e-3, ml_steps=2000, ml_lr=1e-3, warmup_steps=50,
        ),
    )
}


def get_size(name: str) -> BenchSize:
    """The size called ``name``; an unknown name fails with the closest known names."""
    try:
        return SIZES[name]
    except KeyError:
        raise unknown_name("bench size", name, SIZES) from None
