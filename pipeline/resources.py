"""What each pod of a search asks Kubernetes for: CPU, memory, and the disk of its download cache.

Three kinds of steps (:data:`STEP_KINDS`):

- ``small``: init, schedule step (with the pairs), archive update, report (CPU image; headers, JSON, Parquet);
- ``merge``: prune and merge steps (CPU image, or the GPU image with ``--gpu-merges``), which read
  two or three checkpoints and write one, streamed tensor by tensor;
- ``evaluate``: evaluate and final evaluate (GPU image), which load one model at a time
  (the final step also merges the baselines: every expert and the base at once).

**Sizing rule.** From the ``--model-size`` compile option, P parameters (``tiny`` = 10⁸, ``3b``,
``7b``, ``70b``, ``1.5b``, ``500m``, or a count such as ``7e9``) and B = 2·P bytes (a bf16
checkpoint); every quantity rounded up to whole Gi:

============  ==============  ==============  ===============  ===============  ==============
kind          CPU request     memory request  memory limit     cache volume     cache budget
============  ==============  ==============  ===============  ===============  ==============
small         0.5             1 Gi            4 Gi             4 Gi             (none)
merge         ⌈P/2·10⁹⌉, 1–8  2 Gi + B        2 Gi + 2·B       2 Gi + 6·B       volume − 2·B
evaluate      ⌈P/2·10⁹⌉, 2–8  4 Gi + B        4 Gi + 2·B       2 Gi + 6·B       volume − 2·B
============  ==============  ==============  ===============  ===============  ==============

No CPU limits by default (a CPU limit only throttles; the request reserves). At 7B (B = 13 GiB):
merge 4 CPUs, 16/29 Gi memory, an 81 Gi cache (budget 55 Gi); evaluate 4 CPUs, 18/31 Gi, the
same cache; small steps as in the table at every size. Why: a merge streams
tensors, so its memory is a small multiple of the largest tensor (an embedding, up to ~7 % of
P in fp32, a few copies in flight) plus the page cache of its shards, bounded here by about B;
its disk holds the two parents, the base, the child being written and one download in flight.
The evaluator holds the model on the GPU and its weights pass through host memory once.
Override any figure with ``--resource KIND.NAME=VALUE`` (NAME: cpu, cpu_limit, memory,
memory_limit, storage; VALUE a Kubernetes quantity, or ``none`` to leave it out).

**Disk.** KFP has no field for ephemeral-storage requests (neither the pipeline IR's resource
spec nor kfp-kubernetes), so a step's disk is its cache volume, mounted at
:data:`CACHE_MOUNT` and named to saemerge by ``SAEMERGE_CACHE`` (``--cache-volume``):

- ``emptydir`` (default): an emptyDir with ``sizeLimit`` = the cache size. The kubelet evicts
  a pod whose volume grows past it. The scheduler reserves it for a CPU step through
  :func:`reserve_disk`: an ``ephemeral-storage`` limit of the cache size plus
  :data:`CONTAINER_DISK` (Kubernetes requests what is limited), carried by the accelerator
  fields, which the KFP driver copies into the container's limits; four parallel 7B merges
  then reserve 4 x 83 Gi instead of finding the disk by chance. A GPU step's one accelerator
  slot holds its GPU, so its emptyDir is not reserved: use a ``pvc:`` claim where disk is tight;
- ``ephemeral[:STORAGECLASS]`` (a generic ephemeral volume made for each pod) is refused: a
  fresh volume is root-owned, mode 0755, and KFP sets no fsGroup, so the steps (uid 1000)
  could not write it (:func:`check_cache_volume`);
- ``pvc:NAME``: an existing claim shared by every step (ReadWriteMany for parallel merges),
  made writable by uid 1000 or gid 0 once (docs/cluster-operations.md), so models downloaded
  once serve later steps; give its size as ``--resource KIND.storage``
  (the budget is that less two models) and the budget keeps entries another pod used in the
  last 10 minutes;
- ``none``: no volume; the cache lives on the container's disk, unbounded.

Inside the volume ``SAEMERGE_CACHE_MAX_SIZE`` (the budget) makes a step drop the least
recently used models it no longer reads before downloading another
(:mod:`saemerge.cache.budget`), so an evaluate step over 8 candidates at 7B keeps about the
budget on disk, not 8 × 15 GB.

The environment reaches the container through one pod annotation, ``saemerge.io/env``
(``NAME=value;NAME=value``), read by the Downward API into ``SAEMERGE_POD_ENV``, whose
variables :mod:`saemerge.components` sets when a step starts; i.e. only through the Kubernetes
platform config: ``kfp.local`` ignores that config, so a local run of the same compiled YAML
keeps its own cache. One annotation rather than one per variable: the KFP backend copies a
task's Kubernetes config and pod annotations into the Argo Workflow several times per task
(about 54 KB of a 24-generation run as stored, :mod:`saemerge.pipeline.workflow_size`). The KFP
backend must be 2.14 or newer (:mod:`saemerge.pipeline.backend`: ``dsl.Collected`` parameter
fan-in, which every generation uses, arrived in the driver in 2.14; emptyDir mounts need 2.3,
sub-DAG outputs 2.4, the secrets' ``secretNameParameter`` 2.5); ``saemerge submit`` checks it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from kfp import dsl, kubernetes

from saemerge.devices import GPU_MERGES_ENV, REQUIRE_GPU_ENV

STEP_KINDS = ("small", "merge", "evaluate")
RESOURCE_NAMES = ("cpu", "cpu_limit", "memory", "memory_limit", "storage")
CACHE_MOUNT = "/saemerge-cache"
CACHE_VOLUME = "saemerge-cache"
GIB = 1 << 30
# Disk a step's container uses besides its cache volume (logs, the image's writable layer, /tmp).
CONTAINER_DISK = 2 * GIB
# The variables a step gets on a cluster, all in one pod annotation (Downward API -> POD_ENV).
STEP_ENV = (
    "SAEMERGE_CACHE",
    "SAEMERGE_CACHE_MAX_SIZE",
    "SAEMERGE_CACHE_MIN_IDLE_S",
    GPU_MERGES_ENV,  # saemerge.devices: prune and merge steps may use CUDA
    REQUIRE_GPU_ENV,  # saemerge.devices: no CPU fallback
)
POD_ENV_ANNOTATION = "saemerge.io/env"
_NAMED_SIZES = {"tiny": 1e8}
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")  # kfp's own check of CPU strings
_QUANTITY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")  # and of memory strings


def parameter_count(model_size: str) -> float:
    """``tiny``, ``7b``, ``1.5B``, ``500m``, ``7e9`` or ``7000000000`` -> parameters.

    Raises:
        ValueError: anything else, or not positive.
    """
    text = str(model_size).strip().lower()
    if text in _NAMED_SIZES:
        return _NAMED_SIZES[text]
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)", text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(
            f"--model-size {model_size!r}: expected tiny, a size such as 3b, 7b, 1.5b, 500m, "
            "or a parameter count such as 7e9"
        )
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def _gi(nbytes: float) -> str:
    return f"{max(1, math.ceil(nbytes / GIB))}Gi"


@dataclass(frozen=True)
class StepResources:
    """One kind's requests and limits (Kubernetes quantities; None: not set)."""

    cpu: Optional[str] = None  # noqa: UP045 -- kept like CompileOptions' fields
    cpu_limit: Optional[str] = None  # noqa: UP045
    memory: Optional[str] = None  # noqa: UP045
    memory_limit: Optional[str] = None  # noqa: UP045
    storage: Optional[str] = None  # noqa: UP045 -- the cache volume's size
    budget_bytes: Optional[int] = None  # noqa: UP045 -- SAEMERGE_CACHE_MAX_SIZE


