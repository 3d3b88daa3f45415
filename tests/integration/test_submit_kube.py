"""`saemerge submit` with a kube context, against the stand-in KFP server and a stand-in Kubernetes
API: the backend's version from its images where healthz cannot say (releases before 2.16), or
as the user asserts it; a missing S3 secret refused and GPU-less nodes warned of before
anything is sent; --wait naming a pod that waits to be scheduled, with its reason."""

import datetime as dt

import pytest

from saemerge.pipeline import submit as submit_mod
from tests.integration.kfp_fake_server import API, FakeKfp
from tests.integration.kube_fake_server import FakeKube
from tests.integration.test_submit import REQUIRED, isolated_kfp_context, submit  # noqa: F401 -- the fixture

pytestmark = pytest.mark.integration

IMAGES = "ghcr.io/kubeflow/kfp-{}:{}"


def _images(api: str, driver: str | None = None) -> dict:
    found = {"api-server": IMAGES.format("api-server", api), "launcher": IMAGES.format("launcher", api)}
    found["driver"] = IMAGES.format("driver", driver or api)
    return found


@pytest.fixture
def kube_context(tmp_path, monkeypatch):
    def use(kube: FakeKube) -> FakeKube:
        monkeypatch.setenv("KUBECONFIG", kube.kubeconfig(tmp_path))
        return kube

    return use


def _error(err: str) -> str:
    (line,) = [x for x in err.splitlines() if x.startswith("saemerge: error:")]
    return line


@pytest.mark.parametrize("found", ["2.14.0", "2.15.0", "2.17.0"])
def test_unknown_healthz_the_version_comes_from_the_backends_images(kube_context, capsys, found):
    with FakeKfp(tag_name="unknown") as kfp, kube_context(FakeKube(images=_images(found), gpu_nodes=1)) as kube:
        assert submit("--host", kfp.url, *REQUIRED) == 0
    out, err = capsys.readouterr()
    assert "warning: KFP" not in out and kfp.calls("POST", f"{API}/runs")
    assert "/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline" in kube.requests


def test_an_old_driver_is_refused_by_its_image_tag_before_anything_is_sent(kube_context, capsys):
    with (
        FakeKfp(tag_name="unknown") as kfp,
        kube_context(FakeKube(images=_images("2.14.0", driver="2.5.0"), gpu_nodes=1)),
    ):
        assert submit("--host", kfp.url, *REQUIRED) == 5
    line = _error(capsys.readouterr().err)
    assert f"KFP at {kfp.url} is version 2.5.0 (the driver image ghcr.io/kubeflow/kfp-driver:2.5.0)" in line
    assert "needs KFP 2.14 or newer for dsl.Collected" in line
    assert not [r for r in kfp.requests if r.method == "POST"]


def test_healthz_that_knows_is_believed_without_reading_the_images(kube_context, capsys):
    with FakeKfp(tag_name="2.16.1") as kfp, kube_context(FakeKube(images=_images("2.5.0"), gpu_nodes=1)) as kube:
        assert submit("--host", kfp.url, *REQUIRED) == 0
    assert not [p for p in kube.requests if "deployments" in p]


@pytest.mark.parametrize(
    ("flag", "rc", "said"),
    [
        ("2.15", 0, None),
        ("2.13.1", 5, "is version 2.13.1 (--kfp-version); the pipeline needs KFP 2.14 or newer"),
        ("banana", 2, "--kfp-version 'banana': expected a version such as 2.14 or 2.15.0"),
    ],
)
def test_without_a_kube_context_the_user_asserts_the_version(capsys, flag, rc, said):
    with FakeKfp(tag_name="unknown") as kfp:
        assert submit("--host", kfp.url, "--kfp-version", flag, *REQUIRED) == rc
    out, err = capsys.readouterr()
    if said:
        assert said in _error(err)
        assert not kfp.calls("POST", f"{API}/runs")
    else:
        assert "cannot be known" not in out and kfp.calls("POST", f"{API}/runs")


def test_an_unreadable_deployment_is_said_in_one_plain_line(kube_context, capsys):
    with FakeKfp(tag_name="unknown") as kfp, kube_context(FakeKube(images=None, gpu_nodes=1)):
        assert submit("--host", kfp.url, *REQUIRED) == 0
    out, _ = capsys.readouterr()
    (line,) = [x for x in out.splitlines() if "cannot be known" in x]
    assert "its ml-pipeline Deployment was not readable" in line and "--kfp-version" in line


def test_a_missing_s3_secret_is_refused_and_gpu_less_nodes_are_warned_of(kube_context, capsys):
    with FakeKfp() as kfp, kube_context(FakeKube(secrets=(), gpu_nodes=1)):
        assert submit("--host", kfp.url, *REQUIRED) == 2
    line = _error(capsys.readouterr().err)
    assert "--s3-secret saemerge-s3: no such secret in namespace kubeflow" in line and "ContainerCreating" in line
    assert not kfp.calls("POST", f"{API}/runs")

    with FakeKfp() as kfp, kube_context(FakeKube(gpu_nodes=0)):
        assert submit("--host", kfp.url, *REQUIRED) == 0
    out, _ = capsys.readouterr()
    (line,) = [x for x in out.splitlines() if "advertises" in x]
    assert line.startswith("warning: no node advertises nvidia.com/gpu, which the evaluate steps request")
    assert kfp.calls("POST", f"{API}/runs")


def test_wait_names_a_pod_that_waits_to_be_scheduled_with_its_reason(kube_context, capsys, monkeypatch):
    created = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pod = {
        "name": "sae-x-evaluate-1",
        "run_id": None,
        "task": "evaluate initial population",
        "created": created,
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    monkeypatch.setattr(submit_mod, "PENDING_REPORT_S", 180.0)
    states = ["PENDING", "RUNNING", "RUNNING", "FAILED"]
    with FakeKfp(run_states=states) as kfp, kube_context(FakeKube(gpu_nodes=1, pods=[pod])):
        assert submit("--host", kfp.url, "--wait", *REQUIRED) == 1
    out, _ = capsys.readouterr()
    lines = [x for x in out.splitlines() if "pending for" in x]
    assert lines == [
        "  task evaluate initial population: pod sae-x-evaluate-1 pending for 10 min: Unschedulable: "
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    ]
