"""MMLU-ProX-style multiple choice over a fixed world of synthetic facts, in several languages.

The world: a few relations (one per MMLU-Pro category: bird colours, fever seasons, tool
materials, ...), each mapping made-up subjects to one of the relation's 4-10 values. A
question asks one fact with one of six English phrasings, translated into a language by
a word-substitution cipher (:mod:`saemerge.bench.lexicon`). The options are the
relation's values in a fixed order, like an exam that always lists the same choices
(the regions, the seasons, ...), so the relations give items with 4 to 10 options.

Why fixed option lists: a model must know the fact to answer, but it need not learn
to find a value among shuffled options and read off its letter. That binding skill
takes a ~1M-parameter model thousands of steps (measured: 4 shuffled options, 2,500
steps to 0.75), far beyond the tiny benchmark's minutes of CPU.

Splits are disjoint by question text and the knowledge still generalises: for every
(fact, language) pair, one phrasing goes to test, one to validation and four to
train. A test item asks a fact the model saw in training, in the same language, with a
phrasing it never saw for that fact. Test-only phrasings (``extra_templates``, words of
the six phrasings in another order) give each pair more test items without changing any
training item.

Further relations of the same world can be answered items for the base model's corpus
(``pretrain_relations``): the base learns the exam's format, lettered options and the
languages on facts the task never asks, so the multilingual expert only has to learn
the task's facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from saemerge.bench.lexicon import Language, build_languages, english_words, pseudo_words
from saemerge.errors import SaeMergeError
from saemerge.evaluate.formats import LETTERS

# Each relation's answer set, in the fixed order its options are listed (4 to 10 options).
COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "gray", "orange", "purple")
SEASONS = ("spring", "summer", "autumn", "winter")
MATERIALS = ("wood", "glass", "stone", "clay", "paper", "wool")
CENTURIES = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
REGIONS = ("north", "south", "east", "west", "coast", "desert", "hills")
GOODS = ("wheat", "salt", "tea", "fish", "rice", "timber", "sugar", "coffee")
METALS = ("iron", "copper", "zinc", "lead", "silver")


@dataclass(frozen=True)
class Relation:
    """One kind of fact: ``subject -> value``, asked with English templates (``{s}`` = subject)."""

    name: str
    category: str
    values: tuple[str, ...]
    templates: tuple[str, ...]
    # Test-only phrasings (:func:`make_items`'s ``test_extra``). Their words are all words of
    # ``templates``, so the world's vocabulary, and therefore every cipher, stays as it was.
    extra_templates: tuple[str, ...] = ()


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "color",
        "biology",
        COLORS,
        (
            "What color is the {s} bird?",
            "Which color does the {s} bird have?",
            "The {s} bird has which color?",
            "Name the color of the {s} bird.",
            "Of what color is the {s} bird?",
            "Tell the color of the {s} bird.",
        ),
        (
            "Which color is the {s} bird?",
            "What is the color of the {s} bird?",
            "What color does the {s} bird have?",
            "The {s} bird is which color?",
            "Name the color the {s} bird has.",
            "Tell what color the {s} bird has.",
        ),
    ),
    Relation(
        "season",
        "health",
        SEASONS,
        (
            "In which season does {s} fever come?",
            "Which season brings {s} fever?",
            "{s} fever comes in which season?",
            "Name the season of {s} fever.",
            "When does {s} fever come, in which season?",
            "Tell the season of {s} fever.",
        ),
        (
            "Which season does {s} fever come in?",
            "Name the season when {s} fever comes.",
            "Name the season which brings {s} fever.",
            "Tell which season brings {s} fever.",
            "When does {s} fever come?",
            "Tell the season {s} fever comes in.",
        ),
    ),
    Relation(
        "material",
        "engineering",
        MATERIALS,
        (
            "What is the {s} tool made of?",
            "Which material is the {s} tool made of?",
            "The {s} tool is made of which material?",
            "Name the material of the {s} tool.",
            "Of which material is the {s} tool?",
            "Tell the material of the {s} tool.",
        ),
        (
            "Which material is the {s} tool of?",
            "What material is the {s} tool made of?",
            "The {s} tool is of which material?",
            "Tell what the {s} tool is made of.",
            "Name what the {s} tool is made of.",
            "What is the material of the {s} tool?",
        ),
    ),
    Relation(
        "century",
        "history",
        CENTURIES,
        (
            "In which century was the town of {s} founded?",
            "Which century saw the founding of the town of {s}?",
            "The town of {s} was founded in which century?",
            "Name the century when the town of {s} was founded.",
            "When was the town of {s} founded, in which century?",
            "Tell the founding century of the town of {s}.",
        ),
        (
            "Which century was the town of {s} founded in?",
            "When was the town of {s} founded?",
            "Name the founding century of the town of {s}.",
            "Tell the century when the town of {s} was founded.",
            "The founding of the town of {s} was in which century?",
            "In which century was the founding of the town of {s}?",
        ),
    ),
    Relation(
        "region",
        "geography",
        REGIONS,
        (
            "In which region is {s}?",
            "Which region is {s} in?",
            "{s} lies in which region?",
            "Name the region of {s}.",
            "Where is {s}, in which region?",
            "Tell the region of {s}.",
        ),
        (
            "Which region is {s}?",
            "Where is {s}?",
            "{s} is in which region?",
            "Name the region {s} lies in.",
            "Tell which region {s} is in.",
            "Where, in which region, is {s}?",
        ),
    ),
    Relation(
        "export",
        "economics",
        GOODS,
        (
            "What is the main export of {s}?",
            "Which good does {s} export most?",
            "The main export of {s} is which good?",
            "Name the main export of {s}.",
            "What does {s} export most?",
            "Tell the main export of {s}.",
        ),
        (
            "What is the export of {s}?",
            "Which good is the main export of {s}?",
            "Name the good {s} does export most.",
            "Tell what {s} does export most.",
            "The good {s} does export most is which?",
            "What good does {s} export most?",
        ),
    ),
    Relation(
        "metal",
        "chemistry",
        METALS,
        (
            "Which metal is in the {s} alloy?",
            "What metal does the {s} alloy contain?",
            "The {s} alloy contains which metal?",
            "Name the metal in the {s} alloy.",
            "Of which metal is the {s} alloy made?",
            "Tell the metal of the {s} alloy.",
        ),
        (
            "What metal is in the {s} alloy?",
            "Which metal does the {s} alloy contain?",
            "Name the metal of the {s} alloy.",
            "Tell the metal in the {s} alloy.",
            "The {s} alloy is made of which metal?",
            "Tell which metal the {s} alloy contains.",
        ),
    ),
)


@dataclass(frozen=True)
class Fact:
    relation: Relation
    subject: str
    value: str


def build_world(seed: int, n_relations: int, n_subjects: int) -> list[Fact]:
    """The facts: ``n_subjects`` made-up subjects per relation, values spread evenly and shuffled."""
    rng = random.Random(f"world-{seed}")
    taken = set(english_words([t for r in RELATIONS for t in r.templates] + [v for r in RELATIONS for v in r.values]))
    facts = []
    for rel in RELATIONS[:n_relations]:
        subjects = [w.capitalize() for w in pseudo_words(rng, n_subjects, "en", taken)]
        # Every value about equally often, so no answer letter is a better guess than another.
        values = [rel.values[i % len(rel.values)] for i in range(n_subjects)]
        rng.shuffle(values)
        facts += [Fact(rel, s, v) for s, v in zip(subjects, values)]
    return facts


def world_vocabulary(facts: list[Fact]) -> list[str]:
    """Every English word a question or option can contain (what the ciphers must cover)."""
    texts = [t for f in facts for t in f.relation.templates] + [f.subject for f in facts]
    texts += [v for f in facts for v in f.relation.values]
    return english_words(texts)


def _world(
    seed: int, languages: list[str], n_relations: int, n_subjects: int
) -> tuple[list[Fact], dict[str, Language]]:
    facts = build_world(seed, n_relations, n_subjects)
    return facts, build_languages(languages, world_vocabulary(facts), seed)


def _item(fact: Fact, template: str, lang: Language) -> dict:
    index = fact.relation.values.index(fact.value)
    return {
        "question": lang.translate(template.format(s=fact.subject)),
        "options": [lang.translate(v) for v in fact.relation.values],
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
    pretrain_relations: int = 0,
    test_extra: int = 0,
) -> dict[str, list[dict]]:
    """The multilingual items per split (without ids), shuffled.

    For every fact and language, the relation's six phrasings are shuffled: one goes to
    test, one to validation, four to train. With ``test_extra``, each (fact, language)
    pair also gets that many of the relation's test-only phrasings
    (``Relation.extra_templates``), appended after the original test items in an order of
    their own: they are drawn with a separate random stream, so every other item, and
    the order of the original test items, is the same as without them.

    Every test item has ``"cluster": "<relation>:<subject>:<language>"``: the items of one
    (fact, language) pair ask the same fact and are correlated.

    Args:
        languages: language codes, e.g. ``["en", "qaa", "qab", "qac"]``.
        n_relations, n_subjects: size of the fact world (relations are taken in order).
        pretrain_relations: this many further relations (after the task's ones) give
            the ``"pretrain"`` items: every phrasing of their facts, for the base model's
            corpus. Their facts, subjects and options never occur in the task's splits.
        test_extra: test-only phrasings per (fact, language) pair, at most
            ``len(extra_templates)`` of each task relation.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``, plus ``"pretrain"``
        when ``pretrain_relations > 0``.
    """
    if n_relations + pretrain_relations > len(RELATIONS):
        raise SaeMergeError(
            f"ml_relations {n_relations} + ml_pretrain_relations {pretrain_relations}: "
            f"more than the {len(RELATIONS)} relations defined"
        )
    short = [r.name for r in RELATIONS[:n_relations] if len(r.extra_templates) < test_extra]
    if test_extra < 0 or short:
        raise SaeMergeError(
            f"ml_test_extra {test_extra}: relation {short[0] if short else '-'} has fewer extra phrasings"
        )
    facts, langs = _world(seed, languages, n_relations + pretrain_relations, n_subjects)
    task = {r.name for r in RELATIONS[:n_relations]}
    rng = random.Random(f"mc-{seed}")
    # A stream of its own: the test-only phrasings leave ``rng``'s draws, and so every other item, as they were.
    extra_rng = random.Random(f"mc-extra-{seed}")
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    extra: list[dict] = []
    pretrain: list[dict] = []
    for fact in facts:
        for code in languages:
            order = list(fact.relation.templates)
            rng.shuffle(order)
            items = [_item(fact, t, langs[code]) for t in order]
            if fact.relation.name not in task:
                pretrain += items
                continue
            cluster = f"{fact.relation.name}:{fact.subject}:{code}"
            splits["test"].append({**items[0], "cluster": cluster})
            splits["validation"].append(items[1])
            splits["train"] += items[2:]
            if test_extra:
                more = list(fact.relation.extra_templates)
                extra_rng.shuffle(more)
                extra += [{**_item(fact, t, langs[code]), "cluster": cluster} for t in more[:test_extra]]
    for items in splits.values():
        rng.shuffle(items)
    extra_rng.shuffle(extra)
    splits["test"] += extra
    if pretrain_relations:
        rng.shuffle(pretrain)
        splits["pretrain"] = pretrain
    return splits