def default_resources(kind: str, model_size: str) -> StepResources:
    """The sizing rule of the module doc for one kind of step."""
    p = parameter_count(model_size)
    b = 2 * p
    cpus = math.ceil(p / 2e9)
    if kind == "small":
        return StepResources(cpu="500m", memory="1Gi", memory_limit="4Gi", storage="4Gi")
    if kind == "merge":
        cache = 2 * GIB + 6 * b
        return StepResources(
            cpu=str(min(8, max(1, cpus))),
            memory=_gi(2 * GIB + b),
            memory_limit=_gi(2 * GIB + 2 * b),
            storage=_gi(cache),
            budget_bytes=int(math.ceil(cache / GIB) * GIB - 2 * b),
        )
    if kind == "evaluate":
        cache = 2 * GIB + 6 * b
        return StepResources(
            cpu=str(min(8, max(2, cpus))),
            memory=_gi(4 * GIB + b),
            memory_limit=_gi(4 * GIB + 2 * b),
            storage=_gi(cache),
            budget_bytes=int(math.ceil(cache / GIB) * GIB - 2 * b),
        )
    raise ValueError(f"unknown step kind {kind!r}; expected one of {', '.join(STEP_KINDS)}")


def parse_override(item: str) -> tuple[str, str, str]:
    """``KIND.NAME=VALUE`` (``--resource``) -> (kind, name, value), checked.

    Raises:
        ValueError: an unknown kind or name, or a value that is not a Kubernetes quantity.
    """
    key, sep, value = item.partition("=")
    kind, dot, name = key.strip().partition(".")
    name = name.replace("-", "_")
    if name == "ephemeral_storage":
        name = "storage"
    if not sep or not dot or kind not in STEP_KINDS or name not in RESOURCE_NAMES:
        raise ValueError(
            f"--resource {item!r}: expected KIND.NAME=VALUE with KIND one of {', '.join(STEP_KINDS)} "
            f"and NAME one of {', '.join(RESOURCE_NAMES)}, e.g. merge.memory=32Gi"
        )
    value = value.strip()
    pattern = _CPU if name.startswith("cpu") else _QUANTITY
    if value != "none" and not pattern.match(value):
        what = "a number of CPUs such as 2, 0.5 or 500m" if name.startswith("cpu") else "a quantity such as 32Gi"
        raise ValueError(f"--resource {item!r}: {value!r} is not {what} (or none)")
    return kind, name, value


