"""The run configuration: every parameter of an SAE run, typed, with its default and meaning.

:class:`RunConfig` is the one table of run parameters. Each field carries its type, default,
allowed values, a one-line description and the paper / SAE-SPEC section it comes from. The
same table gives the pipeline's parameters (defaults and the descriptions the Kubeflow run
form shows), the README's parameter table and ``run.json``.

A configuration is parsed and validated once, at an edge (``saemerge run --local``,
``saemerge submit``, the ``init_population`` step), with :meth:`RunConfig.from_params`;
errors name the parameter as the user wrote it. Below the edge, code receives the typed
object or plain typed arguments and does not validate again.

This module imports nothing heavy (no torch, kfp or lm-eval): the CLI and every step can use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from saemerge.errors import SaeMergeError, unknown_name

# Names of the run's options. The implementations live in core/ and ops/, which check
# against these tuples (one list of names; a test checks the registries agree).
SCORINGS = ("global", "local")
ATTRACTIONS = ("linear", "fill")
COMPETITIONS = ("local", "global", "local_then_global")
MEASURES = ("zero_count", "hoyer")
GRANULARITIES = ("tensor", "global")
EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")
# Which splits the optimisation sets draw from (SAE-SPEC §6): the paper's train + validation, or
# validation alone (items no expert was fine-tuned on), or train alone. Never test.
OPT_SPLITS = ("train,validation", "validation", "train")


@dataclass(frozen=True)
class SearchInfo:
    """What the run parameters know of a search; its pipeline is :mod:`saemerge.pipeline.searches`'s."""

    name: str
    pipeline_name: str  # the pipeline's name in Kubeflow
    default_steps: int  # generations (SAE, M2N2) or update steps (PSO)


# The searches (DESIGN "Searches and studies"): SAE is the product, PSO and M2N2 its comparators
# (SAE-SPEC §7). The one table of their names, pipeline names and default step counts.
SEARCH_TABLE = {
    s.name: s
    for s in (
        SearchInfo("sae", "saemerge-sae", 12),
        SearchInfo("pso", "saemerge-pso", 5),
        SearchInfo("m2n2", "saemerge-m2n2", 12),
    )
}
SEARCHES = tuple(SEARCH_TABLE)
SAE, PSO, M2N2 = SEARCHES
EVOLUTION = (SAE, M2N2)  # searches that start from SAE's initial archive (SAE-SPEC §7, M2N2)

# Baseline name in results -> (merge method, fixed parameters) (SAE-SPEC §7). Task
# arithmetic's α is chosen on the optimisation set from TA_ALPHAS.
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "weight_average": ("linear", {}),
    "task_arithmetic": ("task_arithmetic", {}),
    "ties": ("ties", {"density": 0.2, "alpha": 1.0}),
    "dare_linear": ("dare_linear", {"drop_p": 0.8}),
    "dare_ties": ("dare_ties", {"drop_p": 0.8}),
    "rankmean": ("rankmean", {}),
}
TA_ALPHAS = (0.3, 0.5, 0.7, 1.0)

REQUIRED = dataclasses.MISSING
Label = Callable[[str], str]


def split_names(opt_splits: str) -> tuple[str, ...]:
    """``"train,validation"`` -> ``("train", "validation")``."""
    return tuple(s.strip() for s in str(opt_splits).split(",") if s.strip())


def parse_param_args(items: list[str] | None) -> dict[str, str]:
    """``--param NAME=VALUE`` arguments (``saemerge run`` and ``saemerge submit``) -> ``{NAME: "VALUE"}``,
    the raw text: each caller types the values (:func:`param_value`, or against a compiled pipeline).

    Raises:
        SaeMergeError: an argument without ``=`` or a name, or a name given twice.
    """
    raw: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SaeMergeError(f"--param {item!r}: expected NAME=VALUE")
        if key in raw:
            raise SaeMergeError(f"--param {key}: given twice")
        raw[key] = value
    return raw


