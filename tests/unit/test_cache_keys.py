"""KFP's cache key cannot see the code an image tag holds: every step's command carries a hash of
the step code, so the same pipeline compiled from changed code under the same image tags has
a different cache key in every task; and KFP's cache is off in every task by default."""

import hashlib
import json

import yaml

from saemerge.pipeline import compile as comp
from saemerge.pipeline.common import CompileOptions


def _keys(spec: dict) -> dict:
    """Each container task's cache key as the driver builds it from the compiled spec
    (``GenerateCacheKey``, backend/src/v2/cacheutils/cache.go at 2.14.0 and 2.17.0): the task's
    input values (here their sources), its output specs, the image string and command + args."""
    executors = spec["deploymentSpec"]["executors"]
    keys = {}
    for cname, component in [("root", spec["root"]), *spec["components"].items()]:
        for tname, task in component.get("dag", {}).get("tasks", {}).items():
            target = spec["components"][task["componentRef"]["name"]]
            if "executorLabel" not in target:
                continue
            container = executors[target["executorLabel"]]["container"]
            key = {
                "inputs": task.get("inputs", {}),
                "outputs": target.get("outputDefinitions", {}),
                "image": container["image"],
                "cmdArgs": [*container["command"], *container["args"]],
            }
            keys[f"{cname}/{tname}"] = (container["image"], hashlib.sha256(json.dumps(key).encode()).hexdigest())
    return keys


def _compile(tmp_path, name: str) -> dict:
    out = tmp_path / f"{name}.yaml"
    comp.compile_pipeline(out, CompileOptions(steps=2, cpu_image="reg/cpu:1", gpu_image="reg/gpu:1"))
    return next(yaml.safe_load_all(out.read_text()))


def test_changed_step_code_under_the_same_image_tags_changes_every_tasks_cache_key(tmp_path, monkeypatch):
    files = [(name, path.read_bytes()) for name, path in comp.code_files()]
    assert any(name == "saemerge.components/prune.py" for name, _ in files)
    assert any(name.startswith("saemerge/steps/") for name, _ in files)  # the library the steps call
    assert not any(name.startswith(("saemerge/pipeline/", "saemerge.components/../")) for name, _ in files)
    changed = [(n, d + b"\n# changed\n" if n == "saemerge/steps/models.py" else d) for n, d in files]
    assert comp.code_hash(changed) != comp.code_hash(files) == comp.code_stamp()

    before = _keys(_compile(tmp_path, "before"))
    monkeypatch.setattr(comp, "code_stamp", lambda: comp.code_hash(changed))
    after = _keys(_compile(tmp_path, "after"))
    assert before.keys() == after.keys() and len(before) >= 8
    for task, (image, key) in before.items():
        assert after[task][0] == image  # the same image tag ...
        assert after[task][1] != key, task  # ... and yet another key


def test_the_stamp_is_the_only_difference_and_goldens_compare_without_it(tmp_path, monkeypatch):
    comp.compile_pipeline(tmp_path / "a.yaml", CompileOptions(steps=2))
    monkeypatch.setattr(comp, "code_stamp", lambda: "0" * 12)
    comp.compile_pipeline(tmp_path / "b.yaml", CompileOptions(steps=2))
    a, b = (tmp_path / "a.yaml").read_text(), (tmp_path / "b.yaml").read_text()
    assert a != b and comp.mask_code_stamp(a) == comp.mask_code_stamp(b)


def test_kfp_cache_is_off_in_every_task_by_default(tmp_path):
    spec = _compile(tmp_path, "default")
    dags = [spec["root"]["dag"], *[c["dag"] for c in spec["components"].values() if "dag" in c]]
    tasks = [t for d in dags for t in d["tasks"].values()]
    assert len(tasks) > len(spec["root"]["dag"]["tasks"])
    assert all(t["cachingOptions"] == {"enableCache": False} for t in tasks)
