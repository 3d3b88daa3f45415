"""What every search's pipeline shares: compile options, run parameters from RunConfig, task settings.

A search's pipeline module (``sae_pipeline``, ``pso_pipeline``, ``m2n2_pipeline``) defines
``build_pipeline(options)`` and uses :class:`Tasks` for its components, so the S3 secret,
GPU placement, retries, resources and the cache volume are the same in every search, and :func:`with_run_parameters` for
its signature, so its parameters are its search's rows of the one parameter table. The
stretches of DAG that several searches share are :class:`Tasks` methods too: SAE's initial
archive (:meth:`Tasks.initial_archive`, SAE and M2N2) and the final evaluation with the
report (:meth:`Tasks.final_and_report`, every search).
"""

import dataclasses
import inspect
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, List, NamedTuple, Optional, Tuple  # noqa: UP035 -- kfp reads typing.List

from kfp import dsl, kubernetes

from saemerge import __version__
from saemerge.components.archive_update import archive_update
from saemerge.components.evaluate import evaluate
from saemerge.components.final_evaluate import final_evaluate
from saemerge.components.prune import prune
from saemerge.components.report import report
from saemerge.config import PARAMS, SAE, pipeline_docstring
from saemerge.devices import REQUIRE_GPU_ENV, REQUIRED
from saemerge.pipeline import resources
from saemerge.pipeline.retries import retry_plan
from saemerge.storage.s3_conn import S3_SECRET_KEYS, S3_SECRET_MOUNT  # noqa: F401 -- S3_SECRET_KEYS re-exported

# The IR types of run parameters (kfp reads the annotations of the pipeline's signature).
_ANNOTATIONS = {str: str, int: int, float: float, bool: bool, list: List[str], dict: dict}  # noqa: UP006


@dataclass(frozen=True)
class CompileOptions:
    """What is fixed when a pipeline is compiled (the rest are run parameters).

    ``steps`` is the search's number of generations (PSO: update steps); None takes the
    search's default (:mod:`saemerge.pipeline.searches`). ``model_size``, ``resources``
    (``--resource`` overrides: (kind, name, value)) and ``cache_volume`` size the pods
    (:mod:`saemerge.pipeline.resources`). ``gpu_merges`` puts the prune and merge steps on
    the GPU image with a GPU; without it they run on the CPU image, and ``merge_device=cuda``
    is refused (the pods carry ``SAEMERGE_GPU_MERGES=false``). ``caching`` is KFP's step cache
    in every task (a run started from a pipeline version gets its caching from the version's
    tasks, nothing else): off by default, because the run's own content-addressed records
    already make a re-run free, and are checked against S3, while a KFP cache hit hands on the
    URIs of an earlier execution whether S3 still holds them or not (docs/cluster-operations.md).
    None leaves kfp's default (on) in place.
    """

    search: str = SAE
    steps: Optional[int] = None  # noqa: UP045
    cpu_image: str = f"ghcr.io/saemerge/saemerge-cpu:{__version__}"
    gpu_image: str = f"ghcr.io/saemerge/saemerge-gpu:{__version__}"
    gpu_resource: str = "nvidia.com/gpu"
    s3_secret: str = "saemerge-s3"
    merge_parallelism: int = 4
    retries: int = 2
    # GPU pods: tolerate the usual taint of GPU nodes, and optionally pin them to labelled nodes.
    gpu_tolerations: Tuple[str, ...] = ("nvidia.com/gpu",)  # noqa: UP006
    gpu_node_selector: Tuple[Tuple[str, str], ...] = ()  # noqa: UP006
    model_size: str = "7b"
    resources: Tuple[Tuple[str, str, str], ...] = ()  # noqa: UP006
    cache_volume: str = "emptydir"
    gpu_merges: bool = False
    # KFP's step cache for every task, nested generations included: off (see above).
    caching: Optional[bool] = False  # noqa: UP045

    def __post_init__(self) -> None:
        from saemerge.pipeline.searches import get_search

        search = get_search(self.search)
        if self.steps is None:
            object.__setattr__(self, "steps", search.default_steps)
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        resources.check_cache_volume(self.cache_volume)
        check_image(self.cpu_image, "--cpu-image")
        check_image(self.gpu_image, "--gpu-image")
        check_secret_name(self.s3_secret)
        if self.s3_secret == resources.CACHE_VOLUME:  # the driver names the secret's volume after it
            raise ValueError(f"--s3-secret {self.s3_secret}: that name is the cache volume's; rename the secret")
        for kind in resources.STEP_KINDS:  # a bad size or override fails here, naming it
            self.step_resources(kind)

    def step_resources(self, kind: str) -> "resources.StepResources":
        """Requests, limits and cache size of one kind of step (small, merge, evaluate)."""
        return resources.resolve(kind, self.model_size, self.resources)

    def replace(self, **changes: Any) -> "CompileOptions":
        return dataclasses.replace(self, **changes)


