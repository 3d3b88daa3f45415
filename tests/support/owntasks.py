"""Local JSONL data for lm-eval's own shipped tasks (gsm8k, arc_easy, mgsm_direct_*, hellaswag,
lambada_openai, wikitext), in the fields their YAMLs read, and user task directories over them."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import yaml

from saemerge.evaluate.taskspec import write_jsonl
from tests.support.fixtures import write_real_data

WORDS = "the cat sat on a mat and saw two red birds fly over one green tree".split()


def _sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_lm_eval_data(root: str | Path, seed: int = 0) -> Path:
    """``root/<task>/<split>.jsonl`` for gsm8k, arc_easy, mgsm (de and fr rows), hellaswag,
    lambada_openai and wikitext (each split a few rows)."""
    rng = random.Random(seed)
    root = Path(root)
    write_real_data(root, gsm8k={"train": 6, "test": 5}, languages={"en": 2})
    for split, n in (("train", 4), ("test", 5)):
        rows = []
        for _ in range(n):
            texts = [_sentence(rng, 2) for _ in range(4)]
            rows.append(
                {
                    "question": _sentence(rng) + "?",
                    "choices": {"text": texts, "label": ["A", "B", "C", "D"]},
                    "answerKey": rng.choice("ABCD"),
                }
            )
        write_jsonl(root / "arc_easy" / f"{split}.jsonl", rows)
    for split, n in (("train", 4), ("test", 6)):
        rows = []
        for i in range(n):
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            rows.append(
                {"question": f"{a} + {b} =", "answer": None, "answer_number": a + b, "lang": "de fr".split()[i % 2]}
            )
        write_jsonl(root / "mgsm" / f"{split}.jsonl", rows)
    for split, n in (("train", 4), ("validation", 3), ("test", 4)):
        rows = [
            {
                "activity_label": "Cats",
                "ctx_a": _sentence(rng),
                "ctx_b": _sentence(rng, 3),
                "ctx": "",
                "endings": [_sentence(rng, 3) for _ in range(4)],
                "label": str(rng.randint(0, 3)),
            }
            for _ in range(n)
        ]
        write_jsonl(root / "hellaswag" / f"{split}.jsonl", rows)
    for split, n in (("train", 3), ("test", 4)):
        write_jsonl(root / "lambada_openai" / f"{split}.jsonl", [{"text": _sentence(rng, 8)} for _ in range(n)])
        write_jsonl(root / "wikitext" / f"{split}.jsonl", [{"page": _sentence(rng, 20)} for _ in range(n)])
    return root


def write_sidecar(task_dir: Path, name: str, **values) -> Path:
    task_dir.mkdir(parents=True, exist_ok=True)
    path = task_dir / f"{name}.saemerge.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def write_task(task_dir: Path, name: str, config: dict, **sidecar) -> Path:
    """A task YAML ``<name>.yaml`` (``task: name`` + `config`) and its sidecar."""
    task_dir.mkdir(parents=True, exist_ok=True)
    path = task_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"task": name, **config}, sort_keys=False))
    write_sidecar(task_dir, name, **sidecar)
    return path


# a small generate_until task of one's own over the gsm8k fixture
MY_MATH = {
    "dataset_path": "json",
    "output_type": "generate_until",
    "test_split": "test",
    "doc_to_text": "Q: {{question}}\nA:",
    "doc_to_target": "{{answer.split('#### ')[-1]}}",
    "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": 8},
    "filter_list": [
        {"name": "first", "filter": [{"function": "regex", "regex_pattern": "(-?[0-9]+)"}, {"function": "take_first"}]}
    ],
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
}


def hellaswag_copy(task_dir: Path, name: str = "my_hellaswag") -> Path:
    """lm-eval's hellaswag YAML and its utils.py copied into a user task directory (renamed)."""
    import lm_eval.tasks

    src = Path(lm_eval.tasks.__file__).parent / "hellaswag"
    task_dir.mkdir(parents=True, exist_ok=True)
    cfg = (src / "hellaswag.yaml").read_text().replace("task: hellaswag", f"task: {name}")
    (task_dir / f"{name}.yaml").write_text(cfg)
    shutil.copy(src / "utils.py", task_dir / "utils.py")
    write_sidecar(task_dir, name, data="hellaswag", metric="acc_norm")
    return task_dir
