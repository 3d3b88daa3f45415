"""What the model is fitted to and checked against: the modelled commits, the size limits, and the compiled-size fit."""

from __future__ import annotations

from typing import Any

# kubeflow/pipelines commit whose backend (argocompiler, driver, manifests) is modelled, and
# the argo-workflows commit whose controller (node status, retries, size limit) is modelled.
BACKEND_COMMIT = "7b70c7b95f6832772efd6fd0029a4024491a0f44"  # 2026-08-21, #13532
ARGO_COMMIT = "f016ad89eb269d282aec06dc491c29f396a38df4"  # 2026-08-21
ETCD_LIMIT = 1_500_000
ARGO_COMPRESS_ABOVE = 1024 * 1024  # workflow/packer/packer.go: MAX_WORKFLOW_SIZE default

# Fitted by `--refit` on kubeflow/pipelines@7b70c7b95f6832772efd6fd0029a4024491a0f44
# (BACKEND_COMMIT): least squares on all 147 pairs of test_data/sdk_compiled_pipelines/**/X.yaml
# and test_data/compiled-workflows/X.yaml, the target being the compiled Workflow as compact
# JSON. The byte terms come out at ~1 (the replay reproduces what the compiler copies); the
# constants are the shared templates (DAG + container drivers ~5.2 KB, one executor+impl pair
# ~2.2 KB, an importer ~1.5 KB). Worst pairs: mounted_cabundle_* (5%), compiled with
# CABUNDLE_* environment variables that add a CA volume the spec does not show.
COMPILED_COEFFICIENTS: dict[str, float] = {
    "const": 5249.6589,
    "argument_bytes": 0.9975,
    "arguments": 23.9443,
    "task_bytes": 1.0042,
    "tasks": -0.1806,
    "template_bytes": 1.1457,
    "templates": -24.1325,
    "executor_variants": 2207.1065,
    "importer_templates": 1542.9455,
    "variant_extra_bytes": 1.4738,
    "pipeline_name_bytes": 0.7723,
}
COMPILED_FIT: dict[str, Any] = {
    "commit": "7b70c7b95f6832772efd6fd0029a4024491a0f44",
    "pairs": 147,
    "mean_rel_error": 0.00192,
    "max_rel_error": 0.05409,
    "worst": "mounted_cabundle_configmap.yaml",
    "holdout": {
        "train_pairs": 117,
        "pairs": 30,
        "mean_rel_error": 0.00293,
        "max_rel_error": 0.05147,
        "worst": "mounted_cabundle_secret.yaml",
    },
}