def param_value(text: str) -> Any:
    """A ``--param`` value as ``saemerge run`` reads it: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def param_name(name: str) -> str:
    """How a pipeline parameter is written: as is (``s_min``)."""
    return name


def flag_name(name: str) -> str:
    """How a command-line flag is written (``--s-min``)."""
    return "--" + name.replace("_", "-")


def _param(
    default: Any = REQUIRED,
    *,
    help: str,
    spec: str = "—",
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    below: float | None = None,
    pipeline: bool = True,
    searches: tuple[str, ...] = SEARCHES,
) -> Any:
    """A RunConfig field with its description (``help``), source (``spec``) and constraints.

    Args:
        minimum: the smallest allowed value (inclusive); below: an exclusive upper bound.
        pipeline: False for a compile-time setting that is not a pipeline parameter.
        searches: the searches whose pipelines take this parameter.
    """
    meta = {
        "help": help,
        "spec": spec,
        "choices": choices,
        "minimum": minimum,
        "below": below,
        "pipeline": pipeline,
        "searches": searches,
    }
    if isinstance(default, (dict, list)):
        frozen = json.loads(json.dumps(default))
        return field(default_factory=lambda: json.loads(json.dumps(frozen)), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Every parameter of an SAE run (SAE-SPEC; the paper's §3.7 defaults)."""

    run_uri: str = _param(help="S3 prefix (or local path) of the run", spec="DESIGN run layout")
    experts: list = _param(help="expert checkpoint URIs (HF format, fine-tuned from the base)", spec="§3")
    base_uri: str = _param(help="the experts' common base checkpoint", spec="§3, SAE-SPEC §1 (delta space)")
    data_uri: str = _param(help="task data root (JSONL splits per task)", spec="§4")
    opt_sizes: dict = _param(
        {"saebench_math": 48, "saebench_multilingual": 48},
        help="optimisation-set size per task and generation (paper: 1,319 GSM8K, 200 MMLU-ProX)",
        spec="§4, SAE-SPEC §6",
    )
    test_sizes: dict = _param(
        {"saebench_math": 200, "saebench_multilingual": 192},
        help="test-set size per task (paper: 1,319 and 1,000, language-stratified; the tiny bench's whole test splits)",
        spec="§4",
    )
    opt_splits: str = _param(
        "train,validation",
        help="splits the optimisation sets draw from: train,validation (the paper's), validation "
        "(only items no expert was fine-tuned on) or train",
        spec="§3, SAE-SPEC §6",
        choices=OPT_SPLITS,
    )
    archive_size: int = _param(
        8, help="most members the archive holds", spec="§3.6, SAE-SPEC §4", minimum=2, searches=EVOLUTION
    )
    s_min: float = _param(
        0.1,
        help="lowest sparsity of the schedule",
        spec="§3.7, SAE-SPEC §5",
        minimum=0.0,
        below=1.0,
        searches=EVOLUTION,
    )
    s_max: float = _param(
        0.6,
        help="highest sparsity of the schedule",
        spec="§3.7, SAE-SPEC §5",
        minimum=0.0,
        below=1.0,
        searches=EVOLUTION,
    )
    t0: int = _param(3, help="length of the first schedule cycle", spec="§3.7, SAE-SPEC §5", minimum=1, searches=(SAE,))
    t_mult: int = _param(
        2,
        help="growth of the cycle length per restart (1 = no grow)",
        spec="§3.7, SAE-SPEC §5",
        minimum=1,
        searches=(SAE,),
    )
    reverse: bool = _param(False, help="cycles run from s_max down to s_min", spec="SAE-SPEC §5", searches=(SAE,))
    beta: float = _param(
        1.0, help="weight of sparsity in the mixing ratio", spec="§3.4, SAE-SPEC §3", minimum=0.0, searches=(SAE,)
    )
    gamma: float = _param(
        0.05,
        help="weight of sparsity in fitness (M2N2 reports its member with the best raw score, γ = 0)",
        spec="SAE-SPEC §4, §7",
        minimum=0.0,
        searches=EVOLUTION,
    )
    scoring: str = _param(
        "global",
        help="sparsity score per model (global) or per tensor (local)",
        spec="Table 1 SAE (Global/Local), SAE-SPEC §3",
        choices=SCORINGS,
        searches=(SAE,),
    )
    attraction: str = _param(
        "linear",
        help="linear: the formula literally; fill: where one parent is pruned, "
        "the child takes the other's value unscaled",
        spec="§3.5, SAE-SPEC §3",
        choices=ATTRACTIONS,
        searches=(SAE,),
    )
    competition: str = _param(
        "local_then_global",
        help="an offspring replaces its worse parent (local), the "
        "archive's worst member (global), or tries local then global",
        spec="§3.6, SAE-SPEC §4",
        choices=COMPETITIONS,
        searches=(SAE,),
    )
    measure: str = _param(
        "zero_count", help="sparsity measure ρ", spec="§3.3, SAE-SPEC §2", choices=MEASURES, searches=EVOLUTION
    )
    granularity: str = _param(
        "tensor",
        help="pruning threshold per tensor or one over the model",
        spec="SAE-SPEC §1",
        choices=GRANULARITIES,
        searches=(SAE,),
    )
    include_base: bool = _param(
        False, help="put the base in the initial population", spec="SAE-SPEC §6.1", searches=EVOLUTION
    )
    baselines: list = _param(
        ["weight_average", "task_arithmetic", "ties"],
        help="one-shot merges evaluated beside SAE's best model",
        spec="SAE-SPEC §7",
        choices=tuple(BASELINES),
    )
    seed: int = _param(0, help="seeds sampling, pairing and DARE", minimum=0)
    merge_device: str = _param("cpu", help="device of the prune and merge steps (cpu, cuda, cuda:N)")
    eval_device: str = _param("auto", help="device of evaluation (auto: CUDA when present)")
    eval_dtype: str = _param(
        "auto",
        help="dtype of evaluation (auto: bfloat16 on a CUDA GPU that has it, else the checkpoint's; "
        "float32 on CPU for half-precision checkpoints)",
        choices=EVAL_DTYPES,
    )
    eval_batch_size: int = _param(
        0,
        help="evaluation batch size (0: 16 on CPU; on CUDA as large as the model and the GPU's memory allow)",
        minimum=0,
    )
    score_cache: str = _param(
        "",
        help="prefix of a score cache shared with other runs (a study's); empty: the run's own",
        spec="SAE-SPEC §4",
    )
    # -- the run's tasks (issue 30; docs/own-tasks.md) --------------------------------------------
    tasks_uri: str = _param("", help="task directory (docs/own-tasks.md)")
    task_code: bool = _param(False, help="let task code run")
    pso_w: float = _param(0.2, help="PSO inertia w", spec="SAE-SPEC §7 (PSO-Merging)", minimum=0.0, searches=(PSO,))
    pso_c1: float = _param(
        2.0,
        help="PSO pull towards the particle's own best c1",
        spec="SAE-SPEC §7 (PSO-Merging)",
        minimum=0.0,
        searches=(PSO,),
    )
    pso_c2: float = _param(
        2.0, help="PSO pull towards the swarm's best c2", spec="SAE-SPEC §7 (PSO-Merging)", minimum=0.0, searches=(PSO,)
    )
    pso_drop_p: float = _param(
        0.8,
        help="DARE drop rate of the sparsified expert particles",
        spec="SAE-SPEC §7 (PSO-Merging)",
        minimum=0.0,
        below=1.0,
        searches=(PSO,),
    )
    pso_dare_copies: int = _param(
        1,
        help="DARE-sparsified particles per expert (each its own seed)",
        spec="SAE-SPEC §7 (PSO-Merging)",
        minimum=0,
        searches=(PSO,),
    )
    pso_include_base: bool = _param(
        True, help="the base is a particle", spec="SAE-SPEC §7 (PSO-Merging)", searches=(PSO,)
    )
    m2n2_children: int = _param(
        4,
        help="children per generation (default: SAE's offspring per generation, archive_size / 2)",
        spec="SAE-SPEC §7 (M2N2)",
        minimum=1,
        searches=(M2N2,),
    )
    m2n2_alpha: float = _param(
        1.0, help="resource-sharing exponent α", spec="SAE-SPEC §7 (M2N2)", minimum=0.0, searches=(M2N2,)
    )
    search: str = _param(
        SAE, help="the search: SAE, or a comparator (fixed when compiled: `--search`)", choices=SEARCHES, pipeline=False
    )
    steps: int = _param(
        SEARCH_TABLE[SAE].default_steps,
        help="generations of SAE and M2N2, update steps of PSO (fixed when compiled: `--steps`; "
        f"PSO's default is {SEARCH_TABLE[PSO].default_steps})",
        spec="§3.7, SAE-SPEC §7",
        minimum=1,
        pipeline=False,
    )

    # -- parsing ------------------------------------------------------------------------------
    @classmethod
    def from_params(cls, values: Mapping[str, Any], *, label: Label = param_name) -> RunConfig:
        """Parse and validate parameters (missing ones take their defaults).

        Args:
            values: parameter name -> typed value (JSON text is parsed by the caller); an int
                may arrive as a whole float (kfp.local passes every int as a float).
            label: how to name a parameter in messages (``param_name`` or ``flag_name``).

        Raises:
            SaeMergeError: one line naming the first bad parameter.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        for name in values:
            if name not in known:
                raise unknown_name("run parameter", name, known)
        typed = {}
        for name, f in known.items():
            if name in values:
                typed[name] = _coerce(label(name), values[name], f)
            elif f.default is REQUIRED and f.default_factory is REQUIRED:
                raise SaeMergeError(f"{label(name)}: required, and not given")
        config = cls(**typed)
        config._check(label)
        return config

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RunConfig:
        """The configuration recorded in ``run.json`` (validated again: the file may be old)."""
        return cls.from_params(obj)

    def _check(self, label: Label) -> None:
        """Rules between parameters, and rules on the contents of lists and dicts."""
        check_sparsity_range(self.s_min, self.s_max, label)
        if not self.experts:
            raise SaeMergeError(f"{label('experts')}: at least one expert URI is needed")
        names = [model_name(e) for e in self.experts]
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:
            raise SaeMergeError(f"{label('experts')}: two experts share the name {twins[0]!r}")
        for name in ("opt_sizes", "test_sizes"):
            sizes = getattr(self, name)
            if not sizes:
                raise SaeMergeError(f"{label(name)}: no task given (an empty task set)")
            for task, n in sizes.items():
                _check_task(label(name), task)
                if n < 1:
                    raise SaeMergeError(f"{label(name)}: {task} has size {n}; at least 1 example is needed")
        if set(self.opt_sizes) != set(self.test_sizes):
            raise SaeMergeError(
                f"{label('opt_sizes')} and {label('test_sizes')} name different tasks: "
                f"{sorted(self.opt_sizes)} vs {sorted(self.test_sizes)}"
            )
        for name in ("merge_device", "eval_device"):
            _check_device(label(name), getattr(self, name), allow_auto=name == "eval_device")
        if self.search == PSO:
            particles = int(self.pso_include_base) + len(self.experts) * (1 + self.pso_dare_copies)
            if particles < 2:
                raise SaeMergeError(
                    f"{label('pso_dare_copies')} {self.pso_dare_copies}, {label('pso_include_base')} "
                    f"{str(self.pso_include_base).lower()}: {particles} particle; a swarm needs at least 2"
                )

    # -- views --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON-able values, as recorded in ``run.json``."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def pipeline_arguments(self) -> dict[str, Any]:
        """The values of this search's pipeline parameters (compile-time settings left out)."""
        return {k: v for k, v in self.to_json().items() if PARAMS[k].takes(self.search)}

    @property
    def splits(self) -> tuple[str, ...]:
        """The optimisation sets' splits (``opt_splits``) as a tuple of split names."""
        return split_names(self.opt_splits)

    @property
    def levels(self) -> list[float]:
        """The initial variants' sparsities {0, s_min, (s_min+s_max)/2, s_max} (SAE-SPEC §6.1)."""
        return sorted({0.0, self.s_min, (self.s_min + self.s_max) / 2, self.s_max})


