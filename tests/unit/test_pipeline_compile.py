"""The compiled pipeline: golden YAML, 12 generations, GPU and images, the S3 secret on every S3 step,
resources per kind of step, the cache volume and its environment, GPU merges."""

import json
import os
import re

import pytest
import yaml

from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import GOLDEN, code_stamp, compile_pipeline
from tests.support.s3secret import assert_s3_secret_mounted, secret_names

GPU_STEPS = ("evaluate", "final-evaluate")
MERGE_STEPS = ("prune", "pair-and-merge")


def _strip_version(text: str) -> str:
    """Without the kfp version and the code stamp (which follows every change of the step code)."""
    from saemerge.pipeline.compile import mask_code_stamp

    return mask_code_stamp(re.sub(r"(?m)^sdkVersion: .*$", "", text))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "sae_pipeline.yaml"
    stats = compile_pipeline(out, CompileOptions())
    spec, platform = yaml.safe_load_all(out.read_text())
    return out, stats, spec, platform


def _base(executor: str) -> str:
    """exec-evaluate-2-11 -> evaluate; exec-final-evaluate -> final-evaluate."""
    return re.sub(r"(-\d+)+$", "", executor.removeprefix("exec-"))


def test_golden_yaml_matches(compiled):
    out, *_ = compiled
    assert GOLDEN.exists(), "run `make golden` to write pipeline/sae_pipeline.yaml"
    assert _strip_version(out.read_text()) == _strip_version(GOLDEN.read_text()), (
        "the compiled pipeline differs from the golden copy; if the change is intended, run `make golden`"
    )


def test_twelve_generations_unrolled(compiled):
    _, stats, spec, _ = compiled
    gens = [
        t for t in spec["root"]["dag"]["tasks"].values() if t["componentRef"]["name"].startswith("comp-sae-generation")
    ]
    assert len(gens) == 12 == stats["generations"]
    names = sorted(t["taskInfo"]["name"] for t in gens)
    assert names == sorted(f"generation {t:02d}" for t in range(12))
    assert stats["bytes"] < 1_500_000


def test_evaluate_runs_on_gpu_image_others_on_cpu_image(compiled):
    _, _, spec, _ = compiled
    opts = CompileOptions()
    seen = set()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        base = _base(name)
        seen.add(base)
        if base in GPU_STEPS:
            assert container["image"] == opts.gpu_image, name
            acc = container["resources"]["accelerator"]
            assert acc["resourceType"] == "nvidia.com/gpu" and acc["resourceCount"] == "1", name
        else:
            assert container["image"] == opts.cpu_image, name
            # the only accelerator of a CPU step is its disk reservation (resources.reserve_disk)
            acc = container["resources"]["accelerator"]
            assert acc["resourceType"] == "ephemeral-storage", name
    assert {"evaluate", "final-evaluate", "prune", "pair-and-merge", "archive-update", "report"} <= seen


def test_s3_secret_is_wired_into_every_step_that_touches_s3(compiled):
    _, _, spec, platform = compiled
    platform_execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in spec["deploymentSpec"]["executors"]:  # every step reads the run (run.json) or writes to it
        assert_s3_secret_mounted(platform_execs[name])


def test_steps_carry_no_alignment_spaces_or_unused_kfp_imports(compiled):
    """Each byte of a step's command is written into the Workflow per task and copy
    (pipeline/compile.py _trimmed); the launch keeps its words, which the warm runner matches."""
    from saemerge.pipeline.local_warm import EXECUTOR_LAUNCH

    _, _, spec, _ = compiled
    for name, executor in spec["deploymentSpec"]["executors"].items():
        sh, flag, script, source = executor["container"]["command"]
        assert (sh, flag) == ("sh", "-ec") and EXECUTOR_LAUNCH.search(script), name
        assert "  " not in script and "\n\n" not in script, name
        assert source.startswith("\nfrom kfp.dsl import *\nfrom typing import *\n"), name
        assert "import kfp\n" not in source and "from kfp import dsl" not in source, name


def test_a_secret_named_like_the_cache_volume_is_refused():
    with pytest.raises(ValueError, match="--s3-secret saemerge-cache: that name is the cache volume's"):
        CompileOptions(s3_secret="saemerge-cache")


