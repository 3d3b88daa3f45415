"""Per-example evaluation results and the aggregates derived from them.

The evaluator's output is one row per (task, example): whether the model got it right and
what answer was extracted from its output. Per-task accuracy and the macro average (every
task weighs the same, whatever its size; SAE-SPEC §4) are computed from those rows, never
stored separately, so cached rows and fresh rows aggregate the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

SCHEMA = pa.schema(
    [
        pa.field("task", pa.string(), nullable=False),
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("answer", pa.string()),
        pa.field("target", pa.string()),
        pa.field("score", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ExampleResult:
    """One scored example.

    Attributes:
        task: the saemerge task name (``mmlu_prox_sae``, not its per-language parts).
        example_id: the doc's ``id``.
        correct: the scored metric was 1 (``score == 1``).
        answer: what was extracted from the model's output: the number after ``####``
            as the regex captured it (``"#### 15."`` gives ``"15."``; exact_match drops
            the ``.`` before comparing), the letter after "the answer is", the
            highest-likelihood option's letter, or ``[invalid]`` when the regex found
            nothing (lm-eval's marker).
        target: the gold answer in the same form.
        score: the value of the task's scored (metric, filter) for this example: 0 or 1 for
            acc and exact_match, a float for a per-example metric that is not (its mean over
            examples is the task's score). A row written before the column existed reads as
            ``float(correct)``.
    """

    task: str
    example_id: str
    correct: bool
    answer: str | None = None
    target: str | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        if self.score is None:
            object.__setattr__(self, "score", float(self.correct))


@dataclass
class EvalResult:
    """All examples one model was scored on.

    Attributes:
        per_example: one :class:`ExampleResult` per (task, example).
        model: where the model came from (a path or URI), for the record.
        stats: timings and counts (``evaluated``, ``cached``, ``seconds``).
    """

    per_example: list[ExampleResult]
    model: str = ""
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def per_task(self) -> dict[str, float]:
        """Score per task (mean of ``score``: accuracy for 0/1 metrics), tasks in first-seen order."""
        hits: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for r in self.per_example:
            hits[r.task][0] += float(r.score)  # type: ignore[arg-type]
            hits[r.task][1] += 1
        return {t: c / n for t, (c, n) in hits.items()}

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in self.per_example:
            out[r.task] += 1
        return dict(out)

    @property
    def macro(self) -> float:
        """Mean of the per-task accuracies; NaN when there are no results."""
        acc = self.per_task
        return sum(acc.values()) / len(acc) if acc else float("nan")

    def to_table(self) -> pa.Table:
        return pa.Table.from_pylist([asdict(r) for r in self.per_example], schema=SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table, model: str = "") -> EvalResult:
        cols = [f.name for f in SCHEMA]
        rows = table.select([c for c in cols if c in table.column_names]).to_pylist()
        return cls([ExampleResult(**r) for r in rows], model=model)

    def write_parquet(self, path: str | Path) -> Path:
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_table(), path)
        return path

    def summary(self) -> str:
        """A small text table: task, examples, accuracy, and the macro average."""
        counts = self.counts
        lines = [f"{'task':<28} {'n':>6} {'accuracy':>9}"]
        for task, acc in self.per_task.items():
            lines.append(f"{task:<28} {counts[task]:>6} {acc:>9.4f}")
        lines.append(f"{'macro average':<28} {sum(counts.values()):>6} {self.macro:>9.4f}")
        return "\n".join(lines)


def index_results(rows: Iterable[ExampleResult] | EvalResult | None) -> dict[tuple[str, str], ExampleResult]:
    """``{(task, example_id): row}`` from earlier results (the per-example cache)."""
    if rows is None:
        return {}
    if isinstance(rows, EvalResult):
        rows = rows.per_example
    if isinstance(rows, Mapping):
        rows = rows.values()
    return {(r.task, r.example_id): r for r in rows}
