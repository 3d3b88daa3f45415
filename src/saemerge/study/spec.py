"""What a study is: arms (named run configurations) × run seeds × bench seeds, from a YAML file or a preset.

A study file::

    name: scoring                 # the study's id unless `saemerge study ... --id` says otherwise
    bench: {size: tiny}           # the bench every run uses: built locally, or `uri` on a cluster
    bench_seeds: [0]              # benches of different seeds: different expert pairs
    run_seeds: [0, 1, 2]          # the run parameter `seed`: samples, pairing, DARE
    params: {baselines: [weight_average, task_arithmetic, ties]}   # every arm's run parameters
    reference: sae-global         # the arm the report compares every other method with
    arms:
      - {name: sae-global, search: sae, params: {scoring: global}}
      - {name: sae-local,  search: sae, params: {scoring: local}}
      - {name: dense,      search: sae, params: {s_min: 0.0, s_max: 0.0}}

Each arm may set ``steps`` (generations; default: the search's). ``bench.uri`` (for clusters)
is a template with ``{bench_seed}``: the bench's root, holding ``models/base``,
``models/<expert>`` and ``data`` as ``saemerge bench build`` writes them. Every grid entry is
validated as the run it becomes (:class:`~saemerge.config.RunConfig`) before anything starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saemerge.config import RunConfig
from saemerge.errors import SaeMergeError, unknown_name
from saemerge.study.presets import PRESETS

EXPERTS = ("math", "multilingual")  # the bench's experts, under BENCH/models/
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_KEYS = {"name", "bench", "bench_seeds", "run_seeds", "params", "reference", "arms", "description"}
_ARM_KEYS = {"name", "search", "params", "steps"}


@dataclass(frozen=True)
class Arm:
    """One configuration of the study: a search and its run parameters."""

    name: str
    search: str
    params: dict[str, Any]
    steps: int | None = None


@dataclass(frozen=True)
class Entry:
    """One run of the grid."""

    arm: Arm
    bench_seed: int
    run_seed: int

    @property
    def id(self) -> str:
        return f"{self.arm.name}-b{self.bench_seed}-r{self.run_seed}"


@dataclass(frozen=True)
class StudySpec:
    name: str
    arms: tuple[Arm, ...]
    bench_seeds: tuple[int, ...]
    run_seeds: tuple[int, ...]
    bench_size: str = "tiny"
    bench_uri: str | None = None  # a template with {bench_seed}; None: the local bench
    params: dict[str, Any] = field(default_factory=dict)
    reference: str = ""
    description: str = ""

    @property
    def entries(self) -> list[Entry]:
        """The grid, run seed by run seed, each on every bench, every arm in turn: a study stopped
        early has whole blocks of paired runs, on every bench."""
        return [Entry(a, b, r) for r in self.run_seeds for b in self.bench_seeds for a in self.arms]

    def to_dict(self) -> dict[str, Any]:
        bench: dict[str, Any] = {"size": self.bench_size}
        if self.bench_uri:
            bench["uri"] = self.bench_uri
        return {
            "name": self.name,
            "description": self.description,
            "bench": bench,
            "bench_seeds": list(self.bench_seeds),
            "run_seeds": list(self.run_seeds),
            "params": self.params,
            "reference": self.reference,
            "arms": [
                {"name": a.name, "search": a.search, "params": a.params, **({"steps": a.steps} if a.steps else {})}
                for a in self.arms
            ],
        }

    def bench_root(self, bench_seed: int, bucket: str) -> str:
        if self.bench_uri:
            return self.bench_uri.format(bench_seed=bench_seed)
        from saemerge.pipeline.local import bench_uri

        return bench_uri(bucket, self.bench_size, bench_seed)

    def run_config(
        self, entry: Entry, run_uri: str, bucket: str, score_cache: str = "", *, local: bool = False
    ) -> RunConfig:
        """The entry's run configuration (validated): the bench's models and data, the study's
        parameters, the arm's, the seed, the shared score cache; with `local`, as `saemerge run
        --local` completes it (:func:`~saemerge.pipeline.local.local_defaults`)."""
        from saemerge.pipeline.local import local_defaults
        from saemerge.pipeline.searches import get_search

        bench = self.bench_root(entry.bench_seed, bucket)
        values = {
            "run_uri": run_uri,
            "experts": [f"{bench}/models/{e}" for e in EXPERTS],
            "base_uri": f"{bench}/models/base",
            "data_uri": f"{bench}/data",
            **(local_defaults(self.bench_size) if local else {}),
            **self.params,
            **entry.arm.params,
            "seed": entry.run_seed,
            "search": entry.arm.search,
            "steps": entry.arm.steps or get_search(entry.arm.search).default_steps,
        }
        if score_cache:
            values["score_cache"] = score_cache
        try:
            return RunConfig.from_params(values)
        except SaeMergeError as exc:
            raise SaeMergeError(f"study {self.name}, arm {entry.arm.name}: {exc}") from None


def load_spec(source: str) -> StudySpec:
    """A preset's name or a YAML file's path, parsed and checked (every grid entry as a run).

    Raises:
        SaeMergeError: one line naming the file (or preset) and what is wrong in it.
    """
    path = Path(source)
    if source in PRESETS:
        raw, where = PRESETS[source], f"preset {source}"
    elif path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SaeMergeError(f"{source}: no such study file")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SaeMergeError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
        where = str(source)
        if isinstance(raw, dict):
            raw.setdefault("name", path.stem)
    else:
        raise unknown_name("study preset", source, PRESETS) from None
    try:
        spec = parse_spec(raw)
    except SaeMergeError as exc:
        raise SaeMergeError(f"{where}: {exc}") from None
    return spec


def parse_spec(raw: Any) -> StudySpec:
    """A study from its dict form (see the module docstring); every entry validated as a run."""
    from saemerge.pipeline.searches import SEARCHES

    if not isinstance(raw, dict):
        raise SaeMergeError("a study is a mapping (name, bench, bench_seeds, run_seeds, params, arms)")
    unknown = set(raw) - _KEYS
    if unknown:
        raise unknown_name("study key", sorted(unknown)[0], _KEYS)
    name = str(raw.get("name", ""))
    if not _NAME.match(name):
        raise SaeMergeError(f"name {name!r}: lowercase letters, digits and '-', at most 41 characters")
    bench = raw.get("bench") or {}
    if not isinstance(bench, dict) or set(bench) - {"size", "uri"}:
        raise SaeMergeError(f"bench {bench!r}: expected {{size: tiny}} and/or {{uri: s3://...{{bench_seed}}}}")
    if bench.get("uri") and "{bench_seed}" not in str(bench["uri"]):
        raise SaeMergeError(f"bench uri {bench['uri']!r}: must contain {{bench_seed}}")
    seeds = {k: _seeds(k, raw.get(k)) for k in ("bench_seeds", "run_seeds")}
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, list) or not arms_raw:
        raise SaeMergeError("arms: an empty grid (give at least one arm)")
    arms = []
    for item in arms_raw:
        if not isinstance(item, dict) or "name" not in item:
            raise SaeMergeError(f"arm {item!r}: expected a mapping with a name and a search")
        if set(item) - _ARM_KEYS:
            raise unknown_name(f"key of arm {item['name']}", sorted(set(item) - _ARM_KEYS)[0], _ARM_KEYS)
        search = str(item.get("search", "sae"))
        if search not in SEARCHES:
            raise unknown_name(f"arm {item['name']}: search", search, SEARCHES)
        arm_name = str(item["name"])
        if not _NAME.match(arm_name):
            raise SaeMergeError(f"arm {arm_name!r}: lowercase letters, digits and '-', at most 41 characters")
        for key in ("steps", "search", "seed", "run_uri"):
            if key in (item.get("params") or {}):
                raise SaeMergeError(f"arm {arm_name}: params.{key} is set by the study ({_WHERE[key]})")
        from saemerge.config import PARAMS

        for key in item.get("params") or {}:
            if key in PARAMS and not PARAMS[key].takes(search):
                raise SaeMergeError(f"arm {arm_name}: the {search} search does not take the parameter {key}")
        steps = item.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise SaeMergeError(f"arm {arm_name}: steps {steps!r}: expected a whole number >= 1")
        arms.append(Arm(arm_name, search, dict(item.get("params") or {}), steps))
    names = [a.name for a in arms]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise SaeMergeError(f"arms: two arms are called {twins[0]!r}")
    params = dict(raw.get("params") or {})
    for key in ("steps", "search", "seed", "run_uri"):
        if key in params:
            raise SaeMergeError(f"params.{key} is set by the study ({_WHERE[key]})")
    reference = str(raw.get("reference") or names[0])
    if reference not in names:
        raise unknown_name("reference arm", reference, names)
    spec = StudySpec(
        name=name,
        arms=tuple(arms),
        bench_seeds=seeds["bench_seeds"],
        run_seeds=seeds["run_seeds"],
        bench_size=str(bench.get("size", "tiny")),
        bench_uri=bench.get("uri"),
        params=params,
        reference=reference,
        description=str(raw.get("description", "")),
    )
    for arm in spec.arms:  # every arm as the run it becomes: unknown parameters, bad values
        spec.run_config(Entry(arm, spec.bench_seeds[0], spec.run_seeds[0]), "s3://check/run", "check")
    return spec


_WHERE = {"steps": "an arm's steps", "search": "an arm's search", "seed": "run_seeds", "run_uri": "one per run"}


def _seeds(key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SaeMergeError(f"{key}: an empty grid (give a list of seeds, e.g. [0, 1])")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) or len(set(value)) < len(
        value
    ):
        raise SaeMergeError(f"{key} {value!r}: expected distinct whole numbers >= 0")
    return tuple(value)