@dataclass(frozen=True)
class Param:
    """One row of the parameter table (a RunConfig field, described)."""

    name: str
    type: type
    default: Any  # REQUIRED when there is none
    help: str
    spec: str
    choices: tuple[str, ...]
    pipeline: bool
    searches: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def takes(self, search: str) -> bool:
        """Whether the pipeline of `search` has this parameter."""
        return self.pipeline and search in self.searches


def _params() -> dict[str, Param]:
    out = {}
    for f in dataclasses.fields(RunConfig):
        default = f.default if f.default_factory is REQUIRED else f.default_factory()
        out[f.name] = Param(
            f.name,
            _TYPES[f.name],
            default,
            f.metadata["help"],
            f.metadata["spec"],
            f.metadata["choices"],
            f.metadata["pipeline"],
            f.metadata["searches"],
        )
    return out


_TYPES = {
    f.name: {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}[str(f.type)]
    for f in dataclasses.fields(RunConfig)
}
PARAMS: dict[str, Param] = _params()


def model_name(uri: str) -> str:
    """A short name for a model URI: its last path component ("s3://b/runs/x/math" -> "math")."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1] or str(uri)


def check_sparsity_range(s_min: float, s_max: float, label: Label = param_name) -> None:
    """The schedule's range must not be upside down (s_min = s_max is allowed: ablations)."""
    if s_min > s_max:
        raise SaeMergeError(f"{label('s_min')} {s_min:g} is greater than {label('s_max')} {s_max:g}")


