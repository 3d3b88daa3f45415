"""Synthetic GSM8K-style and MMLU-ProX-style data: shape, arithmetic, splits, languages."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from saemerge.bench.lexicon import LANGUAGE_CODES, build_languages, english_words
from saemerge.bench.mathdata import MAX_VALUE, iter_problems
from saemerge.bench.mcdata import RELATIONS, build_world, make_items
from saemerge.bench.sizes import SIZES
from saemerge.bench.splits import (
    check_disjoint,
    normalise_question,
    read_jsonl,
    unique_by_question,
    with_ids,
    write_jsonl,
    write_splits,
)
from saemerge.errors import SaeMergeError
from saemerge.evaluate import formats

EQ = re.compile(r", so (\d+) ([-+*/]) (\d+) = (\d+)\.$")


def test_math_answers_are_correct_gsm8k_shaped_arithmetic():
    ops_seen, n_ops = set(), set()
    for problem in itertools.islice(iter_problems(0), 500):
        *lines, final = problem["answer"].split("\n")
        n_ops.add(len(lines))
        prev = None
        for line in lines:
            sentence, equation = line.split(", so ")
            assert sentence in problem["question"]  # each step restates the story's sentence
            a, op, b, c = EQ.search(line).groups()
            a, b, c = int(a), int(b), int(c)
            ops_seen.add(op)
            assert c == {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
            assert op != "/" or a % b == 0
            assert 1 <= c <= MAX_VALUE
            assert prev is None or a == prev  # each step continues from the last result
            prev = c
        assert final == f"#### {prev}"
        assert formats.gold_math_answer(problem["answer"]) == str(prev)
        assert problem["question"].endswith("have now?")
    assert ops_seen == {"+", "-", "*", "/"}
    assert n_ops == {1, 2, 3}


def test_math_stream_is_seeded():
    first = list(itertools.islice(iter_problems(3), 20))
    assert first == list(itertools.islice(iter_problems(3), 20))
    assert first != list(itertools.islice(iter_problems(4), 20))


def test_ciphers_cover_the_vocabulary_and_differ_per_language():
    langs = build_languages(list(LANGUAGE_CODES[:4]), ["capital", "of", "what"], seed=0)
    assert langs["en"].translate("What capital?") == "What capital?"
    outs = {code: langs[code].translate("What capital of 12?") for code in LANGUAGE_CODES[1:4]}
    assert len(set(outs.values())) == 3
    for out in outs.values():
        assert out[0].isupper() and out.endswith(" 12?")  # case, digits and punctuation kept
    assert (
        build_languages(["qaa"], ["of"], seed=0)["qaa"].words == build_languages(["qaa"], ["of"], seed=0)["qaa"].words
    )


@pytest.fixture(scope="module")
def mc():
    return make_items(0, list(LANGUAGE_CODES[:4]), n_relations=3, n_subjects=8)


def test_mc_items_have_mmlu_prox_fields(mc):
    counts = set()
    fields = {"question", "options", "answer", "answer_index", "category", "language"}
    for item in mc["train"] + mc["test"]:
        assert set(item) == fields | ({"cluster"} if item in mc["test"] else set())
        counts.add(len(item["options"]))
        assert len(set(item["options"])) == len(item["options"])
        assert item["answer"] == formats.LETTERS[item["answer_index"]]
    assert min(counts) >= 4 and max(counts) <= 10 and len(counts) == 3
    assert {x["language"] for x in mc["test"]} == set(LANGUAGE_CODES[:4])
    assert {x["category"] for x in mc["test"]} == {r.category for r in RELATIONS[:3]}


def test_all_relations_give_4_to_10_options():
    assert sorted(len(r.values) for r in RELATIONS) == [4, 5, 6, 7, 8, 9, 10]
    assert all(len(r.templates) == 6 for r in RELATIONS)


def test_test_only_phrasings_add_no_word_and_repeat_no_phrasing():
    """New words would change the ciphers (and so every item and the trained models)."""
    for r in RELATIONS:
        assert len(r.extra_templates) >= max(s.ml_test_extra for s in SIZES.values())
        assert set(english_words(list(r.extra_templates))) <= set(english_words(list(r.templates))), r.name
        keys = [normalise_question(t) for t in r.templates + r.extra_templates]
        assert len(set(keys)) == len(keys) and all(t.count("{s}") == 1 for t in r.extra_templates)


@pytest.fixture(scope="module")
def mc_extra():
    return make_items(0, list(LANGUAGE_CODES[:4]), n_relations=3, n_subjects=8, pretrain_relations=1, test_extra=3)


def test_extra_test_items_leave_every_other_item_and_the_order_unchanged(mc_extra):
    plain = make_items(0, list(LANGUAGE_CODES[:4]), n_relations=3, n_subjects=8, pretrain_relations=1)
    for split in ("train", "validation", "pretrain"):
        assert mc_extra[split] == plain[split]
    n = len(plain["test"])
    assert mc_extra["test"][:n] == plain["test"]  # the original test items first, in their order
    assert len(mc_extra["test"]) == n * (1 + 3)


def test_extra_test_items_are_unseen_and_clustered_by_fact_and_language(mc_extra):
    check_disjoint(mc_extra, "multilingual")
    train_val = {normalise_question(x["question"]) for s in ("train", "validation") for x in mc_extra[s]}
    test = [normalise_question(x["question"]) for x in mc_extra["test"]]
    assert not set(test) & train_val and len(set(test)) == len(test)
    clusters = {}
    for x in mc_extra["test"]:
        clusters.setdefault(x["cluster"], []).append(x)
    assert len(clusters) == 3 * 8 * 4 and all(len(v) == 4 for v in clusters.values())
    for cluster, items in clusters.items():
        relation, subject, language = cluster.split(":")
        assert {(x["language"], x["answer_index"], x["category"]) for x in items} == {
            (language, items[0]["answer_index"], next(r.category for r in RELATIONS if r.name == relation))
        }
        if language == "en":
            assert all(subject in x["question"] for x in items)
    with pytest.raises(SaeMergeError, match="ml_test_extra 7"):
        make_items(0, ["en"], n_relations=1, n_subjects=2, test_extra=7)


def test_extra_math_test_problems_come_after_every_other_split():
    counts = {"test": 5, "validation": 5, "train": 40, "pretrain": 20}
    plain = unique_by_question(iter_problems(0), counts)
    more = unique_by_question(iter_problems(0), {**counts, "test_extra": 7})
    assert all(more[s] == plain[s] for s in counts) and len(more["test_extra"]) == 7
    assert unique_by_question(iter_problems(0), {**counts, "test_extra": 0})["test_extra"] == []
    splits = {"train": more["train"], "validation": more["validation"], "test": more["test"] + more["test_extra"]}
    check_disjoint(splits, "math")


def test_mc_test_questions_are_unseen_but_their_facts_are_learnable(mc):
    check_disjoint(mc, "multilingual")
    assert len(mc["train"]) == 4 * len(mc["test"]) == 4 * len(mc["validation"])
    # Every English test item asks a fact that training items about the same subject answer the same way.
    facts = build_world(0, 3, 8)
    for item in mc["test"]:
        if item["language"] != "en":
            continue
        fact = next(f for f in facts if f.subject in item["question"])
        assert item["options"][item["answer_index"]] == fact.value
        train = [x for x in mc["train"] if x["language"] == "en" and fact.subject in x["question"]]
        assert len(train) == 4 and {x["answer_index"] for x in train} == {item["answer_index"]}


def test_mc_values_are_spread_evenly_over_subjects():
    facts = build_world(0, 1, 20)  # colours: 10 values, 20 subjects
    values = [f.value for f in facts]
    assert all(values.count(v) == 2 for v in set(values)) and len(set(values)) == 10


def test_other_languages_translate_questions_and_options():
    items = make_items(0, ["en", "qaa"], n_relations=1, n_subjects=2)["test"]
    en = [x for x in items if x["language"] == "en"]
    qaa = [x for x in items if x["language"] == "qaa"]
    assert en[0]["options"][:2] == ["red", "blue"]
    assert qaa[0]["options"][0] != "red" and len(qaa[0]["options"]) == 10
    assert not set(qaa[0]["question"].split()) & set(en[0]["question"].split())


def test_unique_by_question_fills_splits_without_repeats():
    stream = [{"question": q} for q in ["a", "A ", "b", "c?", "c", "d", "e"]]
    out = unique_by_question(stream, {"test": 2, "train": 3})
    assert [x["question"] for x in out["test"]] == ["a", "b"]
    assert [x["question"] for x in out["train"]] == ["c?", "d", "e"]


def test_check_disjoint_names_the_offending_item():
    splits = {"train": with_ids("math", "train", [{"question": "Hi  there?"}]), "test": [{"question": "hi there"}]}
    with pytest.raises(SaeMergeError, match="math train item math-train-0"):
        check_disjoint(splits, "math")
    assert normalise_question(" Hi\n there? ") == "hi there"


def test_jsonl_round_trip_and_ids(tmp_path):
    splits = {
        "train": [{"question": "x", "answer": "#### 1"}],
        "validation": [],
        "test": [{"question": "y", "answer": "#### 2"}],
    }
    counts = write_splits(tmp_path, "math", splits)
    assert counts == {"train": 1, "validation": 0, "test": 1}
    rows = read_jsonl(tmp_path / "math" / "test.jsonl")
    # a test item without a cluster is its own cluster
    assert rows == [{"id": "math-test-0", "question": "y", "answer": "#### 2", "cluster": "math-test-0"}]
    assert list(rows[0]) == ["id", "question", "answer", "cluster"]
    assert list(read_jsonl(tmp_path / "math" / "train.jsonl")[0]) == ["id", "question", "answer"]
    write_jsonl(tmp_path / "ml.jsonl", [{"question": "ĉu?", "options": ["ŝi"]}])
    assert "ĉu?" in (tmp_path / "ml.jsonl").read_text(encoding="utf-8")  # UTF-8, not \u escapes


def test_read_jsonl_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(SaeMergeError, match="no such data file"):
        read_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"a": 1}) + "\n{oops\n")
    with pytest.raises(SaeMergeError, match=r"bad.jsonl:2: not a JSON object"):
        read_jsonl(bad)


def test_drills_are_correct_equation_chains_in_the_exam_format():
    from saemerge.bench.mathdata import iter_drills

    drill_eq = re.compile(r"^(\d+) ([-+*/]) (\d+) = (\d+)\.$")
    n_ops = set()
    for drill in itertools.islice(iter_drills(0), 100):
        assert drill["question"].startswith("Start with ") and drill["question"].endswith("What is the result?")
        *lines, final = drill["answer"].split("\n")
        n_ops.add(len(lines))
        prev = None
        for line in lines:
            a, op, b, c = (int(x) if x.isdigit() else x for x in drill_eq.match(line).groups())
            assert c == {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op] and (op != "/" or a % b == 0)
            assert f" {b}." in drill["question"] and (prev is None or a == prev)
            prev = c
        assert formats.gold_math_answer(drill["answer"]) == str(prev) and final == f"#### {prev}"
    assert n_ops == {1, 2, 3}


def test_worked_example_solves_in_a_textbook_frame_not_the_exams():
    from saemerge.bench.mathdata import worked_example

    problem = next(iter_problems(0))
    text = worked_example(problem)
    steps = problem["answer"].split("\n")[:-1]
    assert text.startswith(f"Problem: {problem['question']}\nSolution: {steps[0]}")
    assert text.endswith(f"\nThe answer is {formats.gold_math_answer(problem['answer'])}.")
    assert "####" not in text and "Question:" not in text and "Answer:" not in text


def test_pretrain_relations_give_the_base_other_facts_in_the_same_languages():
    plain = make_items(0, ["en", "qaa"], n_relations=2, n_subjects=4)
    items = make_items(0, ["en", "qaa"], n_relations=2, n_subjects=4, pretrain_relations=2)
    assert "pretrain" not in plain
    task_categories = {r.category for r in RELATIONS[:2]}
    for split in ("train", "validation", "test"):
        assert {x["category"] for x in items[split]} == task_categories
        assert len(items[split]) == len(plain[split])
    assert {x["category"] for x in items["pretrain"]} == {r.category for r in RELATIONS[2:4]}
    assert len(items["pretrain"]) == 2 * 4 * 2 * 6  # relations x subjects x languages x phrasings
    task_words = {w for x in items["test"] + items["train"] for w in x["question"].split()}
    # the same cipher: the languages' words for "which" etc. are shared, the subjects are not
    assert task_words & {w for x in items["pretrain"] for w in x["question"].split()}
    subjects = {f.subject for f in build_world(0, 4, 4)}
    task_subjects = {s for s in subjects if any(s in x["question"] for x in items["test"] if x["language"] == "en")}
    assert task_subjects and not any(s in x["question"] for s in task_subjects for x in items["pretrain"])
    with pytest.raises(SaeMergeError, match="ml_pretrain_relations 3"):
        make_items(0, ["en"], n_relations=5, n_subjects=2, pretrain_relations=3)