def resolve(kind: str, model_size: str, overrides: tuple[tuple[str, str, str], ...]) -> StepResources:
    """The defaults of ``kind`` with the ``--resource`` overrides applied (``none`` removes a figure).

    A changed storage size moves the cache budget with it (the volume less two models).
    """
    res = default_resources(kind, model_size)
    values = {n: getattr(res, n) for n in RESOURCE_NAMES}
    for k, name, value in overrides:
        if k == kind:
            values[name] = None if value == "none" else value
    budget = res.budget_bytes
    if values["storage"] != res.storage and budget is not None:
        b = 2 * parameter_count(model_size)
        budget = int(_bytes(values["storage"]) - 2 * b) if values["storage"] else None
        if budget is not None and budget <= 0:
            raise ValueError(
                f"--resource {kind}.storage={values['storage']}: smaller than two models of "
                f"--model-size {model_size} ({_gi(2 * b)}); the step could not hold its inputs"
            )
    return StepResources(**values, budget_bytes=budget)


def _bytes(quantity: str) -> int:
    m = re.fullmatch(r"([0-9]+)([EPTGMK]i?)?", quantity)
    assert m, quantity
    unit = m.group(2) or ""
    powers = "KMGTPE"
    base = 1024 if unit.endswith("i") else 1000
    return int(m.group(1)) * (base ** (powers.index(unit[0]) + 1) if unit else 1)


def check_cache_volume(spec: str) -> None:
    """``emptydir``, ``pvc:NAME`` or ``none``; ``ephemeral[:STORAGECLASS]`` is refused.

    A generic ephemeral volume is provisioned fresh for every pod, and a fresh volume's root is
    usually owned by root with mode 0755, while the steps run as uid 1000 (gid 0). Kubernetes
    hands a volume to the pod's group only through ``fsGroup``, which KFP never sets: not the
    driver (``backend/src/v2/driver/k8s.go``, no fsGroup at 2.14.0 or 2.17.0) and not
    kfp-kubernetes (``set_security_context``: runAsUser, runAsGroup, runAsNonRoot only). So the
    step's first cache write would fail. A ``pvc:`` claim exists before the run and is made
    writable once (docs/cluster-operations.md); a step that finds its cache unwritable stops at
    once with one line (:func:`saemerge.components.check_cache_dir`).

    Raises:
        ValueError: one line naming the flag, and for ``ephemeral`` the alternatives.
    """
    kind, _, arg = spec.partition(":")
    if kind == "ephemeral":
        raise ValueError(
            f"--cache-volume {spec}: a freshly provisioned volume is root-owned (mode 0755) and KFP sets no fsGroup, "
            "so the steps (uid 1000) cannot write it; use emptydir (the default; size it with --resource KIND.storage) "
            "or pvc:NAME on a claim made writable once (docs/cluster-operations.md)"
        )
    ok = (kind in ("emptydir", "none") and not arg) or (kind == "pvc" and arg)
    if not ok:
        raise ValueError(f"--cache-volume {spec!r}: expected emptydir, pvc:NAME or none")


