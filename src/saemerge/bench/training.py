"""Pre-training and full fine-tuning of the benchmark's small LLaMA models.

Deliberately plain: AdamW, linear warm-up then cosine decay, gradient clipping, batches
of similar length (little padding), a seeded order. With the same seed, thread count
and device the weights come out bit-identical.

Fine-tuning can anchor the weights to where training started (decoupled L2-SP,
``anchor_decay``): each step pulls every weight towards its starting value by
``lr_t · anchor_decay · (θ − θ_start)``, the way AdamW's weight decay pulls towards 0.
Experts fine-tuned so stay near their base: small task vectors, as real LLM
fine-tunes have, which is what lets merges of them keep both skills.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """Token ids of one training text and how many leading ids carry no loss."""

    ids: tuple[int, ...]
    n_masked: int = 0


def encode_texts(tokenizer, texts: list[str], max_len: int) -> list[Example]:
    """Plain language-model examples: ``text`` + EOS, all tokens scored."""
    eos = tokenizer.eos_token_id
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [Example(tuple((ids + [eos])[:max_len])) for ids in enc]


def encode_pairs(tokenizer, prompts: list[str], completions: list[str], max_len: int) -> list[Example]:
    """Supervised examples: ``prompt + completion`` + EOS, loss on the completion only.

    The prompt's ids must be a prefix of the whole text's ids (the tokenizer splits at
    the space that starts every completion), so generation from the prompt alone
    continues exactly as in training. Raises ValueError otherwise.
    """
    eos = tokenizer.eos_token_id
    whole = tokenizer([p + c for p, c in zip(prompts, completions)], add_special_tokens=False)["input_ids"]
    heads = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    out = []
    for prompt, ids, head in zip(prompts, whole, heads):
        if ids[: len(head)] != head:
            raise ValueError(f"prompt tokens are not a prefix of the training text: {prompt[-40:]!r}")
        out.append(Example(tuple((ids + [eos])[:max_len]), len(head)))
    return out


def _batches(examples: list[Example], batch_size: int, gen: torch.Generator):
    """Endless batches: shuffled, then sorted by length within chunks of 16 batches."""
    n = len(examples)
    while True:
        order = torch.randperm(n, generator=gen).tolist()
        chunk = batch_size * 16
        batches = []
        for start in range(0, n, chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(examples[i].ids))
            batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
        for k in torch.randperm(len(batches), generator=gen).tolist():
            yield [examples[i] for i in batches[k]]


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, and labels with prompt and padding ignored."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        t = torch.tensor(e.ids)
        ids[row, : len(t)] = t
        mask[row, : len(t)] = 1
        labels[row, e.n_masked : len(t)] = t[e.n_masked :]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lr_at(step: int, steps: int, warmup: int, peak: float, floor: float = 0.1) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``floor * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model,
    examples: list[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    seed: int,
    pad_id: int,
    device: str = "cpu",
    desc: str = "train",
    weight_decay: float = 0.01,
    anchor_decay: float = 0.0,
    scale_cycle: tuple[float, ...] = (),
    hook: Callable[[int, object], None] | None = None,
    hook_every: int = 0,
) -> list[float]:
    """Train ``model`` in place for ``steps`` optimiser steps; returns the loss per step
    (with ``scale_cycle``, each at the scale that step used).

    Args:
        weight_decay: AdamW's decoupled decay towards 0 of the matrices (not of norms).
        anchor_decay: decoupled decay of every weight towards its value before training
            (L2-SP); 0 turns it off.
        scale_cycle: step ``k`` computes its loss and gradient at ``θ_start + c·(θ − θ_start)``
            with ``c = scale_cycle[k % len]`` (the update still applies to ``θ``), so the
            fine-tune's skill also holds at a fraction of its task vector, as merges use it;
            empty means ``c = 1`` throughout.
        hook: ``hook(step, model)`` runs every ``hook_every`` steps (e.g. to track
            held-out accuracy while tuning a size); the model is in eval mode during the call.
    """
    if not examples:
        raise ValueError(f"{desc}: no training examples")
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    params = list(model.parameters())
    if any(c <= 0 for c in scale_cycle):
        raise ValueError(f"{desc}: scale_cycle {scale_cycle} must hold positive scales")
    start = [p.detach().clone() for p in params] if (anchor_decay or scale_cycle) else None
    losses: list[float] = []
    batches = _batches(examples, batch_size, gen)
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=2.0)
    for step in bar:
        step_lr = lr_at(step, steps, warmup, lr)
        for group in opt.param_groups:
            group["lr"] = step_lr
        batch = {k: v.to(device) for k, v in collate(next(batches), pad_id).items()}
        scale = scale_cycle[step % len(scale_cycle)] if scale_cycle else 1.0
        loss = _loss_backward(model, batch, params, start, scale)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if anchor_decay:
            assert start is not None  # kept whenever anchor_decay is set
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.sub_(p - p0, alpha=step_lr * anchor_decay)
        losses.append(loss.item())
        if hook is not None and hook_every and (step + 1) % hook_every == 0:
            model.eval()
            hook(step + 1, model)
            model.train()
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            log.debug("%s step %d loss %.4f", desc, step, losses[-1])
    model.eval()
    log.info("%s: %d steps, loss %.3f -> %.3f", desc, steps, losses[0], sum(losses[-10:]) / len(losses[-10:]))
    return losses


def _loss_backward(model, batch, params, start, scale: float) -> torch.Tensor:
    """The loss at ``start + scale·(θ − start)``, its gradient w.r.t. θ accumulated in ``.grad``.

    For ``scale != 1`` the weights are moved to the scaled point for the forward and backward
    pass and restored after; the gradient w.r.t. θ is ``scale`` times the one there.
    """
    if scale == 1.0:
        loss = model(**batch).loss
        loss.backward()
        return loss
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        for p, p0 in zip(params, start):
            p.sub_(p0).mul_(scale).add_(p0)
    loss = model(**batch).loss
    loss.backward()
    with torch.no_grad():
        for p, keep in zip(params, saved):
            p.copy_(keep)
            if p.grad is not None:
                p.grad.mul_(scale)
    return loss
