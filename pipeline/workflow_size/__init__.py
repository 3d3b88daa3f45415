"""How big the Argo Workflow the Kubeflow Pipelines v2 backend makes of a pipeline gets.

The KFP v2 backend compiles a pipeline spec into one Argo ``Workflow`` object, which
Kubernetes stores whole in etcd (a request limit of about 1.5 MiB on many clusters; Argo's
controller itself starts gzipping ``status.nodes`` above 1 MiB, ``MAX_WORKFLOW_SIZE``). The
object grows while the run goes on: every node's status, with its input and output parameter
values, is written into it. This module estimates both sizes, as JSON bytes (what the API
server and etcd hold):

``estimate_compiled(spec, platform)``
    The Workflow the backend compiles from our ``saemerge compile`` output, before it runs.
    A model of ``backend/src/v2/compiler/argocompiler`` (kubeflow/pipelines at
    :data:`BACKEND_COMMIT`): the compiler is replayed on the spec to get the bytes it copies
    out of it, and a linear model on those, fitted on the backend's own compiler test data,
    adds the fixed parts (see :func:`compiled_features` for the terms and the Go they come
    from, and :data:`COMPILED_COEFFICIENTS` for the fit).
``estimate_runtime(spec, platform, run_root=None, ...)``
    The same object at the end of a full run: the compiled size plus ``status.nodes``, one
    entry per Argo node the run creates, each with its inputs and outputs (see
    :func:`estimate_runtime`). The nodes are built, not sized by a formula: the payloads are
    the parameter values a local run actually produced (``executor_output.json`` files under
    the run's kfp.local pipeline root), or, without a run, :data:`MEASURED_PAYLOADS`.
``report(spec, platform, run_root=None, limit=1_500_000)``
    Both, with their share of the limit and a one-line summary.

Which limit bites first: Argo's controller measures the whole object as JSON; above
``MAX_WORKFLOW_SIZE`` (1 MiB unless the cluster sets it) it replaces ``status.nodes`` by
``status.compressedNodes`` (gzip + base64), and if that is still above 1 MiB the workflow
errors ("workflow is longer than maximum allowed size"; offloading to a database only with
Argo persistence, which KFP's manifests do not configure). So the uncompressed size is the
object's real content, and ``stored_bytes`` (estimated by gzipping the built nodes) is what
must stay under 1 MiB, and under etcd's limit.

Counted besides the nodes of a clean run: failed attempts (of the tasks with a retry policy,
``FAILURE_SHARE``, one in 20, fail once; each retry adds an executor DAG attempt and a launcher
pod with the same inputs) and ``status.taskResultsCompletionStatus`` (one entry per pod node,
outside the gzipped nodes; Argo 3.6, which KFP 2.14 ships).
Not modelled: ``metadata.managedFields``; cache hits (a cached task's launcher is a skipped
node: smaller); Argo's own retries of driver pods on node errors; exit handlers run as plain
tasks; node ids, times and resource figures are realistic placeholders, so the gzip estimate
is somewhat optimistic.

Refit (prints the coefficients and the errors, all pairs and a held-out split)::

    python -m saemerge.pipeline.workflow_size --refit /path/to/kubeflow/pipelines
    python -m saemerge.pipeline.workflow_size --measure .saemerge/runs/<run-id>   # new payloads
    python -m saemerge.pipeline.workflow_size pipeline/sae_pipeline.yaml          # a report

The repository path may be a checkout or a bare clone (read with ``git show HEAD:...``); the
test data (``test_data/sdk_compiled_pipelines`` and ``test_data/compiled-workflows``) is not
shipped here.

The package's modules: ``limits`` (modelled commits, size limits, the compiled-size fit),
``gojson`` (JSON bytes as Go writes them), ``compiler`` (the compiled Workflow), ``payloads``
(a run's parameter values), ``runtime`` (the Workflow at the end of a run), ``report`` (what
``saemerge compile`` prints) and ``refit``; ``python -m saemerge.pipeline.workflow_size`` is
its command line.
"""

from saemerge.pipeline.workflow_size.compiler import Compiled, compile_replay, compiled_features, estimate_compiled
from saemerge.pipeline.workflow_size.gojson import glen, gojson
from saemerge.pipeline.workflow_size.limits import (
    ARGO_COMMIT,
    ARGO_COMPRESS_ABOVE,
    BACKEND_COMMIT,
    COMPILED_COEFFICIENTS,
    COMPILED_FIT,
    ETCD_LIMIT,
)
from saemerge.pipeline.workflow_size.payloads import MEASURED_FROM, MEASURED_PAYLOADS, measure_payloads
from saemerge.pipeline.workflow_size.refit import refit, test_data_pairs
from saemerge.pipeline.workflow_size.report import report
from saemerge.pipeline.workflow_size.runtime import FAILURE_SHARE, estimate_runtime, task_results_bytes

DESCRIPTION = "How big the Argo Workflow the Kubeflow Pipelines v2 backend makes of a pipeline gets."

__all__ = [
    "ARGO_COMMIT",
    "ARGO_COMPRESS_ABOVE",
    "BACKEND_COMMIT",
    "COMPILED_COEFFICIENTS",
    "COMPILED_FIT",
    "DESCRIPTION",
    "ETCD_LIMIT",
    "FAILURE_SHARE",
    "MEASURED_FROM",
    "MEASURED_PAYLOADS",
    "Compiled",
    "compile_replay",
    "compiled_features",
    "estimate_compiled",
    "estimate_runtime",
    "glen",
    "gojson",
    "measure_payloads",
    "refit",
    "report",
    "task_results_bytes",
    "test_data_pairs",
]
