"""Bench sizes, the build's input checks, the trainer's pieces (no full build here)."""

from __future__ import annotations

import itertools

import pytest
import torch

from saemerge.bench import numerics
from saemerge.bench.build import END_OF_EXAMPLE, build_bench, prepare_out_dir, training_text
from saemerge.bench.sizes import SIZES, get_size
from saemerge.bench.training import IGNORE, Example, collate, encode_pairs, lr_at, train
from saemerge.cli import main
from saemerge.errors import SaeMergeError
from saemerge.evaluate import formats


def test_sizes_and_unknown_size_suggestion():
    assert {"micro", "tiny", "small"} <= set(SIZES)
    assert get_size("tiny").name == "tiny"
    with pytest.raises(SaeMergeError, match=r"unknown bench size 'tinny'; did you mean 'tiny'"):
        get_size("tinny")


def test_cli_unknown_size_is_a_one_line_error(tmp_path, capsys):
    rc = main(["bench", "build", "--out", str(tmp_path / "b"), "--size", "smal"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "did you mean 'small'" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()  # nothing written for a bad flag


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "--seed -1"),
        ({"threads": 0}, "--threads 0"),
        ({"overrides": {"math_stepz": 3}}, "did you mean 'math_steps'"),
    ],
)
def test_build_rejects_bad_arguments_before_writing(tmp_path, kwargs, match):
    with pytest.raises(SaeMergeError, match=match):
        build_bench(tmp_path / "b", "micro", **kwargs)
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_build_rejects_cuda_without_cuda(tmp_path):
    with pytest.raises(SaeMergeError, match="--device cuda: CUDA is not available"):
        build_bench(tmp_path / "b", "micro", device="cuda")


def test_out_dir_refused_when_non_empty_and_force_replaces_only_bench_outputs(tmp_path):
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "bench.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SaeMergeError, match="not empty; pass --force"):
        prepare_out_dir(tmp_path, force=False)
    prepare_out_dir(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    prepare_out_dir(tmp_path / "new", force=False)  # absent is fine
    assert (tmp_path / "new").is_dir()
    with pytest.raises(SaeMergeError, match="not a directory"):
        prepare_out_dir(tmp_path / "notes.txt", force=True)


def test_collate_masks_prompt_and_padding():
    batch = collate([Example((5, 6, 7, 8), n_masked=2), Example((9, 10))], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 7, 8], [9, 10, IGNORE, IGNORE]]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


class _CharTokenizer:
    """Characters as ids; splits "ab" differently from "a" + "b" when asked to."""

    eos_token_id = 1

    def __init__(self, merge_ab: bool = False):
        self.merge_ab = merge_ab

    def __call__(self, texts, add_special_tokens=False):
        out = []
        for t in texts:
            ids = [ord(c) % 50 + 2 for c in t]
            if self.merge_ab and ":x" in t:
                ids = ids[: t.index(":x")] + [99] + ids[t.index(":x") + 2 :]
            out.append(ids)
        return {"input_ids": out}


def test_encode_pairs_masks_the_prompt_and_refuses_merged_boundaries():
    (ex,) = encode_pairs(_CharTokenizer(), ["Q:"], ["x"], max_len=16)
    assert ex.n_masked == 2 and ex.ids[-1] == 1 and len(ex.ids) == 4
    with pytest.raises(ValueError, match="not a prefix"):
        encode_pairs(_CharTokenizer(merge_ab=True), ["Q:"], ["x"], max_len=16)


def test_train_lowers_the_loss_on_a_repetitive_text():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(cfg)
    examples = [Example(tuple([3, 4, 5, 6] * 4), n_masked=1) for _ in range(8)]
    losses = train(model, examples, steps=30, batch_size=4, lr=1e-2, warmup=3, seed=0, pad_id=0)
    assert len(losses) == 30 and losses[-1] < losses[0] / 3
    assert not model.training


