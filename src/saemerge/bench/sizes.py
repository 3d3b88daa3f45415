"""Benchmark sizes: data counts, model shape and training budget, one frozen record each.

- ``micro``: seconds; for the test suite (files, formats, determinism). Accuracies are noise.
- ``tiny``: the default; a few minutes on a 2-core laptop CPU; the experts are clear specialists
  and merges of them keep much of both skills. Measured (seed 0, 1 thread, shared 2-core CPU):
  252 s; with 2 threads the same bytes, a training step 1.6x faster on an idle 2-core machine
  (:mod:`saemerge.bench.numerics`); the accuracies below are from another machine's kernels,
  a 2-core AMD EPYC (AVX2) builds a math expert of 0.665 / 0.193, base 0.000 / 0.162,
  multilingual expert 0.000 / 0.740 (version-1 test sets, 200 / 192 items); test accuracy math / multilingual: base 0.000 / 0.182, math expert 0.725 / 0.156,
  multilingual expert 0.000 / 0.745; in ``make demo``: weight average 0.620 / 0.573, task
  arithmetic 0.550 / 0.677, TIES (density 0.2) 0.555 / 0.583. Batch 16 reached a given
  accuracy in less wall time than batch 32.

  Why the experts merge: the base does most of the learning (1,600 steps on worked problems,
  exam-format drills and answered items of other relations); the experts take few steps at a
  low learning rate with an L2-SP pull towards the base, so their task vectors are 6.8 % (math)
  and 20.4 % (multilingual) of the base's norm, nearly orthogonal (cosine 0.11); and every
  other expert step is taken at half the task vector (``expert_scale_cycle``), so the skill
  survives the halving that a weight average applies. Without that cycle the weight average
  scored 0.43 / 0.29 (macro 0.36, below either expert); with it 0.62 / 0.57 (0.60). Experts
  that learn everything themselves (600 base steps, then 1,400 / 800 expert steps at 2-3e-3)
  scored 0.755 / 0.870 alone, but their task vectors were 0.8-1.2x the base's norm and every
  merge scored 0.00 on math.

  Test sets (version 2): 1,000 math problems (the 200 of version 1, then ``math_test_extra``
  drawn after every other split) and 1,152 multilingual items (192 (fact, language) pairs x
  (1 + ``ml_test_extra`` test-only phrasings)); the models are byte-identical to version 1's.
  On the EPYC above: base 0.000 / 0.167, math expert 0.676 / 0.189, multilingual expert
  0.001 / 0.799 (its 960 test-only phrasings 0.810, the 192 original items 0.740); build
  1,202 s at load 2-3.8 (a second build running). Items of one pair are correlated (their
  ``cluster``): the multilingual expert's standard error is 0.018 clustered, 0.012 as if
  independent (0.032 on version 1's 192 items).
- ``plain``: where one-shot merges fail (issue 32). The tiny bench's data, tokenizer and base
  (every field but the experts' equals tiny's; ``base_of="tiny"``: a build copies them from a
  finished ``tiny-seedN`` build beside it instead of pre-training again), with experts
  fine-tuned as people fine-tune: plain AdamW, no pull to the base (``expert_anchor`` 0) and no
  scale cycle. Why: the tiny bench's experts were shaped so that a weight average keeps both
  skills, so the studies on it could not show whether SAE helps where one-shot merges lose, the
  case the paper's experts (ordinary fine-tunes) are in. Written down, with its budget, before
  any search ran on it.

  Budget chosen on each expert's own VALIDATION accuracy only (bench seed 0, 1 thread,
  ``experiments/plain-bench/sweep.py``, every config in ``experiments/plain-bench/sweep.jsonl``;
  rule fixed before: the highest accuracy, a tie within one item to fewer steps, then the lower
  rate): math expert (200 validation problems) 300 steps at 4e-4: 0.695, 300 at 1e-3: 0.690,
  600 at 4e-4: 0.740, **600 at 1e-3: 0.785**; multilingual expert (192 validation items)
  300 at 1e-3: 0.620, 600 at 1e-3: 0.880, **600 at 2e-3: 0.917**, 1,000 at 1e-3: 0.891. Both
  picks are at an edge of the grid (more steps or a higher rate might score higher on
  validation still); the grid was kept small for the time at hand (2 shared cores).
- ``small``: a larger variant for experiments (GPU optional); not tuned, expect better experts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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
    base_drills: int  # arithmetic drills in the exam's format, base corpus
    pretrain_problems: int  # worked word problems (textbook frame, not the tasks'), base corpus
    ml_pretrain_relations: int  # relations whose answered MC items are in the base corpus
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
    expert_anchor: float  # L2-SP pull of the experts towards the base (training.train's anchor_decay)
    # training.train's scale_cycle for the experts: (1.0, 0.5) trains every other step at half the
    # task vector, so the skill survives the halving that a weight average (and SAE's λ ≈ 0.5) applies
    expert_scale_cycle: tuple[float, ...] = (1.0, 0.5)
    eval_batch_size: int = 64
    # test items drawn after every other split (no training item changes): math problems
    # appended to the test split, and test-only phrasings per (fact, language) pair
    math_test_extra: int = 0
    ml_test_extra: int = 0
    # the size whose data, tokenizer and base this one shares (every field but EXPERT_FIELDS
    # equal): its build copies them from a finished build of that size when one is at hand
    base_of: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def test_counts(self) -> dict[str, int]:
        """Items in each task's test split, by data directory (``math``, ``multilingual``): the
        math problems and their extra ones; every (fact, language) pair in its original and
        its test-only phrasings (the micro bench: 32 and 144; the tiny one: 1,000 and 1,152)."""
        pairs = self.ml_relations * self.ml_subjects * len(self.ml_languages)
        return {"math": self.math_counts[2] + self.math_test_extra, "multilingual": pairs * (1 + self.ml_test_extra)}


def _plain(tiny: BenchSize) -> BenchSize:
    """The plain size: tiny's data and base, experts fine-tuned plainly (see the module docstring)."""
    return replace(
        tiny,
        name="plain",
        base_of="tiny",
        math_steps=600,
        math_lr=1e-3,
        ml_steps=600,
        ml_lr=2e-3,
        expert_anchor=0.0,
        expert_scale_cycle=(),
    )


