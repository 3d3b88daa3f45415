"""The evaluator on real tiny LLaMA checkpoints through lm-eval's HFLM (CPU)."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.cli import main
from saemerge.errors import SaeMergeError
from saemerge.evaluate.evaluator import Evaluator
from saemerge.evaluate.sampling import sample_optimisation_set
from saemerge.evaluate.taskspec import read_jsonl
from tests.support.fixtures import write_bench_data

pytestmark = pytest.mark.integration

TASKS = ["saebench_math", "saebench_multilingual"]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base and two experts whose embedding covers the tokenizer (320 rows)."""
    from tests.support.tinymodels import write_family

    return write_family(tmp_path_factory.mktemp("evalfamily"), n_experts=2, vocab_size=320)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench_data(tmp_path_factory.mktemp("evalbench"), {"train": 20, "validation": 5, "test": 10})


@pytest.fixture(scope="module")
def samples(bench, tmp_path_factory):
    return sample_optimisation_set(TASKS, 8, data=bench, seed=0, generation=0, out_dir=tmp_path_factory.mktemp("s"))


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator(TASKS, device="cpu", batch_size=8) as ev:
        yield ev


def test_scores_a_tiny_model_on_both_tasks_one_row_per_example(evaluator, family, samples):
    res = evaluator.score(family["base"], samples)
    expected = [(t, d["id"]) for t in TASKS for d in read_jsonl(samples[t])]
    assert [(r.task, r.example_id) for r in res.per_example] == expected
    assert set(res.per_task) == set(TASKS)
    assert 0.0 <= res.macro <= 1.0
    docs = {d["id"]: d for t in TASKS for d in read_jsonl(samples[t])}
    for r in res.per_example:
        if r.task == "saebench_multilingual":  # the argmax letter, within the doc's options
            assert r.answer in "ABCDEFGHIJ"[: len(docs[r.example_id]["options"])]
            assert r.correct == (r.answer == r.target)
        else:
            assert r.target == docs[r.example_id]["answer"].rsplit("#### ", 1)[1]
            assert r.correct == (r.answer == r.target)
    assert res.stats["evaluated"] == len(expected)
    # greedy and deterministic: the same checkpoint scores the same again
    assert evaluator.score(family["base"], samples).per_example == res.per_example


def test_later_checkpoints_swap_weights_into_the_loaded_model(evaluator, family, samples):
    evaluator.score(family["base"], samples, limit=2)
    loads = evaluator.backend.loads
    res = evaluator.score(family["expert1"], samples)
    assert evaluator.backend.loads == loads  # no new HFLM
    assert evaluator.backend.swaps >= 1
    model = evaluator.backend._lm.model
    live = dict(model.named_parameters())
    with CheckpointReader(family["expert1"]) as reader:
        for name in reader.names:
            assert torch.equal(live[name].detach().cpu(), reader.get(name)), name
    # the same scores as a fresh evaluator that loads expert1 directly
    with Evaluator(TASKS, device="cpu", batch_size=8) as fresh:
        assert fresh.score(family["expert1"], samples).per_example == res.per_example


def test_model_directory_without_tokenizer(evaluator, family, samples, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in family["base"].iterdir():
        if not f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, bare / f.name)
    with pytest.raises(SaeMergeError, match="bare: no tokenizer") as err:
        evaluator.score(bare, samples)
    assert "\n" not in str(err.value)


def test_embedding_smaller_than_tokenizer(family, samples, tmp_path):
    from tests.support.tinymodels import write_tokenizer

    odd = tmp_path / "odd"
    shutil.copytree(family["base"], odd)
    write_tokenizer(odd, vocab_size=400)  # more tokens than the 320 embedding rows
    with (
        Evaluator(TASKS, device="cpu") as ev,
        pytest.raises(
            SaeMergeError,
            match="vocabulary mismatch: the embedding has 320 rows but the tokenizer has 3[2-9][0-9] tokens",
        ),
    ):
        ev.score(odd, samples)


def test_generation_longer_than_the_context_is_refused(family, samples):
    with (
        Evaluator(TASKS, device="cpu", max_gen_toks=300) as ev,
        pytest.raises(
            SaeMergeError, match="max_gen_toks 300 leaves no room for the prompt in the model's 256-token context"
        ),
    ):
        ev.score(family["base"], samples)


def test_cli_scores_and_writes_parquet(family, bench, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    rc = main(
        [
            "evaluate",
            str(family["expert0"]),
            "--data",
            str(bench),
            "--size",
            "4",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "saebench_math" in printed and "saebench_multilingual" in printed and "macro average" in printed
    table = pq.read_table(out)
    assert table.num_rows == 8
    assert set(table.column("example_id").to_pylist()) <= {f"{p}-test-{i}" for p in ("math", "ml") for i in range(10)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--samples", "nope.jsonl"], "unknown task 'nope'"),
        (["--samples", "saebench_math=nope.jsonl"], "--samples nope.jsonl: no such file"),
        (["--data", "BENCH", "--split", "opt"], "--split opt needs --size"),
        (["--data", "BENCH", "--batch-size", "many"], "--batch-size many: not an integer"),
        (["--data", "BENCH", "--tasks", "saebench_mathh"], "did you mean 'saebench_math'"),
    ],
)
def test_cli_bad_flags(family, bench, capsys, argv, message):
    argv = [a.replace("BENCH", str(bench)) for a in argv]
    assert main(["evaluate", str(family["base"]), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_tied_embeddings_swap(samples, tmp_path):
    """LLaMA-3.2-style checkpoints store the tied LM head once; a swap must still move it."""
    from tests.support.tinymodels import llama_config, random_state_dict, write_checkpoint

    config = llama_config(vocab_size=320)
    config.tie_word_embeddings = True
    first = write_checkpoint(tmp_path / "a", random_state_dict(config, 1), config)
    second = write_checkpoint(tmp_path / "b", random_state_dict(config, 2), config, tokenizer_from=first)
    with CheckpointReader(second) as reader:
        assert "lm_head.weight" not in reader.names  # stored once, as the embedding
        embed = reader.get("model.embed_tokens.weight")
    with Evaluator(TASKS, device="cpu") as ev:
        ev.score(first, samples, limit=1)
        ev.score(second, samples, limit=1)
        assert (ev.backend.loads, ev.backend.swaps) == (1, 1)
        model = ev.backend._lm.model
        assert torch.equal(model.get_output_embeddings().weight.detach(), embed)
