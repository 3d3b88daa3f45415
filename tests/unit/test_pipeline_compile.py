"""The compiled pipeline: golden YAML, 12 generations, GPU and images, the S3 secret on every S3 step."""

import re

import pytest
import yaml

from saemerge.pipeline.compile import GOLDEN, compile_pipeline
from saemerge.pipeline.common import S3_SECRET_KEYS, CompileOptions

GPU_STEPS = ("evaluate", "final-evaluate")
NO_S3_STEPS = ("schedule-step",)


def _strip_version(text: str) -> str:
    return re.sub(r"(?m)^sdkVersion: .*$", "", text)


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
    gens = [t for t in spec["root"]["dag"]["tasks"].values() if t["componentRef"]["name"].startswith("comp-sae-generation")]
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
            assert "accelerator" not in container.get("resources", {}), name
    assert {"evaluate", "final-evaluate", "prune", "pair-and-merge", "archive-update", "report"} <= seen


def test_s3_secret_is_wired_into_every_step_that_touches_s3(compiled):
    _, _, spec, platform = compiled
    platform_execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in spec["deploymentSpec"]["executors"]:
        if _base(name) in NO_S3_STEPS:
            assert name not in platform_execs
            continue
        (secret,) = platform_execs[name]["secretAsEnv"]
        assert secret["secretName"] == "saemerge-s3"
        assert sorted(k["envVar"] for k in secret["keyToEnv"]) == sorted(S3_SECRET_KEYS)


def test_compile_options_change_images_and_secret(tmp_path):
    opts = CompileOptions(steps=2, cpu_image="reg/cpu:1", gpu_image="reg/gpu:1", s3_secret="other", gpu_resource="amd.com/gpu")
    out = tmp_path / "p.yaml"
    stats = compile_pipeline(out, opts)
    spec, platform = yaml.safe_load_all(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"reg/cpu:1", "reg/gpu:1"}
    assert stats["generations"] == 2
    secrets = {s["secretName"] for e in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
               for s in e["secretAsEnv"]}
    assert secrets == {"other"}
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
            assert "tolerations" not in conf and "podMetadata" not in conf
    out = tmp_path / "sel.yaml"
    compile_pipeline(out, CompileOptions(steps=1, gpu_node_selector=(("gpu-type", "h100"),)))
    _, plat = yaml.safe_load_all(out.read_text())
    selectors = [e["nodeSelector"] for e in plat["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
                 if "nodeSelector" in e]
    assert selectors and all(s["labels"] == {"gpu-type": "h100"} for s in selectors)
