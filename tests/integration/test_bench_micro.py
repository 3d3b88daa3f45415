"""Micro builds of the tiny benchmark: files, splits, loadable checkpoints, reproducible bytes."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from saemerge.bench.build import BENCH_VERSION, build_bench
from saemerge.bench.reference_scorer import choice_logliks, evaluate_checkpoint, score_mc
from saemerge.bench.sizes import get_size
from saemerge.bench.splits import SPLITS, TASKS, load_split, normalise_question
from saemerge.cli import main
from saemerge.evaluate import formats

pytestmark = pytest.mark.integration

MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


@pytest.fixture(scope="module")
def micro(micro_bench):
    """The session's micro build (tests/conftest.py) and its bench.json."""
    return micro_bench, json.loads((micro_bench / "bench.json").read_text())


@pytest.fixture(scope="module")
def micro_again(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "micro"
    return out, build_bench(out, "micro", seed=0)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashed_files(root):
    """Every file of a build except bench.json (which records the build time)."""
    return {
        str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file() and p.name != "bench.json"
    }


def test_bench_json_follows_the_data_contract(micro):
    out, bench = micro
    assert bench["size"] == "micro" and bench["seed"] == 0 and bench["build_seconds"] > 0
    assert bench["version"] == BENCH_VERSION
    assert set(bench["models"]) == {"base", "math", "multilingual"}
    for acc in bench["models"].values():
        assert set(acc) == {"math", "multilingual"}
        assert all(0.0 <= a <= 1.0 for a in acc.values())
    for task in TASKS:
        for split in SPLITS:
            assert bench["tasks"][task][split] == len(load_split(out / "data", task, split)) > 0
    assert {"torch", "transformers", "tokenizers"} <= set(bench["versions"])


def test_every_model_directory_is_a_complete_checkpoint(micro):
    out, _ = micro
    for name in ("base", "math", "multilingual"):
        for f in MODEL_FILES:
            assert (out / "models" / name / f).is_file(), f"{name}/{f}"


def test_splits_are_disjoint_and_shaped_as_the_contract(micro):
    out, _ = micro
    for task, prefix in (("math", "math"), ("multilingual", "ml")):
        splits = {s: load_split(out / "data", task, s) for s in SPLITS}
        test_questions = {normalise_question(x["question"]) for x in splits["test"]}
        for split in ("train", "validation"):
            assert not test_questions & {normalise_question(x["question"]) for x in splits[split]}
        for split, items in splits.items():
            assert [x["id"] for x in items] == [f"{prefix}-{split}-{i}" for i in range(len(items))]
    spec = get_size("micro")
    math = load_split(out / "data", "math", "test")
    assert len(math) == spec.math_counts[2] + spec.math_test_extra
    for x in math:
        assert list(x) == ["id", "question", "answer", "cluster"] and formats.gold_math_answer(x["answer"])
        assert x["cluster"] == x["id"]
    ml = load_split(out / "data", "multilingual", "test")
    fields = ["id", "question", "options", "answer", "answer_index", "category", "language", "cluster"]
    assert all(list(x) == fields for x in ml)
    assert len({x["language"] for x in ml}) >= 4
    pairs = spec.ml_relations * spec.ml_subjects * len(spec.ml_languages)
    assert len(ml) == pairs * (1 + spec.ml_test_extra) and len({x["cluster"] for x in ml}) == pairs


def test_checkpoints_load_with_auto_classes_and_generate(micro):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = micro
    shapes = None
    for name in ("base", "math", "multilingual"):
        path = out / "models" / name
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
        assert model.config.model_type == "llama"
        ids = tok(formats.math_prompt("Tom has 3 apples."), return_tensors="pt")
        assert ids["input_ids"][0, 0] != tok.bos_token_id  # no BOS: the trainer never saw one
        gen = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
        assert gen.shape[1] > ids["input_ids"].shape[1]
        sd_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert shapes is None or sd_shapes == shapes  # experts share the base's architecture
        shapes = sd_shapes


def test_experts_are_fine_tuned_from_the_base(micro):
    from safetensors.torch import load_file

    out, _ = micro
    base = load_file(out / "models" / "base" / "model.safetensors")
    for name in ("math", "multilingual"):
        expert = load_file(out / "models" / name / "model.safetensors")
        assert expert.keys() == base.keys()
        assert any(not torch.equal(expert[k], base[k]) for k in base)


def test_same_seed_gives_identical_bytes(micro, micro_again):
    first, second = _hashed_files(micro[0]), _hashed_files(micro_again[0])
    assert "models/math/model.safetensors" in first and "data/math/test.jsonl" in first
    assert first == second
    assert micro[1]["models"] == micro_again[1]["models"]


def test_tokenizer_keeps_prompts_as_prefixes_and_letters_as_single_tokens(micro):
    from saemerge.bench.tokenizer import load_tokenizer

    out, _ = micro
    tok = load_tokenizer(out / "models" / "base")
    for x in load_split(out / "data", "math", "train", limit=50):
        prompt = formats.math_prompt(x["question"])
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        whole = tok(prompt + formats.math_target(x["answer"]), add_special_tokens=False)["input_ids"]
        assert whole[: len(head)] == head
    assert all(len(tok(c, add_special_tokens=False)["input_ids"]) == 1 for c in formats.mc_choices(10))
    assert [tok.decode([i]) for i in tok("12 + 34", add_special_tokens=False)["input_ids"]] == [
        "1",
        "2",
        " +",
        " 3",
        "4",
    ]


def test_mc_fast_path_matches_per_choice_scoring(micro):
    from saemerge.bench.checkpoints import load_model
    from saemerge.bench.tokenizer import load_tokenizer

    out, _ = micro
    model, tok = load_model(out / "models" / "multilingual"), load_tokenizer(out / "models" / "multilingual")
    items = load_split(out / "data", "multilingual", "test", limit=6)
    fast = score_mc(model, tok, items)
    for item, res in zip(items, fast):
        prompt = formats.mc_prompt(item["question"], item["options"])
        slow = choice_logliks(model, tok, prompt, formats.mc_choices(len(item["options"])))
        assert slow == pytest.approx(res["logliks"], abs=1e-4)


def test_evaluate_checkpoint_reproduces_bench_json(micro):
    out, bench = micro
    for name in ("math", "multilingual"):
        acc = evaluate_checkpoint(out / "models" / name, out / "data")
        assert acc == pytest.approx(bench["models"][name], abs=1e-4)


def test_cli_score_prints_accuracies(micro, capsys):
    out, bench = micro
    rc = main(["bench", "score", "--model", str(out / "models" / "base"), "--data", str(out / "data"), "--limit", "8"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"math", "multilingual"}


def test_cli_refuses_a_non_empty_out_dir(micro, capsys):
    out, _ = micro
    rc = main(["bench", "build", "--out", str(out), "--size", "micro"])
    assert rc == 2
    assert "not empty; pass --force" in capsys.readouterr().err
    assert (out / "bench.json").is_file()  # untouched


def test_cli_force_rebuilds_and_prints_phase_timings(tmp_path, capsys):
    out = tmp_path / "b"
    out.mkdir()
    (out / "bench.json").write_text("{}")
    (out / "keep.txt").write_text("user file")
    rc = main(["bench", "build", "--out", str(out), "--size", "micro", "--seed", "1", "--force"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "bench micro seed 1: built in" in printed and "math expert" in printed and "multilingual" in printed
    assert json.loads((out / "bench.json").read_text())["seed"] == 1
    assert (out / "keep.txt").read_text() == "user file"  # --force replaces only bench outputs
    from saemerge.bench.mathdata import iter_problems

    # --seed reaches the data: the test split starts with seed 1's first problem
    assert load_split(out / "data", "math", "test")[0]["question"] == next(iter_problems(1))["question"]


@pytest.mark.parametrize("opt_splits", ["train,validation", "train"])
def test_a_local_run_on_the_micro_bench_passes_preflight_with_the_defaults(micro, opt_splits):
    """`saemerge run --local --bench-size micro` without --param: the test sizes default to what
    the bench's test splits hold (the tiny bench's default, 200 and 192, is more than 32 and 144)."""
    from saemerge.pipeline.local import LocalRun
    from saemerge.preflight import check_inputs

    out, bench = micro
    config = LocalRun(run_id="r", bench_size="micro", params={"opt_splits": opt_splits}).config()
    held = {task: counts["test"] for task, counts in bench["tasks"].items() if "test" in counts}
    assert get_size("micro").test_counts == held
    assert config.test_sizes == {"saebench_math": held["math"], "saebench_multilingual": held["multilingual"]}
    models = out / "models"
    check_inputs(
        [str(models / "math"), str(models / "multilingual")],
        str(models / "base"),
        str(out / "data"),
        config.opt_sizes,
        config.test_sizes,
        config.splits,
    )
    tiny = LocalRun(run_id="r", bench_size="tiny").config()
    assert tiny.test_sizes == {"saebench_math": 200, "saebench_multilingual": 192}  # the tiny bench: unchanged