def test_anchor_decay_keeps_fine_tuned_weights_near_their_start():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    start = LlamaForCausalLM(cfg).state_dict()
    examples = [Example(tuple([3, 4, 5, 6] * 4), n_masked=1) for _ in range(8)]
    drift = {}
    for anchor in (0.0, 50.0):
        model = LlamaForCausalLM(cfg)
        model.load_state_dict(start)
        train(
            model,
            examples,
            steps=30,
            batch_size=4,
            lr=1e-2,
            warmup=3,
            seed=0,
            pad_id=0,
            weight_decay=0.0,
            anchor_decay=anchor,
        )
        drift[anchor] = sum(float((v - start[k]).norm() ** 2) for k, v in model.state_dict().items()) ** 0.5
    assert 0 < drift[50.0] < drift[0.0] / 2


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def _loss_at(model, start, scale, examples):
    """Loss of ``start + scale * (model - start)`` on ``examples``."""
    probe = _tiny_llama()
    probe.load_state_dict({k: start[k] + scale * (v - start[k]) for k, v in model.state_dict().items()})
    with torch.no_grad():
        return float(probe(**collate(examples, 0)).loss)


def test_scale_cycle_trains_the_skill_to_hold_at_half_the_task_vector():
    examples = [Example(tuple([3, 4, 5, 6, 7, 8] * 3), n_masked=1) for _ in range(8)]
    start = _tiny_llama().state_dict()
    trained = {}
    for cycle in ((), (1.0,), (1.0, 0.5)):
        model = _tiny_llama()
        train(
            model,
            examples,
            steps=100,
            batch_size=4,
            lr=1e-2,
            warmup=3,
            seed=0,
            pad_id=0,
            weight_decay=0.0,
            scale_cycle=cycle,
        )
        trained[cycle] = model
    # a cycle of only 1.0 is plain training, bit for bit
    plain, ones = trained[()].state_dict(), trained[(1.0,)].state_dict()
    assert all(torch.equal(plain[k], ones[k]) for k in plain)
    # at half the task vector, the cycled fine-tune keeps more of what it learned
    half_plain = _loss_at(trained[()], start, 0.5, examples)
    half_cycled = _loss_at(trained[(1.0, 0.5)], start, 0.5, examples)
    assert half_cycled < 0.5 * half_plain  # measured: 0.18 vs 0.45
    # and the weights it ends with are the full ones (each scaled step restores them)
    assert _loss_at(trained[(1.0, 0.5)], start, 1.0, examples) < 0.01  # from 3.4


def test_scale_cycle_refuses_non_positive_scales():
    with pytest.raises(ValueError, match="scale_cycle"):
        train(
            _tiny_llama(),
            [Example((3, 4, 5))],
            steps=1,
            batch_size=1,
            lr=1e-3,
            warmup=1,
            seed=0,
            pad_id=0,
            scale_cycle=(1.0, 0.0),
        )


def test_training_text_ends_where_generation_stops():
    text = training_text(formats.math_prompt("q"), formats.math_target("#### 7"))
    assert text == "Question: q\nAnswer: #### 7\n\n"
    assert END_OF_EXAMPLE in formats.STOP_SEQUENCES


def test_base_corpus_answers_no_task_item_and_frames_stories_as_a_textbook():
    from saemerge.bench.build import base_texts
    from saemerge.bench.mathdata import iter_drills, iter_problems
    from saemerge.bench.mcdata import make_items

    problems = list(itertools.islice(iter_problems(0), 5))
    drills = list(itertools.islice(iter_drills(0), 5))
    mc = make_items(0, ["en"], n_relations=1, n_subjects=2, pretrain_relations=1)
    texts = base_texts(problems, drills, mc["pretrain"], seed=0)
    assert len(texts) == 5 + 5 + len(mc["pretrain"])
    assert texts == base_texts(problems, drills, mc["pretrain"], seed=0)  # seeded order
    stories = [t for t in texts if t.startswith("Problem: ")]
    assert len(stories) == 5 and not any("####" in t for t in stories)
    exam = [t for t in texts if t.startswith("Question: ")]
    assert all(t.endswith(END_OF_EXAMPLE) for t in texts)
    assert sum("\n#### " in t for t in exam) == 5 and sum("\nOptions:\n" in t for t in exam) == len(mc["pretrain"])
    task_questions = {x["question"] for split in ("train", "test") for x in mc[split]}
    assert not any(q in t for q in task_questions for t in texts)