def test_compile_options_change_images_and_secret(tmp_path):
    opts = CompileOptions(
        steps=2, cpu_image="reg/cpu:1", gpu_image="reg/gpu:1", s3_secret="other", gpu_resource="amd.com/gpu"
    )
    out = tmp_path / "p.yaml"
    stats = compile_pipeline(out, opts)
    spec, platform = yaml.safe_load_all(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"reg/cpu:1", "reg/gpu:1"}
    assert stats["generations"] == 2
    assert secret_names(platform) == {"other"}
    assert "amd.com/gpu" in out.read_text()


def test_gpu_pods_are_labelled_and_tolerate_the_gpu_taint(compiled, tmp_path):
    _, _, spec, platform = compiled
    platform_execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in spec["deploymentSpec"]["executors"]:
        conf = platform_execs.get(name, {})
        if _base(name) in GPU_STEPS:
            assert conf["podMetadata"]["labels"] == {"saemerge.io/accelerator": "gpu"}
            assert conf["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        else:
            assert "tolerations" not in conf and "labels" not in conf.get("podMetadata", {})
    out = tmp_path / "sel.yaml"
    compile_pipeline(out, CompileOptions(steps=1, gpu_node_selector=(("gpu-type", "h100"),)))
    _, plat = yaml.safe_load_all(out.read_text())
    selectors = [
        e["nodeSelector"]
        for e in plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
        if "nodeSelector" in e
    ]
    assert selectors and all(s["labels"] == {"gpu-type": "h100"} for s in selectors)


def _kind(executor: str) -> str:
    base = _base(executor)
    return "evaluate" if base in GPU_STEPS else "merge" if base in MERGE_STEPS else "small"


def test_every_step_requests_cpu_and_memory_sized_by_kind(compiled):
    _, _, spec, _ = compiled
    opts = CompileOptions()
    assert opts.model_size == "7b"
    kinds = set()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        kind = _kind(name)
        kinds.add(kind)
        want = opts.step_resources(kind)
        res = executor["container"]["resources"]
        assert res["resourceCpuRequest"] == want.cpu, name
        assert res["resourceMemoryRequest"] == want.memory and res["resourceMemoryLimit"] == want.memory_limit, name
        assert "resourceCpuLimit" not in res  # a CPU limit only throttles
    assert kinds == {"small", "merge", "evaluate"}
    # the sizing rule at 7B (B = 14e9 bytes): merge 2Gi + B / 2Gi + 2B, evaluate 4Gi + B / 4Gi + 2B
    assert (opts.step_resources("merge").memory, opts.step_resources("merge").memory_limit) == ("16Gi", "29Gi")
    assert (opts.step_resources("evaluate").memory, opts.step_resources("evaluate").cpu) == ("18Gi", "4")
    assert opts.step_resources("small").memory == "1Gi"


def test_the_cache_volume_is_mounted_with_its_environment(compiled):
    _, _, spec, platform = compiled
    opts = CompileOptions()
    platform_execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in spec["deploymentSpec"]["executors"]:
        conf, want = platform_execs[name], opts.step_resources(_kind(name))
        (mount,) = conf["emptyDirMounts"]
        assert mount == {"volumeName": "saemerge-cache", "mountPath": "/saemerge-cache", "sizeLimit": want.storage}
        # env from one pod annotation (Downward API): the cluster's pods only; kfp.local ignores this config
        values = _pod_env(conf)
        assert values["SAEMERGE_CACHE"] == "/saemerge-cache" and values["SAEMERGE_GPU_MERGES"] == "false"
        if want.budget_bytes:
            assert values["SAEMERGE_CACHE_MAX_SIZE"] == str(want.budget_bytes)
            assert values["SAEMERGE_CACHE_MIN_IDLE_S"] == "0"
        # nothing reaches kfp.local's environment
        assert not [
            e
            for e in spec["deploymentSpec"]["executors"][name]["container"].get("env", [])
            if e["name"].startswith("SAEMERGE_")
        ]
    merge = opts.step_resources("merge")
    assert merge.storage == "81Gi" and merge.budget_bytes == 81 * 2**30 - 2 * 14e9


def test_cpu_steps_reserve_their_cache_volumes_disk(compiled):
    """KFP has no ephemeral-storage field; the driver copies the accelerator's type and count
    into the container's limits, so a CPU step's emptyDir cache is reserved on the node."""
    _, _, spec, _ = compiled
    opts = CompileOptions()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        acc = executor["container"]["resources"]["accelerator"]
        if _base(name) in GPU_STEPS:
            assert acc["resourceType"] == "nvidia.com/gpu", name  # the GPU keeps the one slot
            continue
        storage = opts.step_resources(_kind(name)).storage
        want = int(storage.removesuffix("Gi")) * 2**30 + 2 * 2**30  # the volume and the container's own 2 GiB
        assert acc["resourceType"] == "ephemeral-storage" and int(acc["resourceCount"]) == want, name
    merge = [e for n, e in spec["deploymentSpec"]["executors"].items() if _base(n) == "pair-and-merge"][0]
    assert int(merge["container"]["resources"]["accelerator"]["resourceCount"]) == 83 * 2**30  # 7B: 81 Gi + 2 Gi


def test_other_cache_volumes_reserve_nothing_on_the_node(tmp_path):
    for volume in ("pvc:shared", "none"):
        spec, _ = _platform_of(tmp_path, cache_volume=volume)
        for name, executor in spec["deploymentSpec"]["executors"].items():
            acc = executor["container"]["resources"].get("accelerator", {})
            assert acc.get("resourceType") != "ephemeral-storage", (volume, name)


def test_small_steps_that_touch_s3_are_retried(compiled):
    _, _, spec, _ = compiled
    dags = [spec["root"]["dag"], *[c["dag"] for c in spec["components"].values() if "dag" in c]]
    for dag in dags:
        for tname, task in dag["tasks"].items():
            comp = spec["components"][task["componentRef"]["name"]]
            if "executorLabel" not in comp:
                continue
            assert task["retryPolicy"]["maxRetryCount"] == 2, (tname, _base(comp["executorLabel"]))


def test_evaluate_steps_refuse_the_cpu_when_cuda_is_unusable(compiled):
    """Evaluate pods carry SAEMERGE_EVAL_GPU=required through their annotation (the cluster
    only: kfp.local ignores the Kubernetes config, so the local runner still scores on CPU)."""
    _, _, spec, platform = compiled
    pexecs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in spec["deploymentSpec"]["executors"]:
        env = _pod_env(pexecs[name])
        if _base(name) in GPU_STEPS:
            assert env["SAEMERGE_EVAL_GPU"] == "required", name
        else:
            assert "SAEMERGE_EVAL_GPU" not in env, name


def _pod_env(pexec: dict) -> dict:
    """The variables a step gets on a cluster: one annotation, read into SAEMERGE_POD_ENV."""
    from saemerge.components import pod_env

    fields = {e["name"]: e["fieldPath"] for e in pexec.get("fieldPathAsEnv", [])}
    if not fields:
        return {}
    assert fields == {"SAEMERGE_POD_ENV": "metadata.annotations['saemerge.io/env']"}
    return pod_env(pexec["podMetadata"]["annotations"]["saemerge.io/env"])


def test_the_pod_env_reaches_the_step_when_it_imports_its_component():
    """On a cluster the annotation's variables are set before the step's code runs (every
    compiled step imports saemerge.components.<name>); a malformed one fails the step at once."""
    import subprocess
    import sys

    from saemerge.components import format_pod_env

    code = (
        "import os, saemerge.components.prune; print(os.environ['SAEMERGE_CACHE'], os.environ['SAEMERGE_GPU_MERGES'])"
    )
    pod = format_pod_env({"SAEMERGE_GPU_MERGES": "false", "SAEMERGE_CACHE": "/saemerge-cache"})
    assert pod == "SAEMERGE_CACHE=/saemerge-cache;SAEMERGE_GPU_MERGES=false"
    env = {**os.environ, "SAEMERGE_POD_ENV": pod}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["/saemerge-cache", "false"]
    env["SAEMERGE_POD_ENV"] = "PATH=/nowhere"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "'PATH' is not NAME=value with a SAEMERGE_ name" in bad.stderr


def test_caching_off_reaches_every_task_nested_ones_included(tmp_path):
    spec, _ = _platform_of(tmp_path, caching=False)
    dags = [spec["root"]["dag"], *[c["dag"] for c in spec["components"].values() if "dag" in c]]
    tasks = [t for d in dags for t in d["tasks"].values()]
    assert len(tasks) > len(spec["root"]["dag"]["tasks"])
    assert all(t["cachingOptions"] == {"enableCache": False} for t in tasks)


@pytest.mark.parametrize(
    "image,ok",
    [
        ("registry.example/saemerge-cpu:0.1.0", True),
        ("localhost:5000/team/saemerge-cpu:dev-1", True),
        ("registry.example/saemerge-cpu@sha256:" + "0" * 64, True),
        ("registry.example/saemerge-cpu:0.1.0@sha256:" + "ab" * 32, True),
        ("registry.example/saemerge-cpu@sha256:abc", False),
        ("registry.example/saemerge-cpu@md5:" + "0" * 32, False),
        ("Registry.Example/x y", False),
    ],
)
def test_images_by_tag_or_digest(image, ok):
    if ok:
        assert CompileOptions(cpu_image=image, gpu_image=image).cpu_image == image
    else:
        with pytest.raises(ValueError, match="--cpu-image .*expected an image reference"):
            CompileOptions(cpu_image=image)


def test_images_named_by_digest_are_compiled_in(tmp_path):
    digest = "registry.example/saemerge-gpu@sha256:" + "f" * 64
    spec, _ = _platform_of(tmp_path, gpu_image=digest)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert digest in images


def test_default_images_are_named_with_how_to_build_them(capsys, tmp_path, monkeypatch):
    from saemerge.cli import main
    from saemerge.pipeline.common import DEFAULT_IMAGES, default_images_notice

    notice = default_images_notice(CompileOptions())
    assert all(image in notice for image in DEFAULT_IMAGES) and "images/build.sh" in notice
    assert default_images_notice(CompileOptions(cpu_image="r/c:1", gpu_image="r/g:1")) is None
    assert "saemerge-gpu" in default_images_notice(CompileOptions(cpu_image="r/c:1"))
    # the CLI says it on stderr, once, and compiles anyway (a warning, not a refusal)
    monkeypatch.delenv("SAEMERGE_CPU_IMAGE", raising=False)
    monkeypatch.delenv("SAEMERGE_GPU_IMAGE", raising=False)
    assert main(["compile", "--steps", "1", "--no-workflow-size", "--out", str(tmp_path / "p.yaml")]) == 0
    assert capsys.readouterr().err.count("warning: the pipeline uses the default image(s)") == 1
    # submit says it once its parameters are checked (a bad one stays one line: test_bad_parameters)
    params = ["run_uri=s3://b/runs/r", 'experts=["s3://b/m/a","s3://b/m/b"]', "base_uri=s3://b/m/base"]
    params += ["data_uri=s3://b/data"]
    assert main(["submit", "--dry-run", "--steps", "1", *[a for p in params for a in ("--param", p)]]) == 0
    assert capsys.readouterr().err.count("warning: the pipeline uses the default image(s)") == 1


def _platform_of(tmp_path, **options):
    out = tmp_path / "p.yaml"
    compile_pipeline(out, CompileOptions(steps=1, **options))
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_model_size_overrides_and_other_cache_volumes(tmp_path):
    spec, pexecs = _platform_of(
        tmp_path,
        model_size="tiny",
        resources=(("evaluate", "memory", "48Gi"), ("merge", "cpu_limit", "2"), ("small", "memory_limit", "none")),
    )
    execs = spec["deploymentSpec"]["executors"]
    assert execs["exec-evaluate"]["container"]["resources"]["resourceMemoryRequest"] == "48Gi"
    assert execs["exec-prune"]["container"]["resources"]["resourceCpuLimit"] == "2"
    assert execs["exec-prune"]["container"]["resources"]["resourceMemoryRequest"] == "3Gi"  # tiny: 2Gi + 0.2 GB
    assert "resourceMemoryLimit" not in execs["exec-report"]["container"]["resources"]
    with pytest.raises(
        ValueError, match="--cache-volume ephemeral:fast-ssd: a freshly provisioned volume is root-owned"
    ):
        CompileOptions(cache_volume="ephemeral:fast-ssd")
    _, pexecs = _platform_of(tmp_path, cache_volume="pvc:saemerge-models", resources=(("merge", "storage", "500Gi"),))
    (claim,) = pexecs["exec-prune"]["pvcMount"]
    assert claim["mountPath"] == "/saemerge-cache"
    assert "saemerge-models" in json.dumps(claim)
    assert _pod_env(pexecs["exec-prune"])["SAEMERGE_CACHE_MIN_IDLE_S"] == "600"
    _, pexecs = _platform_of(tmp_path, cache_volume="none")
    assert all("emptyDirMounts" not in e and "SAEMERGE_CACHE" not in _pod_env(e) for e in pexecs.values())


@pytest.mark.parametrize(
    "options,message",
    [
        ({"model_size": "huge"}, "--model-size 'huge'"),
        ({"resources": (("merge", "storage", "1Gi"),)}, "smaller than two models"),
        ({"cache_volume": "hostpath:/x"}, "--cache-volume 'hostpath:/x'"),
    ],
)
def test_bad_sizes_are_refused_when_the_options_are_made(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CompileOptions(**options)


def test_gpu_merges_put_prune_and_merge_on_the_gpu_image_with_a_gpu(tmp_path):
    spec, pexecs = _platform_of(tmp_path, gpu_merges=True)
    opts = CompileOptions()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        if _base(name) in MERGE_STEPS:
            assert container["image"] == opts.gpu_image
            assert container["resources"]["accelerator"]["resourceCount"] == "1"
            assert pexecs[name]["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert _pod_env(pexecs[name])["SAEMERGE_GPU_MERGES"] == "true"


def test_merge_device_cuda_is_refused_in_pods_compiled_without_gpu_merges(monkeypatch):
    from saemerge import preflight
    from saemerge.errors import SaeMergeError

    monkeypatch.setenv("SAEMERGE_GPU_MERGES", "false")
    with pytest.raises(SaeMergeError, match="compiled without --gpu-merges"):
        preflight.check_merge_device("cuda:0")
    preflight.check_merge_device("cpu")
    monkeypatch.setenv("SAEMERGE_GPU_MERGES", "true")
    preflight.check_merge_device("cuda")
    monkeypatch.delenv("SAEMERGE_GPU_MERGES")  # saemerge run --local: any device
    preflight.check_merge_device("cuda")


def _embedded_source(executor: dict) -> str:
    return next(x for x in executor["container"]["command"] if "\ndef " in x)


def test_each_step_ships_its_signature_and_one_call_into_the_image(compiled):
    """The compiled command carries no step code: its body calls saemerge.components.<name>."""
    _, _, spec, _ = compiled
    for label, executor in spec["deploymentSpec"]["executors"].items():
        args = executor["container"]["args"]
        name = args[args.index("--function_to_execute") + 1]
        body = _embedded_source(executor).split(") -> ", 1)[1].splitlines()[1:]
        assert [line for line in body if line.strip()] == [
            f'    return __import__("saemerge.components",fromlist=["run"]).run("{name}",locals(),"{code_stamp()}")'
        ], label


def test_the_compiled_step_runs_the_installed_component(compiled, recorded_run):
    """Executing the compiled source of schedule_step calls the real step (no kfp runtime needed):
    s_t from the run's recorded schedule, and the generation's pairs as handoff URIs."""
    from saemerge.core.schedule import cyclic_schedule
    from saemerge.steps import handoff

    _, _, spec, _ = compiled
    run = recorded_run(steps=12, s_min=0.2, s_max=0.8, t0=4, t_mult=2)
    archive = [
        {"id": f"m-{i}", "content_hash": f"{i:02d}" * 32, "uri": f"/m/{i}", "sparsity": 0.1, "score": s, "fitness": s}
        for i, s in enumerate((0.1, 0.2, 0.3, 0.4))
    ]
    namespace: dict = {}
    exec(_embedded_source(spec["deploymentSpec"]["executors"]["exec-schedule-step"]), namespace)  # noqa: S102
    pairs = namespace["schedule_step"](run_uri=run, generation=5, archive=[handoff.save(run, 5, "archive", archive)])
    assert len(pairs) == 2 and all("/gen-05/handoff/pair-" in uri for uri in pairs)
    s_t = cyclic_schedule(steps=12, s_min=0.2, s_max=0.8, t0=4, t_mult=2, reverse=False)[5]
    assert [handoff.load_one(uri)["s_t"] for uri in pairs] == [s_t, s_t]


def test_a_step_outside_components_or_with_another_signature_fails_the_compile():
    from saemerge.pipeline.compile import delegate_steps

    header = "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"

    def spec(source: str, name: str) -> dict:
        container = {"command": ["sh", "-ec", "...", header + source], "args": ["--function_to_execute", name]}
        return {"deploymentSpec": {"executors": {"exec-x": {"container": container}}}}

    with pytest.raises(ValueError, match=r"exec-x: every step must be saemerge.components.mystery.mystery"):
        delegate_steps(spec("def mystery(a: int) -> int:\n    return a\n", "mystery"))
    with pytest.raises(ValueError, match=r"exec-x: the compiled signature of schedule_step differs"):
        delegate_steps(spec("def schedule_step(generation: int) -> float:\n    return 0.5\n", "schedule_step"))