def typed(*, label: Label = param_name, **values: Any) -> dict[str, Any]:
    """Run parameters that reached a step one by one, each converted to its type and checked.

    Steps get their parameters from kfp, which under kfp.local turns every int into a float
    (also inside dicts); this is where they get their types back.

    >>> typed(seed=3.0, opt_sizes={"saebench_math": 48.0})
    {'seed': 3, 'opt_sizes': {'saebench_math': 48}}
    """
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for name in values:
        if name not in fields:
            raise unknown_name("run parameter", name, fields)
    return {name: _coerce(label(name), value, fields[name]) for name, value in values.items()}


def as_int(name: str, value: Any) -> int:
    """An int from a step input (kfp.local passes ints as floats); one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise SaeMergeError(f"{name} {value!r}: expected a whole number")
    return int(value)


# -- coercion and checks --------------------------------------------------------------------------
def _coerce(label: str, value: Any, f: dataclasses.Field) -> Any:
    kind, meta, raw = _TYPES[f.name], f.metadata, value
    if kind is int:
        value = as_int(label, value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SaeMergeError(f"{label} {value!r}: expected a number")
        value = float(value)
    elif kind is bool:
        if not isinstance(value, bool):
            raise SaeMergeError(f"{label} {value!r}: expected true or false")
    elif kind is str:
        if not isinstance(value, str) or not (value or f.default == ""):
            raise SaeMergeError(f"{label} {value!r}: expected a non-empty string")
    elif kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise SaeMergeError(f"{label} {value!r}: expected a list of strings")
        value = list(value)
    elif kind is dict:
        if not isinstance(value, Mapping):
            raise SaeMergeError(f"{label} {value!r}: expected an object of task name -> size")
        value = {str(k): as_int(f"{label}: {k}", v) for k, v in value.items()}
    choices = meta["choices"]
    for item in (value if kind is list else [value]) if choices else ():
        if item not in choices:
            raise unknown_name(label, item, choices)
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise SaeMergeError(f"{label} {raw!r}: must be at least {meta['minimum']:g}")
    if meta["below"] is not None and value >= meta["below"]:
        raise SaeMergeError(f"{label} {raw!r}: must be below {meta['below']:g}")
    return value


def _check_task(label: str, task: str) -> None:
    """A task name's form; whether it exists is the task set's to say (preflight,
    :func:`saemerge.evaluate.taskset.resolve_tasks`: the user's directory is in S3)."""
    if not task or any(c.isspace() or c in ",/" for c in task):
        raise SaeMergeError(f"{label}: {task!r} is not a task name")


def _check_device(label: str, device: str, *, allow_auto: bool) -> None:
    kind, _, index = device.partition(":")
    ok = (
        (kind == "cpu" and not index)
        or (kind == "cuda" and (not index or index.isdigit()))
        or (allow_auto and device == "auto")
    )
    if not ok:
        allowed = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise SaeMergeError(f"{label} {device!r}: expected {allowed}")


# -- documentation ----------------------------------------------------------------------------------
def _default_text(p: Param) -> str:
    if p.required:
        return "(required)"
    return f"`{json.dumps(p.default)}`"


def markdown_table() -> str:
    """The README's parameter table (a test fails when the README drifts from it)."""
    lines = ["| parameter | default | meaning | searches | paper / spec |", "|---|---|---|---|---|"]
    for p in PARAMS.values():
        if not p.pipeline:
            continue
        searches = "all" if p.searches == SEARCHES else ", ".join(p.searches)
        meaning = p.help
        if p.choices:
            meaning += f"; {'any' if p.type is list else 'one'} of " + ", ".join(f"`{c}`" for c in p.choices)
        lines.append(f"| `{p.name}` | {_default_text(p)} | {meaning} | {searches} | {p.spec} |")
    return "\n".join(lines)


def pipeline_docstring(summary: str, search: str = SAE) -> str:
    """A Google-style docstring whose ``Args:`` kfp copies into the compiled parameters' descriptions."""
    lines = [summary, "", "Args:"]
    for p in PARAMS.values():
        if p.takes(search):
            choices = f" One of: {', '.join(p.choices)}." if p.choices else ""
            spec = f" [{p.spec}]" if p.spec != "—" else ""
            lines.append(f"    {p.name}: {p.help}.{choices}{spec}")
    return "\n".join(lines) + "\n"