def test_pinned_build_environment(monkeypatch):
    monkeypatch.setattr(numerics, "_has_avx2", lambda: True)
    env = numerics.pinned_env(3)
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    for key in env:
        monkeypatch.delenv(key, raising=False)
    assert not numerics.in_pinned_process(3)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert numerics.in_pinned_process(3) and not numerics.in_pinned_process(2)
    monkeypatch.setattr(numerics, "_has_avx2", lambda: False)  # e.g. ARM: nothing to pin but the threads
    assert set(numerics.pinned_env(1)) == {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}


def test_build_threads_are_the_free_cores_up_to_two(monkeypatch):
    monkeypatch.setattr(numerics, "usable_cores", lambda: 4)
    for busy, threads in ((0.2, 2), (1.2, 2), (2.6, 1), (6.0, 1)):
        monkeypatch.setattr(numerics, "busy_cores", lambda interval=0.5, busy=busy: busy)
        assert numerics.build_threads() == threads, busy


def test_the_plain_size_is_tiny_with_plainly_fine_tuned_experts():
    from saemerge.bench.sizes import EXPERT_FIELDS, base_fields

    plain, tiny = get_size("plain"), get_size("tiny")
    assert plain.base_of == "tiny"
    assert base_fields(plain) == base_fields(tiny)  # same data, tokenizer and base
    assert plain.expert_anchor == 0.0 and plain.expert_scale_cycle == ()
    assert (plain.math_steps, plain.math_lr, plain.ml_steps, plain.ml_lr) == (600, 1e-3, 600, 2e-3)
    assert set(base_fields(tiny)) | EXPERT_FIELDS == set(tiny.to_dict())
    # a bench.json config (JSON: tuples as lists) compares equal to the size it came from
    import json

    assert base_fields(json.loads(json.dumps(tiny.to_dict()))) == base_fields(tiny)
    assert base_fields(get_size("micro")) != base_fields(tiny)


def test_a_plain_build_without_a_cached_tiny_build_pretrains_its_own_base(tmp_path):
    from saemerge.bench.build import _cached_base

    spec = get_size("plain")
    assert _cached_base(tmp_path / "plain-seed0", spec, 0) is None  # no tiny-seed0 beside it
    (tmp_path / "tiny-seed0" / "models" / "base").mkdir(parents=True)
    (tmp_path / "tiny-seed0" / "bench.json").write_text('{"version": 1}')  # an older build's
    assert _cached_base(tmp_path / "plain-seed0", spec, 0) is None
    assert _cached_base(tmp_path / "x", get_size("tiny"), 0) is None  # tiny has no base_of


def test_a_plain_build_finds_a_finished_tiny_build_of_its_seed_beside_it(tmp_path):
    import json

    from saemerge.bench.build import BENCH_VERSION, _cached_base

    tiny = tmp_path / "tiny-seed1"
    (tiny / "models" / "base").mkdir(parents=True)
    bench = {"version": BENCH_VERSION, "seed": 1, "config": get_size("tiny").to_dict()}
    (tiny / "bench.json").write_text(json.dumps(bench))
    assert _cached_base(tmp_path / "plain-seed1", get_size("plain"), 1) == tiny.resolve()
    assert _cached_base(tmp_path / "plain-seed0", get_size("plain"), 0) is None  # other seed: tiny-seed0 absent
