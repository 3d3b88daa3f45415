"""The core verbs on tiny real LLaMA checkpoints: every output loads in transformers and generates."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from saemerge.checkpoint import CheckpointReader
from saemerge.cli import main
from saemerge.core.prune import is_prunable

pytestmark = pytest.mark.integration

BASELINES = ["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "rankmean"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_generates(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("The answer is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids.shape[1] + 4


@pytest.mark.parametrize("family", ["tiny_family", "tiny_family_sharded"])
@pytest.mark.parametrize("method", BASELINES + ["sae"])
def test_every_method_writes_a_loadable_checkpoint(request, capsys, tmp_path, family, method):
    fam = request.getfixturevalue(family)
    out = tmp_path / "merged"
    extra = ["--scores", "0.4", "0.6", "--sparsity", "0.3"] if method == "sae" else []
    code, stdout, err = run_cli(
        capsys,
        "merge",
        "--method",
        method,
        "--models",
        fam["expert0"],
        fam["expert1"],
        "--base",
        fam["base"],
        "--max-shard-size",
        "20KB" if "sharded" in family else "2GB",
        "--out",
        out,
        *extra,
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert len(summary["content_hash"]) == 64
    assert (out / "manifest.json").exists()
    assert (out / "model.safetensors.index.json").exists() == ("sharded" in family)
    card = (out / "README.md").read_text()  # a model card, as the pipeline's merges write
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == str(fam["base"]) and {"merge", "saemerge"} <= set(front["tags"])
    assert f"| content hash | `{summary['content_hash']}` |" in card and f"| method | {method} |" in card
    assert f"- experts: `{fam['expert0']}`" in card and "saemerge inspect" not in card
    assert_generates(out)
    merged = CheckpointReader(out)
    expert = CheckpointReader(fam["expert0"])
    assert [(i.name, i.shape, i.dtype) for i in merged.infos] == [(i.name, i.shape, i.dtype) for i in expert.infos]


def test_sharded_and_unsharded_inputs_give_identical_merges(capsys, tmp_path, tiny_family, tiny_family_sharded):
    hashes = []
    for fam in (tiny_family, tiny_family_sharded):
        code, out, err = run_cli(
            capsys,
            "merge",
            "--method",
            "ties",
            "--models",
            fam["expert0"],
            fam["expert1"],
            "--base",
            fam["base"],
            "--out",
            tmp_path / str(len(hashes)),
        )
        assert code == 0, err
        hashes.append(json.loads(out)["content_hash"])
    assert hashes[0] == hashes[1]


def test_sae_child_is_pruned_to_the_generation_sparsity(capsys, tmp_path, tiny_family):
    out = tmp_path / "child"
    code, stdout, err = run_cli(
        capsys,
        "merge",
        "--method",
        "sae",
        "--models",
        tiny_family["expert0"],
        tiny_family["expert1"],
        "--base",
        tiny_family["base"],
        "--scores",
        "0.2",
        "0.9",
        "--sparsity",
        "0.55",
        "--out",
        out,
    )
    assert code == 0, err
    summary = json.loads(stdout)
    # λ = (s_A + ρ_A) / (s_A + ρ_A + s_B + ρ_B), with both pruned parents at ρ ≈ 0.55
    expected = (0.2 + summary["rho_a"]) / (0.2 + summary["rho_a"] + 0.9 + summary["rho_b"])
    assert summary["lambda_mean"] == pytest.approx(expected)
    code, stdout, _ = run_cli(capsys, "sparsity", out, "--base", tiny_family["base"])
    measured = json.loads(stdout)["global"]
    assert measured == pytest.approx(0.55, abs=0.01)
    assert measured == pytest.approx(summary["rho"])


def test_prune_keeps_non_prunable_tensors_and_hits_the_sparsity(capsys, tmp_path, tiny_family):
    out = tmp_path / "pruned"
    code, stdout, err = run_cli(
        capsys, "prune", tiny_family["expert0"], "--sparsity", "0.7", "--base", tiny_family["base"], "--out", out
    )
    assert code == 0, err
    pruned, expert = (
        load_file(str(out / "model.safetensors")),
        load_file(str(tiny_family["expert0"] / "model.safetensors")),
    )
    base = load_file(str(tiny_family["base"] / "model.safetensors"))
    for name, t in pruned.items():
        if is_prunable(name, tuple(t.shape)):
            delta = t - base[name]
            kept = int((delta != 0).sum())
            assert kept <= math.ceil(0.3 * t.numel())
            # a kept entry is the expert's, a pruned one the base's: nothing else
            assert torch.all((t == expert[name]) | (t == base[name]))
        else:
            assert torch.equal(t, expert[name]), name
    assert json.loads(stdout)["sparsity"] == pytest.approx(0.7, abs=0.005)  # keep = ceil((1-s)n)
    assert_generates(out)


def test_global_granularity_and_weight_space(capsys, tmp_path, tiny_family):
    code, stdout, err = run_cli(
        capsys,
        "prune",
        tiny_family["expert0"],
        "--sparsity",
        "0.4",
        "--space",
        "weight",
        "--granularity",
        "global",
        "--out",
        tmp_path / "g",
    )
    assert code == 0, err
    code, stdout, _ = run_cli(capsys, "sparsity", tmp_path / "g", "--per-tensor")
    report = json.loads(stdout)
    assert report["space"] == "weight" and report["global"] == pytest.approx(0.4, abs=1e-3)
    per_tensor = report["tensors"].values()
    assert max(per_tensor) - min(per_tensor) > 0.01  # one model-wide threshold, not one per tensor


def test_schedule_prints_the_paper_schedule(capsys):
    code, stdout, _ = run_cli(capsys, "schedule")
    assert code == 0
    assert [round(v, 4) for v in json.loads(stdout)] == [
        0.1,
        0.225,
        0.475,
        0.1,
        0.1335,
        0.225,
        0.35,
        0.475,
        0.5665,
        0.1,
        0.1085,
        0.1335,
    ]


# -- bad input: one line naming the input, exit 2, nothing left behind ---------------------------
def _copy_with(src, dst, change):
    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def _nan(t):
    t["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")


def _drop(t):
    del t["model.layers.1.self_attn.k_proj.weight"]


def _reshape(t):
    t["model.norm.weight"] = torch.ones(48)


@pytest.mark.parametrize(
    "case, change, argv_extra, message",
    [
        ("nan", _nan, [], "tensor model.layers.0.mlp.up_proj.weight contains NaN or Inf"),
        ("missing", _drop, [], "tensor model.layers.1.self_attn.k_proj.weight is missing"),
        ("shape", _reshape, [], "tensor model.norm.weight: shape [48]"),
        ("bad_method", None, ["--method", "tie"], "unknown merge method 'tie'; did you mean 'ties'"),
    ],
)
def test_bad_merge_inputs(capsys, tmp_path, tiny_family, case, change, argv_extra, message):
    other = _copy_with(tiny_family["expert1"], tmp_path / case, change) if change else tiny_family["expert1"]
    out = tmp_path / "out"
    method = argv_extra or ["--method", "ties"]
    code, _, err = run_cli(
        capsys, "merge", *method, "--models", tiny_family["expert0"], other, "--base", tiny_family["base"], "--out", out
    )
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_bad_dtype_pickle_and_flags(capsys, tmp_path, tiny_family, tiny_family_bf16):
    out = tmp_path / "out"
    cases = [
        (
            ["merge", "--method", "linear", "--models", tiny_family["expert0"], tiny_family_bf16["expert1"]],
            "dtype bfloat16",
        ),
        (["prune", tiny_family["expert0"], "--sparsity", "1.0"], "--sparsity 1.0: sparsity must lie in [0, 1)"),
        (["prune", tiny_family["expert0"], "--sparsity", "-0.1"], "--sparsity -0.1"),
        (
            [
                "merge",
                "--method",
                "sae",
                "--models",
                tiny_family["expert0"],
                tiny_family["expert1"],
                "--scores",
                "0.5",
                "0.5",
                "--sparsity",
                "1.5",
            ],
            "--sparsity 1.5",
        ),
        (["prune", tiny_family["expert0"], "--sparsity", "0.5", "--space", "delta"], "--space delta needs --base"),
        (
            ["merge", "--method", "ties", "--models", tiny_family["expert0"], tiny_family["expert1"]],
            "--base is required",
        ),
    ]
    pickle_dir = tmp_path / "pickled"
    shutil.copytree(tiny_family["expert1"], pickle_dir)
    (pickle_dir / "model.safetensors").rename(pickle_dir / "pytorch_model.bin")
    cases.append(
        (
            ["merge", "--method", "linear", "--models", tiny_family["expert0"], pickle_dir],
            "pytorch_model.bin: pickle weights are refused",
        )
    )
    for argv, message in cases:
        code, _, err = run_cli(capsys, *argv, "--out", out)
        assert code == 2, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_schedule_flag_errors_exit_nonzero_in_a_real_process():
    proc = subprocess.run(
        [sys.executable, "-m", "saemerge", "schedule", "--s-min", "0.7", "--s-max", "0.6"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "--s-min 0.7" in proc.stderr and "--s-max 0.6" in proc.stderr


@pytest.mark.gpu
def test_cuda_matches_cpu(capsys, tmp_path, tiny_family):
    hashes = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        code, _, err = run_cli(
            capsys,
            "merge",
            "--method",
            "sae",
            "--models",
            tiny_family["expert0"],
            tiny_family["expert1"],
            "--base",
            tiny_family["base"],
            "--scores",
            "0.3",
            "0.6",
            "--sparsity",
            "0.4",
            "--device",
            device,
            "--out",
            out,
        )
        assert code == 0, err
        hashes[device] = load_file(str(out / "model.safetensors"))
    for name, t in hashes["cpu"].items():
        torch.testing.assert_close(hashes["cuda"][name], t, rtol=1e-5, atol=1e-6)


def test_core_verbs_read_and_write_s3(capsys, s3_prefix, tmp_path, tiny_family_sharded):
    """prune and merge with s3:// inputs and outputs on the embedded store; outputs carry manifests."""
    from saemerge import storage

    uris = {}
    for name in ("base", "expert0", "expert1"):
        uris[name] = f"{s3_prefix}/in/{name}"
        with storage.local_output(uris[name]) as out:
            for f in tiny_family_sharded[name].iterdir():
                shutil.copy2(f, out / f.name)
    pruned, merged = f"{s3_prefix}/out/pruned", f"{s3_prefix}/out/sae"
    code, stdout, err = run_cli(
        capsys,
        "prune",
        uris["expert0"],
        "--sparsity",
        "0.5",
        "--base",
        uris["base"],
        "--max-shard-size",
        "20KB",
        "--out",
        pruned,
    )
    assert code == 0, err
    code, stdout, err = run_cli(
        capsys,
        "merge",
        "--method",
        "sae",
        "--models",
        pruned,
        uris["expert1"],
        "--base",
        uris["base"],
        "--scores",
        "0.5",
        "0.5",
        "--sparsity",
        "0.2",
        "--out",
        merged,
    )
    assert code == 0, err
    digest = json.loads(stdout)["content_hash"]
    assert storage.read_manifest(merged)["content_hash"] == digest
    with storage.local_input(merged) as local:
        assert_generates(local)
    code, stdout, _ = run_cli(capsys, "hash", merged)
    assert stdout.strip() == digest
    code, _, err = run_cli(capsys, "prune", f"{s3_prefix}/nothing-here", "--sparsity", "0.5", "--out", f"{s3_prefix}/x")
    assert code == 2 and "nothing-here" in err
    assert not storage.exists(f"{s3_prefix}/x")