# The images compiled in when none is named: the names images/build.sh builds by default.
# Nothing publishes them: a cluster needs the user's own build (see default_images_notice).
DEFAULT_IMAGES = (CompileOptions.cpu_image, CompileOptions.gpu_image)
_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_image(image: str, flag: str) -> None:
    """An image reference: ``name[:tag]``, ``name@sha256:<64 hex>`` or ``name:tag@sha256:<64 hex>``.

    Raises:
        ValueError: anything else (one line naming the flag).
    """
    name, at, digest = image.partition("@")
    if not _IMAGE_NAME.match(name) or (at and not _DIGEST.match(digest)):
        raise ValueError(
            f"{flag} {image!r}: expected an image reference such as registry.example/saemerge-cpu:0.1.0 "
            "or registry.example/saemerge-cpu@sha256:<64 hex digits>"
        )


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_secret_name(name: str) -> None:
    """The S3 secret's name must be a DNS-1123 label, not only a valid Secret name (which may hold
    dots): the KFP driver names the pod's volume after the secret (``extendPodSpecPatch`` in
    ``backend/src/v2/driver/k8s.go``, 2.14.0 to 2.17.0), and a volume name is a label.

    Raises:
        ValueError: one line naming the flag and the rule.
    """
    if not _DNS_LABEL.match(name):
        raise ValueError(
            f"--s3-secret {name!r}: must be a DNS-1123 label (at most 63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit): the KFP driver names the pod's volume after the secret"
        )


def default_images_notice(options: CompileOptions) -> str | None:
    """The warning for a compile that names no image of its own (None when both were named).

    The defaults are only names (:data:`DEFAULT_IMAGES`): a cluster pulling them waits in
    ImagePullBackOff with no message that points here, so the compile says which images the
    pipeline will use and how to build and name one's own. A warning, not a refusal: the
    compiled YAML is also read, diffed and sized without ever running.
    """
    used = [img for img in (options.cpu_image, options.gpu_image) if img in DEFAULT_IMAGES]
    if not used:
        return None
    return (
        f"warning: the pipeline uses the default image(s) {', '.join(used)}, which are not published: "
        "build and push your own (SAEMERGE_CPU_IMAGE=REG/saemerge-cpu:TAG SAEMERGE_GPU_IMAGE=REG/saemerge-gpu:TAG "
        "images/build.sh all --push) and name them with --cpu-image/--gpu-image or those variables, "
        "best by digest (REG/saemerge-cpu@sha256:...)"
    )


