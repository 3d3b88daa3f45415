"""The compiled M2N2 pipeline: golden YAML, 12 unrolled generations, SAE's initial archive and
shared components, GPU evaluation, the S3 secret on every step, M2N2's parameters only."""

import re

import pytest
import yaml

from saemerge.config import PARAMS
from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import compile_pipeline
from saemerge.pipeline.searches import get_search
from tests.support.s3secret import assert_s3_secret_mounted

GPU_STEPS = ("evaluate", "final-evaluate")


def _strip_version(text: str) -> str:
    """Without the kfp version and the code stamp (which follows every change of the step code)."""
    from saemerge.pipeline.compile import mask_code_stamp

    return mask_code_stamp(re.sub(r"(?m)^sdkVersion: .*$", "", text))


def _base(executor: str) -> str:
    return re.sub(r"(-\d+)+$", "", executor.removeprefix("exec-"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "m2n2_pipeline.yaml"
    stats = compile_pipeline(out, CompileOptions(search="m2n2"))
    spec, platform = yaml.safe_load_all(out.read_text())
    return out, stats, spec, platform


def test_golden_yaml_matches(compiled):
    out, *_ = compiled
    golden = get_search("m2n2").golden
    assert golden.exists(), "write it: saemerge compile --search m2n2 --out pipeline/m2n2_pipeline.yaml"
    assert _strip_version(out.read_text()) == _strip_version(golden.read_text()), (
        "the compiled M2N2 pipeline differs from the golden copy; if intended: "
        "saemerge compile --search m2n2 --out pipeline/m2n2_pipeline.yaml"
    )


def test_twelve_generations_of_rescore_select_crossover_evaluate_update(compiled):
    """Four steps and the crossovers per generation: the archive's evaluate draws the sample."""
    _, stats, spec, _ = compiled
    root = spec["root"]["dag"]["tasks"]
    gens = [t for t in root.values() if t["componentRef"]["name"].startswith("comp-m2n2-generation")]
    assert len(gens) == 12 == stats["generations"]
    assert sorted(t["taskInfo"]["name"] for t in gens) == [f"generation {t:02d}" for t in range(12)]
    assert stats["bytes"] < 1_500_000
    body = spec["components"][gens[0]["componentRef"]["name"]]["dag"]["tasks"]
    names = sorted(t["taskInfo"]["name"] for t in body.values())
    assert names == sorted(
        [
            "evaluate archive",
            "select parents",
            "for-loop-1",
            "evaluate children",
            "archive update",
        ]
    )
    loop = next(t for t in body.values() if t["taskInfo"]["name"] == "for-loop-1")
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert [t["taskInfo"]["name"] for t in inner.values()] == ["crossover"]


def test_initial_archive_is_built_by_sae_components(compiled):
    _, _, spec, _ = compiled
    root = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    assert {"init population", "evaluate initial population", "initial archive", "final evaluate", "report"} <= set(
        root
    )
    assert root["initial archive"]["componentRef"]["name"].startswith("comp-archive-update")
    gen_minus_one = root["initial archive"]["inputs"]["parameters"]["generation"]["runtimeValue"]["constant"]
    assert gen_minus_one == -1
    executors = {_base(n) for n in spec["deploymentSpec"]["executors"]}
    assert executors == {
        "m2n2-init",
        "prune",
        "evaluate",
        "archive-update",
        "m2n2-select",
        "m2n2-crossover",
        "m2n2-update",
        "final-evaluate",
        "report",
    }


def test_gpu_only_for_evaluation_and_s3_secret_everywhere(compiled):
    _, _, spec, platform = compiled
    opts = CompileOptions(search="m2n2")
    pexec = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        if _base(name) in GPU_STEPS:
            assert container["image"] == opts.gpu_image
            assert container["resources"]["accelerator"]["resourceCount"] == "1"
        else:
            assert (
                container["image"] == opts.cpu_image
                and container["resources"]["accelerator"]["resourceType"] == "ephemeral-storage"
            )  # no GPU: its disk
        assert_s3_secret_mounted(pexec[name])


def test_parameters_are_m2n2s_rows_of_the_table(compiled):
    _, _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {name for name, p in PARAMS.items() if p.takes("m2n2")}
    assert params["m2n2_children"]["defaultValue"] == 4 and params["archive_size"]["defaultValue"] == 8
    assert "resource-sharing" in params["m2n2_alpha"]["description"]
    assert "competition" not in params and "t0" not in params


def test_steps_option_sets_the_generations(tmp_path):
    stats = compile_pipeline(tmp_path / "p.yaml", CompileOptions(search="m2n2", steps=2))
    assert stats["generations"] == 2 and stats["search"] == "m2n2"


def test_steps_are_sized_by_kind_and_model_steps_retried(compiled):
    """Crossovers and prunes stream checkpoints (merge-sized, retried), evaluation is evaluate-sized, the rest small."""
    _, _, spec, _ = compiled
    opts = CompileOptions(search="m2n2")
    for name, executor in spec["deploymentSpec"]["executors"].items():
        base = _base(name)
        kind = "evaluate" if base in GPU_STEPS else "merge" if base in ("m2n2-crossover", "prune") else "small"
        want, res = opts.step_resources(kind), executor["container"]["resources"]
        assert res["resourceCpuRequest"] == want.cpu and res["resourceMemoryRequest"] == want.memory, name
    tasks = [t for c in spec["components"].values() for t in c.get("dag", {}).get("tasks", {}).values()]
    for task in tasks:
        if task["taskInfo"]["name"] in ("crossover", "prune variant"):
            assert task["retryPolicy"]["maxRetryCount"] == opts.retries


def test_outputs_are_the_results_and_the_best_model(compiled):
    _, _, spec, _ = compiled
    outputs = spec["root"]["outputDefinitions"]
    assert set(outputs["parameters"]) == {"results"} and set(outputs["artifacts"]) == {"best_model"}
