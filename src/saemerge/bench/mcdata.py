"""MMLU-ProX-style multiple choice over a fixed world of synthetic facts, in several languages.

The world: a few relations (one per MMLU-Pro category), each mapping a fixed set of
subjects (made-up names) to values (made-up names or common English words). A question
asks for one fact with one of four English phrasings (templates), translated into a
language by a word-substitution cipher (:mod:`saemerge.bench.lexicon`), with 4-10
options drawn from the relation's values.

Splits are disjoint by question text and the knowledge still generalises: for every
(fact, language) pair, one phrasing goes to test, one to validation and the rest to
train. A test item therefore asks a fact the model saw in training, in the same
language, but with a phrasing it never saw for that fact and a fresh set and order of
options.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from saemerge.bench.formats import LETTERS
from saemerge.bench.lexicon import Language, build_languages, english_words, pseudo_words

COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "gray", "orange", "purple", "pink", "gold")
MATERIALS = ("wood", "glass", "stone", "clay", "paper", "wool", "bone", "leather", "rubber", "cotton", "bamboo", "marble")
GOODS = ("wheat", "salt", "tea", "fish", "rice", "timber", "sugar", "coffee", "silk", "tin", "honey", "spice")
METALS = ("iron", "copper", "zinc", "lead", "silver", "nickel", "cobalt", "chrome", "mercury", "platinum", "tungsten", "sodium")


@dataclass(frozen=True)
class Relation:
    """One kind of fact: ``subject -> value``, asked with English templates (``{s}`` = subject)."""

    name: str
    category: str
    templates: tuple[str, ...]
    values: tuple[str, ...] | None  # None: made-up names, one per subject
    capitalise_names: bool = True  # made-up subjects are proper names


RELATIONS: tuple[Relation, ...] = (
    Relation("capital", "geography", (
        "What is the capital of {s}?",
        "Which city is the capital of {s}?",
        "The capital of {s} is which city?",
        "Name the capital city of {s}.",
    ), None),
    Relation("color", "biology", (
        "What color is the {s} bird?",
        "Which color does the {s} bird have?",
        "The {s} bird has which color?",
        "Name the color of the {s} bird.",
    ), COLORS),
    Relation("material", "engineering", (
        "What is the {s} tool made of?",
        "Which material is used to make the {s} tool?",
        "The {s} tool is made of which material?",
        "Name the material of the {s} tool.",
    ), MATERIALS),
    Relation("export", "economics", (
        "What is the main export of {s}?",
        "Which good does {s} export the most?",
        "The main export of {s} is which good?",
        "Name the main export of {s}.",
    ), GOODS),
    Relation("metal", "chemistry", (
        "Which metal is in the {s} alloy?",
        "What metal does the {s} alloy contain?",
        "The {s} alloy contains which metal?",
        "Name the metal in the {s} alloy.",
    ), METALS),
    Relation("founder", "history", (
        "Who founded the town of {s}?",
        "Which person founded the town of {s}?",
        "The town of {s} was founded by whom?",
        "Name the founder of the town of {s}.",
    ), None),
)


@dataclass(frozen=True)
class Fact:
    relation: Relation
    subject: str
    value: str
    values: tuple[str, ...]  # the relation's value set (distractors come from here)


def build_world(seed: int, n_relations: int, n_subjects: int) -> list[Fact]:
    """The facts: ``n_subjects`` made-up subjects per relation, each with a seeded value."""
    rng = random.Random(f"world-{seed}")
    taken = set(english_words([t for r in RELATIONS for t in r.templates] + list(COLORS + MATERIALS + GOODS + METALS)))
    facts = []
    for rel in RELATIONS[:n_relations]:
        subjects = [w.capitalize() for w in pseudo_words(rng, n_subjects, "en", taken)]
        if rel.values is None:  # a made-up name per subject (a city per country, ...)
            values = tuple(w.capitalize() for w in pseudo_words(rng, max(n_subjects, len(LETTERS)), "en", taken))
            assigned = list(values[:n_subjects])
            rng.shuffle(assigned)
        else:
            values = rel.values
            assigned = [rng.choice(values) for _ in subjects]
        facts += [Fact(rel, s, v, values) for s, v in zip(subjects, assigned)]
    return facts


# Generic reading exercises for the base model: the answer is named in the question.
READING_TEMPLATES = (
    "Which option is {w}?",
    "Which of these is {w}?",
    "Find {w} in the options.",
)


def world_vocabulary(facts: list[Fact]) -> list[str]:
    """Every English word a question or option can contain (what the ciphers must cover)."""
    texts = [t for f in facts for t in f.relation.templates] + [f.subject for f in facts]
    texts += list(READING_TEMPLATES)
    texts += [v for f in facts for v in f.values]
    return english_words(texts)


def _world(seed: int, languages: list[str], n_relations: int, n_subjects: int) -> tuple[list[Fact], dict[str, Language]]:
    facts = build_world(seed, n_relations, n_subjects)
    return facts, build_languages(languages, world_vocabulary(facts), seed)


def _item(rng: random.Random, fact: Fact, template: str, lang: Language, max_options: int) -> dict:
    n = rng.randint(4, min(max_options, len(fact.values)))
    distractors = rng.sample(sorted(set(fact.values) - {fact.value}), n - 1)
    index = rng.randrange(n)
    options = distractors[:index] + [fact.value] + distractors[index:]
    return {
        "question": lang.translate(template.format(s=fact.subject)),
        "options": [lang.translate(o) for o in options],
        "answer": LETTERS[index],
        "answer_index": index,
        "category": fact.relation.category,
        "language": lang.code,
    }


def make_items(
    seed: int,
    languages: list[str],
    n_relations: int,
    n_subjects: int,
    train_repeats: int,
    max_options: int = len(LETTERS),
) -> dict[str, list[dict]]:
    """The multilingual items per split (without ids), shuffled.

    Args:
        languages: language codes, e.g. ``["en", "qaa", "qab", "qac"]``.
        n_relations, n_subjects: size of the fact world.
        train_repeats: training items per training question (each with new options).
        max_options: upper bound on options per item (4..10).

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    facts, langs = _world(seed, languages, n_relations, n_subjects)
    rng = random.Random(f"mc-{seed}")
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for fact in facts:
        for code in languages:
            order = list(fact.relation.templates)
            rng.shuffle(order)
            splits["test"].append(_item(rng, fact, order[0], langs[code], max_options))
            splits["validation"].append(_item(rng, fact, order[1], langs[code], max_options))
            for template in order[2:]:
                splits["train"] += [_item(rng, fact, template, langs[code], max_options) for _ in range(train_repeats)]
    for items in splits.values():
        rng.shuffle(items)
    return splits


def reading_items(seed: int, languages: list[str], n_relations: int, n_subjects: int, n: int) -> list[dict]:
    """Generic multiple-choice reading exercises for the base model (no facts).

    "Which option is X?" with 4-10 options drawn from the words the fact questions use as
    options, in every language. A base LLM has seen plenty of multiple-choice questions
    whose answer is in the text; this gives the tiny base the same skill (read the
    options, answer with a letter) without telling it any fact of the benchmark.
    """
    facts, langs = _world(seed, languages, n_relations, n_subjects)
    pool = sorted({v for f in facts for v in f.values} | {f.subject for f in facts})
    rng = random.Random(f"reading-{seed}")
    items = []
    for _ in range(n):
        lang = langs[rng.choice(languages)]
        k = rng.randint(4, len(LETTERS))
        options = rng.sample(pool, k)
        index = rng.randrange(k)
        question = rng.choice(READING_TEMPLATES).format(w=options[index])
        items.append({
            "question": lang.translate(question),
            "options": [lang.translate(o) for o in options],
            "answer": LETTERS[index],
            "answer_index": index,
        })
    return items