class Tasks:
    """The components of a pipeline as tasks of one kind (small, merge, evaluate): the S3
    secret, resources and the cache volume, retries, and GPU placement; and the stretches of
    DAG that searches share."""

    def __init__(self, options: CompileOptions):
        self.options = options
        self._components: dict[tuple[Callable, str], Any] = {}

    def cpu(self, func: Callable) -> Any:
        """`func` as a component on the CPU image (one component per function and image)."""
        return self._component(func, self.options.cpu_image)

    def gpu(self, func: Callable) -> Any:
        """`func` as a component on the GPU image (one component per function and image)."""
        return self._component(func, self.options.gpu_image)

    def _component(self, func: Callable, image: str) -> Any:
        if (func, image) not in self._components:
            self._components[func, image] = dsl.component(func, base_image=image, install_kfp_package=False)
        return self._components[func, image]

    @staticmethod
    def run_inputs(component: Any, p: SimpleNamespace, **given: Any) -> dict[str, Any]:
        """The arguments of a search's init step: every input of `component` from the pipeline
        parameter of that name in `p`, except those in `given` (compile-time values such as
        ``steps``). An input with no such parameter fails the compile with AttributeError."""
        names = (component.component_spec.inputs or {}).keys()
        return {**{name: getattr(p, name) for name in names if name not in given}, **given}

    def initial_archive(self, p: SimpleNamespace, init: dsl.PipelineTask) -> Any:
        """SAE's initial archive (SAE-SPEC §6.1) from the init step's variants: prune each one,
        evaluate the pruned variants on generation 0's optimisation set (the evaluate step
        draws it, after the prunes and so after the init step, which writes the run.json whose
        settings every later step reads), keep the archive. Returns the archive (the handoff
        URIs archive_update writes)."""
        c_prune, c_eval = self.cpu(prune), self.gpu(evaluate)
        with dsl.ParallelFor(items=init.outputs["Output"], parallelism=self.options.merge_parallelism) as variant:
            pruned = self.retried(c_prune(run_uri=p.run_uri, variant=variant)).set_display_name("prune variant")
        scored0 = self.on_gpu(
            c_eval(
                run_uri=p.run_uri,
                generation=-1,
                stage="init",
                candidates=dsl.Collected(pruned.outputs["Output"]),
                sample=0,
            )
        ).set_display_name("evaluate initial population")
        update = self.with_s3(
            self.cpu(archive_update)(run_uri=p.run_uri, generation=-1, archive=[], offspring=scored0.outputs["Output"])
        ).set_display_name("initial archive")
        return update.outputs["Output"]

    def final_and_report(self, p: SimpleNamespace, archive: Any, gamma: Any) -> "SearchOutputs":
        """The final evaluation of `archive` on the test sets (with the experts, the base and the
        one-shot baselines) and the report; returns the search's pipeline outputs."""
        final = self.on_gpu(
            self.gpu(final_evaluate)(
                run_uri=p.run_uri,
                archive=archive,
                experts=p.experts,
                base_uri=p.base_uri,
                data_uri=p.data_uri,
                test_sizes=p.test_sizes,
                baselines=p.baselines,
                seed=p.seed,
                gamma=gamma,
                device=p.eval_device,
                dtype=p.eval_dtype,
                batch_size=p.eval_batch_size,
            ),
            retry="final",
        ).set_display_name("final evaluate")
        self.with_s3(self.cpu(report)(run_uri=p.run_uri, results=final.outputs["Output"])).set_display_name("report")
        return SearchOutputs(results=final.outputs["Output"], best_model=final.outputs["best_model"])

    def with_s3(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """A small CPU step with S3, retried: an S3 endpoint's hiccup must not end a run of many hours (the steps are idempotent: what they write is content-addressed or
        checked before it is written again)."""
        self._retry(task, "small")
        return self._secret(self._sized(task, "small"))

    def on_gpu(self, task: dsl.PipelineTask, retry: str = "evaluate") -> dsl.PipelineTask:
        """An evaluate step: one GPU, the GPU label and tolerations, retried when its container
        fails (a preempted pod is not retried by KFP up to 2.17: :mod:`saemerge.pipeline.retries`;
        `retry` is its retry kind, ``final`` for the final evaluation); ``SAEMERGE_EVAL_GPU=required``,
        so ``eval_device=auto`` fails at once instead of scoring on the CPU when CUDA is not usable
        (:mod:`saemerge.devices`)."""
        self._retry(task, retry)
        task = self._secret(self._sized(self._gpu(task), "evaluate"))
        return resources.annotate_env(task, REQUIRE_GPU_ENV, REQUIRED)

    def retried(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """A model-making step (prune, merge): retried when its container fails, with S3; on the
        GPU image with a GPU when compiled with ``gpu_merges``."""
        self._retry(task, "merge")
        if self.options.gpu_merges:
            task.set_container_image(self.options.gpu_image)
            self._gpu(task)
        return self._secret(self._sized(task, "merge"))

    def _retry(self, task: dsl.PipelineTask, kind: str) -> dsl.PipelineTask:
        """The retry policy of `kind` at the compiled model size (:func:`~saemerge.pipeline.retries.retry_plan`):
        Argo stops retrying once the first attempt's start plus the maximum has passed, so the
        maximum covers every attempt's expected run."""
        return retry_plan(kind, self.options.model_size, self.options.retries).apply(task)

    def _gpu(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        opts = self.options
        task.set_accelerator_type(opts.gpu_resource).set_accelerator_limit(1)
        kubernetes.add_pod_label(task, "saemerge.io/accelerator", "gpu")
        for key in opts.gpu_tolerations:
            kubernetes.add_toleration(task, key=key, operator="Exists", effect="NoSchedule")
        for key, value in opts.gpu_node_selector:
            kubernetes.add_node_selector(task, key, value)
        return task

    def _sized(self, task: dsl.PipelineTask, kind: str) -> dsl.PipelineTask:
        opts = self.options
        return resources.apply(task, opts.step_resources(kind), opts.cache_volume, opts.gpu_merges)

    def _secret(self, task: dsl.PipelineTask) -> dsl.PipelineTask:
        """The S3 secret as one read-only volume of files (one per key), not one environment
        variable per key: the driver writes each task's pod spec patch into the Workflow several
        times, and a volume costs there a third of the four secret references (kfp-kubernetes'
        secretAsVolume, applied by the driver since KFP 2.5: saemerge.pipeline.backend). The
        steps find the files at the agreed mount, :data:`S3_SECRET_MOUNT`, at their first S3 call
        (``s3_conn.load_secret_dir``); no variable names it, as each would be written per task."""
        return kubernetes.use_secret_as_volume(task, self.options.s3_secret, mount_path=S3_SECRET_MOUNT, optional=False)


# A search's pipeline outputs: the results rows and its best model as a Kubeflow Model artifact.
SearchOutputs = NamedTuple("SearchOutputs", [("results", List[dict]), ("best_model", dsl.Model)])  # noqa: UP006, UP014


def with_run_parameters(
    search: str, description: str, returns: Any = List[dict]
) -> Callable[[Callable[[SimpleNamespace], Any]], Callable[..., Any]]:  # noqa: UP006
    """A decorator: the pipeline function whose parameters are :class:`RunConfig`'s parameters of `search`.

    `returns` is the pipeline's output annotation: the results rows (``List[dict]``), or
    :data:`SearchOutputs` for a pipeline that also returns its best model
    (``SearchOutputs(results=final.outputs["Output"], best_model=final.outputs["best_model"])``).

    kfp builds the pipeline's inputs from the function's signature (types and defaults) and
    copies the docstring's ``Args:`` into their descriptions, which the Kubeflow run form
    shows; both come from the one parameter table, so they cannot drift from it. kfp calls the
    function with one argument per parameter, in signature order; `body` gets them by name.
    """
    params = [p for p in PARAMS.values() if p.takes(search)]
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=_ANNOTATIONS[p.type],
                **({} if p.required else {"default": p.default}),
            )
            for p in params
        ],
        return_annotation=returns,
    )

    def decorate(body: Callable[[SimpleNamespace], Any]) -> Callable[..., Any]:
        def pipeline_func(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(SimpleNamespace(**bound.arguments))

        pipeline_func.__name__ = body.__name__
        pipeline_func.__signature__ = signature  # type: ignore[attr-defined]
        pipeline_func.__doc__ = pipeline_docstring(description, search)
        return pipeline_func

    return decorate
