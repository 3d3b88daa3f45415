"""Synthetic languages: deterministic word-substitution ciphers of English.

The multilingual task asks the same facts in English and in made-up languages. Each
made-up language maps every English word (template words, entity names, values) to a
pseudo-word built from its own syllable inventory, so the languages look different to
the tokenizer, while a question in any language has an exact English counterpart.

Language codes use ISO 639-2's private-use range (``qaa``-``qtz``) so that no synthetic
language claims to be a real one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# Per-language phonology: (onsets, vowels, codas). Distinct inventories give each
# language its own look and its own BPE merges.
_PHONOLOGY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "en": ("bdfgklmnprstvz", "aeiou", ("", "", "n", "r", "l", "s")),
    "qaa": ("kptzx", "aoi", ("", "k", "t")),
    "qab": ("mnlrvw", "eiuy", ("", "", "m", "n")),
    "qac": ("bgdjh", "aeou", ("", "r", "sh")),
    "qad": ("fsqcy", "iao", ("", "q", "ff")),
    "qae": ("tlnhk", "eauo", ("", "h")),
}

#: Languages in the order the benchmark sizes take them ("en" first).
LANGUAGE_CODES: tuple[str, ...] = tuple(_PHONOLOGY)

_WORD_RE = re.compile(r"[A-Za-z]+")


def pseudo_words(rng: random.Random, n: int, lang: str, taken: set[str], syllables=(2, 3)) -> list[str]:
    """``n`` distinct pseudo-words in ``lang``'s phonology, none already in ``taken``.

    ``taken`` is updated, so successive calls never return the same word twice.
    """
    onsets, vowels, codas = _PHONOLOGY[lang]
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries % 200 == 0:  # inventory nearly exhausted at this length: go longer
            syllables = tuple(s + 1 for s in syllables)
        k = rng.choice(syllables)
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(k)) + rng.choice(codas)
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


@dataclass(frozen=True)
class Language:
    """A word-substitution cipher of English; ``en`` is the identity."""

    code: str
    words: dict[str, str] = field(default_factory=dict)  # lowercase English word -> word

    def translate(self, text: str) -> str:
        """Replace every English word, keeping capitalisation, punctuation and digits."""
        if self.code == "en":
            return text

        def sub(match: re.Match[str]) -> str:
            word = match.group(0)
            out = self.words[word.lower()]
            return out.capitalize() if word[0].isupper() else out

        return _WORD_RE.sub(sub, text)


def english_words(texts: list[str]) -> list[str]:
    """The sorted set of lowercase words in ``texts`` (what a cipher must cover)."""
    return sorted({w.lower() for t in texts for w in _WORD_RE.findall(t)})


def build_languages(codes: list[str], vocabulary: list[str], seed: int) -> dict[str, Language]:
    """A cipher per language code covering every word of ``vocabulary``.

    Args:
        codes: language codes from :data:`LANGUAGE_CODES` ("en" gives the identity).
        vocabulary: lowercase English words to map (sorted, for determinism).
        seed: the benchmark seed; the same seed gives the same lexicons.
    """
    languages = {}
    for code in codes:
        if code == "en":
            languages[code] = Language("en")
            continue
        rng = random.Random(f"lexicon-{seed}-{code}")
        # Short English words get short translations, like function words do.
        taken = set(vocabulary)
        words = {}
        for word in vocabulary:
            syl = (1, 2) if len(word) <= 3 else (2, 3)
            words[word] = pseudo_words(rng, 1, code, taken, syllables=syl)[0]
        languages[code] = Language(code, words)
    return languages