SIZES: dict[str, BenchSize] = {
    s.name: s
    for s in (
        BenchSize(
            name="micro",
            math_counts=(160, 16, 16),
            ml_languages=LANGUAGE_CODES[:4],
            ml_relations=2,
            ml_subjects=6,
            base_drills=100,
            pretrain_problems=100,
            ml_pretrain_relations=1,
            vocab_size=512,
            hidden=32,
            layers=2,
            heads=4,
            kv_heads=2,
            intermediate=64,
            max_len=128,
            batch_size=16,
            base_steps=6,
            base_lr=3e-3,
            math_steps=6,
            math_lr=3e-3,
            ml_steps=6,
            ml_lr=3e-3,
            warmup_steps=2,
            expert_anchor=5.0,
            eval_batch_size=32,
            math_test_extra=16,
            ml_test_extra=2,
        ),
        BenchSize(
            name="tiny",
            math_counts=(4000, 200, 200),
            ml_languages=LANGUAGE_CODES[:4],
            ml_relations=4,
            ml_subjects=12,
            base_drills=2000,
            pretrain_problems=4000,
            ml_pretrain_relations=3,
            vocab_size=1024,
            hidden=128,
            layers=4,
            heads=4,
            kv_heads=4,
            intermediate=384,
            max_len=128,
            batch_size=16,
            base_steps=1600,
            base_lr=3e-3,
            math_steps=300,
            math_lr=4e-4,
            ml_steps=600,
            ml_lr=1e-3,
            warmup_steps=20,
            expert_anchor=5.0,
            math_test_extra=800,
            ml_test_extra=5,
        ),
        BenchSize(
            name="small",
            math_counts=(20000, 500, 1000),
            ml_languages=LANGUAGE_CODES[:6],
            ml_relations=6,
            ml_subjects=24,
            base_drills=10000,
            pretrain_problems=20000,
            ml_pretrain_relations=1,
            vocab_size=2048,
            hidden=256,
            layers=6,
            heads=8,
            kv_heads=4,
            intermediate=768,
            max_len=160,
            batch_size=32,
            base_steps=6000,
            base_lr=2e-3,
            math_steps=1000,
            math_lr=3e-4,
            ml_steps=1200,
            ml_lr=8e-4,
            warmup_steps=50,
            expert_anchor=5.0,
            ml_test_extra=1,
        ),
    )
}


#: The fields that shape the experts only (and the size's name and scoring batch): two sizes equal
#: in every other field build the same data, tokenizer and base.
EXPERT_FIELDS = frozenset(
    {
        "name",
        "base_of",
        "math_steps",
        "math_lr",
        "ml_steps",
        "ml_lr",
        "expert_anchor",
        "expert_scale_cycle",
        "eval_batch_size",
    }
)


SIZES["plain"] = _plain(SIZES["tiny"])


def base_fields(size: BenchSize | dict) -> dict:
    """The fields of ``size`` (a size or its ``bench.json`` ``config``) that shape the data,
    tokenizer and base, JSON-normalised (tuples as lists)."""
    import json

    d = size.to_dict() if isinstance(size, BenchSize) else dict(size)
    return json.loads(json.dumps({k: v for k, v in d.items() if k not in EXPERT_FIELDS}))


def get_size(name: str) -> BenchSize:
    """The size called ``name``; an unknown name fails with the closest known names."""
    try:
        return SIZES[name]
    except KeyError:
        raise unknown_name("bench size", name, SIZES) from None
