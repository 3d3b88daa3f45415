"""The benchmark's tokenizer: byte-level BPE trained on the benchmark's own texts.

Pre-tokenisation is GPT-2's regex with one change: every digit is its own piece (the
first one may carry the leading space), so numbers are spelled digit by digit and the
models can learn column arithmetic. Byte-level BPE means any text encodes, including
prompts the evaluator builds from real datasets.

Special tokens: ``<pad>`` (0), ``<s>`` (1), ``</s>`` (2). No post-processor: encoding
never adds BOS/EOS, so the trainer and lm-eval see the same ids for the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS)

# GPT-2's pre-tokenizer pattern with `\p{N}+` replaced by `\p{N}`: one digit per piece.
_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: the training corpus (iterated once, in order; order matters for ties).
        vocab_size: target vocabulary size, special tokens and the 256 bytes included.
        model_max_length: the longest sequence the model takes.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(path: Path):
    """Load a saved benchmark tokenizer (local files only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