def apply(task: dsl.PipelineTask, res: StepResources, cache_volume: str, gpu_merges: bool) -> dsl.PipelineTask:
    """Set ``res`` on ``task``: requests and limits, the cache volume and its environment."""
    if res.cpu:
        task.set_cpu_request(res.cpu)
    if res.cpu_limit:
        task.set_cpu_limit(res.cpu_limit)
    if res.memory:
        task.set_memory_request(res.memory)
    if res.memory_limit:
        task.set_memory_limit(res.memory_limit)
    env = {GPU_MERGES_ENV: "true" if gpu_merges else "false"}
    kind, _, arg = cache_volume.partition(":")
    if kind != "none" and res.storage:
        if kind == "emptydir":
            kubernetes.empty_dir_mount(task, volume_name=CACHE_VOLUME, mount_path=CACHE_MOUNT, size_limit=res.storage)
            reserve_disk(task, _bytes(res.storage) + CONTAINER_DISK)
        else:  # pvc:NAME (check_cache_volume refuses ephemeral)
            kubernetes.mount_pvc(task, pvc_name=arg, mount_path=CACHE_MOUNT)
        env["SAEMERGE_CACHE"] = CACHE_MOUNT
        if res.budget_bytes:
            env["SAEMERGE_CACHE_MAX_SIZE"] = str(res.budget_bytes)
            env["SAEMERGE_CACHE_MIN_IDLE_S"] = "600" if kind == "pvc" else "0"  # one pod's volume: nobody else reads it
    for name, value in env.items():
        annotate_env(task, name, value)
    return task


def reserve_disk(task: dsl.PipelineTask, nbytes: int) -> bool:
    """Make the scheduler reserve `nbytes` of node disk for the step: an ``ephemeral-storage``
    limit (Kubernetes then requests the same), carried by the task's accelerator fields.

    The pipeline IR has no ephemeral-storage field, but the KFP driver copies the accelerator's
    resource type and count into the container's limits verbatim (``initPodSpecPatch`` in
    ``backend/src/v2/driver/driver.go``: ``res.Limits[ResourceName(type)] = ParseQuantity(count)``),
    so type ``ephemeral-storage`` with a count in bytes becomes ``limits: {ephemeral-storage: N}``.
    A step that already has an accelerator (a GPU) keeps it and reserves nothing: returns False.
    """
    spec_resources = task.container_spec.resources if task.container_spec else None
    if spec_resources is not None and spec_resources.accelerator_type:
        return False
    task.set_accelerator_type("ephemeral-storage").set_accelerator_limit(str(int(nbytes)))
    return True


def annotate_env(task: dsl.PipelineTask, name: str, value: str) -> dsl.PipelineTask:
    """Give the step's container ``name=value`` (one of :data:`STEP_ENV`) on a cluster: added to
    the pod's ``saemerge.io/env`` annotation, which the Downward API hands the container as
    ``SAEMERGE_POD_ENV`` (:func:`saemerge.components.pod_env`). Kubernetes config only, which
    ``kfp.local`` ignores."""
    from saemerge.components import POD_ENV, format_pod_env, pod_env

    if name not in STEP_ENV:
        raise ValueError(f"{name}: not a step's environment variable ({', '.join(STEP_ENV)})")
    config = task.platform_config.get("kubernetes", {})
    held = pod_env(config.get("podMetadata", {}).get("annotations", {}).get(POD_ENV_ANNOTATION, ""))
    if not held:
        kubernetes.use_field_path_as_env(task, POD_ENV, f"metadata.annotations['{POD_ENV_ANNOTATION}']")
    kubernetes.add_pod_annotation(task, POD_ENV_ANNOTATION, format_pod_env({**held, name: value}))
    return task
