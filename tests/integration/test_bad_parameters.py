"""A bad pipeline parameter gives the same one-line message from every edge that parses it:
`saemerge run --local --param`, `saemerge submit --dry-run`, and the init_population step."""

import inspect
import subprocess
import sys

import pytest

from saemerge.errors import SaeMergeError

pytestmark = pytest.mark.integration

CASES = [
    ("scoring=bogus", "unknown scoring 'bogus' (known: global, local)"),
    ("s_min=0.7", "s_min 0.7 is greater than s_max 0.6"),
]
REQUIRED = [
    "run_uri=s3://b/runs/r",
    'experts=["s3://b/m/math","s3://b/m/ml"]',
    "base_uri=s3://b/m/base",
    "data_uri=s3://b/data",
]


def _params(*items):
    return [arg for item in items for arg in ("--param", item)]


@pytest.mark.parametrize("param, message", CASES)
def test_run_local_refuses_before_starting_anything(tmp_path, param, message):
    workdir = tmp_path / "work"
    out = subprocess.run(
        [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), *_params(param)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == f"saemerge: error: {message}"
    assert not workdir.exists()  # no store started, no bench built, nothing written


@pytest.mark.parametrize("param, message", CASES)
def test_submit_dry_run_checks_values(param, message):
    out = subprocess.run(
        [sys.executable, "-m", "saemerge", "submit", "--dry-run", "--steps", "1", *_params(*REQUIRED, param)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == f"saemerge: error: {message}"


@pytest.mark.parametrize("param, message", CASES)
def test_init_population_step_refuses(tmp_path, param, message):
    from saemerge.components.init_population import init_population
    from saemerge.config import RunConfig

    name, value = param.split("=")
    config = RunConfig.from_params(
        {"run_uri": str(tmp_path / "run"), "experts": ["/m/math"], "base_uri": "/m/base", "data_uri": "/data"}
    ).to_json()
    args = {name: config[name] for name in inspect.signature(init_population).parameters if name in config}
    args[name] = float(value) if name == "s_min" else value
    with pytest.raises(SaeMergeError) as err:
        init_population(**args, metrics=None)
    assert str(err.value) == message
    assert not (tmp_path / "run").exists()
