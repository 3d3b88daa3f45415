"""kfp Model artifacts keep the launcher's URI and point at the checkpoint; the SAE pipeline
returns its best model; no component body rewrites an artifact's URI."""

import json
import re

import pytest
import yaml
from kfp.dsl import Model

from saemerge import runlog
from saemerge.runlog import RunLayout
from saemerge.steps.records import describe_best, describe_model

RECORD = {
    "id": "m-0123456789ab",
    "content_hash": "0123456789ab" + "c" * 52,
    "uri": "s3://runs/r1/models/0123",
    "origin": "sae",
    "sparsity": 0.31,
    "s_t": 0.3,
    "lambda_mean": 0.42,
    "parents": ["m-a", "m-b"],
    "status": "candidate",
}


def test_describe_model_keeps_the_launchers_uri_and_writes_a_pointer(tmp_path):
    launcher_uri = "s3://kfp-root/saemerge-sae/run-1/pair-and-merge/child"
    child = Model(uri=launcher_uri)
    child.set_path(str(tmp_path / "outputs" / "child"))  # where the launcher reads the file from
    describe_model(child, RECORD)
    assert child.uri == launcher_uri
    assert child.metadata["checkpoint_uri"] == RECORD["uri"]
    assert child.metadata["content_hash"] == RECORD["content_hash"]
    assert child.metadata["parents"] == "m-a,m-b" and child.metadata["lambda_mean"] == 0.42
    pointer = json.loads((tmp_path / "outputs" / "child").read_text())
    assert pointer == {"uri": RECORD["uri"], "content_hash": RECORD["content_hash"], "id": RECORD["id"]}


def test_describe_model_on_a_local_uri(tmp_path):
    child = Model(uri=str(tmp_path / "root" / "child"))  # kfp.local: the URI is a local path
    describe_model(child, RECORD)
    assert child.uri == str(tmp_path / "root" / "child")
    assert json.loads((tmp_path / "root" / "child").read_text())["uri"] == RECORD["uri"]


def test_describe_best_reads_final_best_json(tmp_path):
    run = str(tmp_path / "run")
    runlog.write_json(RunLayout(run).final("best.json"), {**RECORD, "overall_score": 0.5, "overall_fitness": 0.6})
    best = Model(uri=str(tmp_path / "root" / "best_model"))
    describe_best(best, run)
    assert best.uri == str(tmp_path / "root" / "best_model")
    assert best.metadata["checkpoint_uri"] == RECORD["uri"] and best.metadata["overall_fitness"] == 0.6


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from saemerge.pipeline.common import CompileOptions
    from saemerge.pipeline.compile import compile_pipeline

    out = tmp_path_factory.mktemp("compiled") / "sae.yaml"
    compile_pipeline(out, CompileOptions(steps=1))
    return yaml.safe_load_all(out.read_text()).__next__()


def test_the_pipeline_returns_its_best_model_as_a_model_artifact(compiled):
    root = compiled["root"]
    assert root["outputDefinitions"]["artifacts"]["best_model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert root["outputDefinitions"]["parameters"]["results"]["parameterType"] == "LIST"
    (selector,) = root["dag"]["outputs"]["artifacts"]["best_model"]["artifactSelectors"]
    assert selector["producerSubtask"] == "final-evaluate"


def test_no_component_rewrites_an_artifact_uri(compiled):
    for name, executor in compiled["deploymentSpec"]["executors"].items():
        code = "\n".join(executor["container"].get("command", []))
        assert not re.search(r"\.uri\s*=[^=]", code), name
