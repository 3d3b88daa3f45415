"""The benchmark's own in-process scorer: the reference that lm-eval's scores are checked against.

The build scores every model with it (``bench.json``), and ``saemerge bench score`` runs it
on any checkpoint. Both scorers follow lm-eval's zero-shot protocol with the prompts of
:mod:`saemerge.evaluate.formats`:

- :func:`score_math`: greedy generation, cut at ``"\\n\\n"`` / ``"Question:"``, exact match
  of the ``#### N`` number (strict match).
- :func:`score_mc`: log-likelihood of each choice continuation (``" A"``, ``" B"``, ...)
  after the prompt, encoded as lm-eval does (whole text, then split at the prompt's
  length); the prediction is the argmax (metric ``acc``).

Both return one record per example; :func:`accuracy` aggregates.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saemerge.bench.splits import load_split
from saemerge.evaluate import formats


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@torch.inference_mode()
def score_math(model, tokenizer, items: list[dict], *, batch_size: int = 64, max_new_tokens: int = 64) -> list[dict]:
    """Greedy-decode every math item; returns ``{"id", "correct", "prediction", "generation"}`` each."""
    device = next(model.parameters()).device
    prompts = [formats.math_prompt(x["question"]) for x in items]
    enc = _ids(tokenizer, prompts)
    order = sorted(range(len(items)), key=lambda i: len(enc[i]))  # similar lengths, little padding
    pad = tokenizer.pad_token_id
    generations: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(enc[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # left padding, as for any batched decoder generation
            ids[r, width - len(enc[i]) :] = torch.tensor(enc[i])
            mask[r, width - len(enc[i]) :] = 1
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
        for r, i in enumerate(rows):
            generations[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
    results = []
    for i, item in enumerate(items):
        text = formats.truncate_at_stop(generations[i])
        pred = formats.extract_gsm8k_answer(text)
        gold = formats.gold_math_answer(item["answer"])
        results.append({"id": item.get("id", str(i)), "correct": pred == gold, "prediction": pred, "generation": text})
    return results


@torch.inference_mode()
def choice_logliks(model, tokenizer, context: str, choices: list[str]) -> list[float]:
    """Sum log-probability of each choice after ``context``, encoded the way lm-eval does."""
    device = next(model.parameters()).device
    ctx = _ids(tokenizer, [context])[0]
    out = []
    for whole in _ids(tokenizer, [context + c for c in choices]):
        cont = whole[len(ctx) :]
        ids = torch.tensor([ctx + cont], device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, len(ctx) - 1 : -1].float(), dim=-1)
        out.append(float(logp[torch.arange(len(cont)), torch.tensor(cont, device=device)].sum()))
    return out


@torch.inference_mode()
def score_mc(model, tokenizer, items: list[dict], *, batch_size: int = 64) -> list[dict]:
    """Score every multiple-choice item; returns ``{"id", "correct", "prediction", "logliks"}`` each.

    When each choice is one token that follows the prompt's tokens (the benchmark's
    tokenizer guarantees it), one forward pass per item gives all choices; otherwise
    each choice is scored by its own pass.
    """
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    prompts = [formats.mc_prompt(x["question"], x["options"]) for x in items]
    enc = _ids(tokenizer, prompts)
    fast: list[int] = []
    choice_ids: dict[int, list[int]] = {}
    logliks: dict[int, list[float]] = {}
    for i, (prompt, item) in enumerate(zip(prompts, items)):
        choices = formats.mc_choices(len(item["options"]))
        wholes = _ids(tokenizer, [prompt + c for c in choices])
        if all(len(w) == len(enc[i]) + 1 and w[:-1] == enc[i] for w in wholes):
            fast.append(i)
            choice_ids[i] = [w[-1] for w in wholes]
        else:
            logliks[i] = choice_logliks(model, tokenizer, prompt, choices)
    fast.sort(key=lambda i: len(enc[i]))
    for start in range(0, len(fast), batch_size):
        rows = fast[start : start + batch_size]
        width = max(len(enc[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # right padding: read the logits at each row's last token
            ids[r, : len(enc[i])] = torch.tensor(enc[i])
            mask[r, : len(enc[i])] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for r, i in enumerate(rows):
            logp = torch.log_softmax(logits[r, len(enc[i]) - 1].float(), dim=-1)
            logliks[i] = [float(logp[c]) for c in choice_ids[i]]
    results = []
    for i, item in enumerate(items):
        ll = logliks[i]
        pred = max(range(len(ll)), key=ll.__getitem__)
        results.append(
            {
                "id": item.get("id", str(i)),
                "correct": pred == item["answer_index"],
                "prediction": formats.LETTERS[pred],
                "logliks": ll,
            }
        )
    return results


def accuracy(results: list[dict]) -> float:
    """Fraction of correct records (0.0 for none)."""
    return sum(r["correct"] for r in results) / len(results) if results else 0.0


def evaluate_checkpoint(
    model_dir: Path,
    data_dir: Path,
    *,
    split: str = "test",
    limit: int | None = None,
    device: str = "cpu",
    batch_size: int = 64,
) -> dict[str, float]:
    """Accuracy of a saved checkpoint on both tasks of a bench ``data/`` directory.

    Args:
        model_dir: an HF checkpoint with its tokenizer (e.g. ``BENCH/models/math``).
        data_dir: the bench's ``data/`` directory.
        split: which split to score.
        limit: score only the first ``limit`` items of each task.

    Returns:
        ``{"math": acc, "multilingual": acc}``.
    """
    from saemerge.bench.checkpoints import load_model
    from saemerge.bench.tokenizer import load_tokenizer

    model = load_model(model_dir, device)
    tok = load_tokenizer(model_dir)
    math_items = load_split(data_dir, "math", split, limit)
    mc_items = load_split(data_dir, "multilingual", split, limit)
    return {
        "math": accuracy(score_math(model, tok, math_items, batch_size=batch_size)),
        "multilingual": accuracy(score_mc(model, tok, mc_items, batch_size=batch_size)),
    }