def test_attribute_explains_a_weight_average_and_a_pruned_expert(capsys, tmp_path, tiny_family):
    fam = tiny_family
    avg = tmp_path / "avg"
    code, _, err = run_cli(
        capsys, "merge", "--method", "linear", "--models", fam["expert0"], fam["expert1"], "--out", avg
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "attribute", avg, "--base", fam["base"], "--experts", fam["expert0"], fam["expert1"]
    )
    assert code == 0, err
    got = json.loads(out)
    names = [Path(fam["expert0"]).name, Path(fam["expert1"]).name]
    assert [got["coefficients"][n] for n in names] == pytest.approx([0.5, 0.5], abs=1e-5)
    assert got["residual_share"] == pytest.approx(0.0, abs=1e-3) and got["tensors"] > 0
    assert [got["top_kept"][n] for n in names] == [1.0, 1.0]  # a dense merge keeps every entry
    pruned = tmp_path / "pruned"
    assert run_cli(capsys, "prune", fam["expert0"], "--sparsity", "0.6", "--base", fam["base"], "--out", pruned)[0] == 0
    code, out, err = run_cli(capsys, "attribute", pruned, "--base", fam["base"], "--experts", fam["expert0"])
    got = json.loads(out)
    # pruning keeps each tensor's top 40 % by magnitude, so every top-10 % entry survives
    assert got["top_kept"][names[0]] == 1.0 and 0.5 < got["coefficients"][names[0]] < 1.0
    assert 0.0 < got["residual_share"] < 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--base", "BASE"], "--experts: at least one expert is needed"),
        (["--experts", "E0"], "--base: the experts' base model is needed"),
        (["--base", "BASE", "--experts", "SHAPE"], "tensor model.norm.weight: shape [48]"),
        (["--base", "NOWHERE", "--experts", "E0"], "no such directory"),
    ],
)
def test_attribute_bad_input_is_one_line(capsys, tmp_path, tiny_family, argv, message):
    other = _copy_with(tiny_family["expert1"], tmp_path / "shape", _reshape)
    where = {"BASE": tiny_family["base"], "E0": tiny_family["expert0"], "SHAPE": other, "NOWHERE": tmp_path / "nope"}
    code, out, err = run_cli(capsys, "attribute", tiny_family["expert1"], *[where.get(a, a) for a in argv])
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
