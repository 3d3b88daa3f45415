# Every target sets up .venv itself; a fresh clone needs only python3 (>= 3.10).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv lint format test test-unit test-acceptance demo bench compile golden images clean

venv: $(STAMP)

# torch is pinned to the CPU wheel first so the dependency range does not pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# ruff (lint + format check) over the code, and a type check of the library.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venv
	$(PY) -m pytest -q -m "not acceptance"

test-unit: venv
	$(PY) -m pytest -q tests/unit

# The tiny bench's acceptance (about 5 minutes of CPU): build time and expert accuracies.
test-acceptance: venv
	$(PY) -m pytest -q -m acceptance

demo: venv
	$(VENV)/bin/saemerge run --local

bench: venv
	$(PY) benchmarks/merge_bench.py
	$(PY) benchmarks/s3_bench.py
	$(PY) benchmarks/eval_bench.py

compile: venv
	$(VENV)/bin/saemerge compile --out sae_pipeline.yaml

# The checked-in compiled pipeline of every search (tests compare them with a fresh compile).
golden: venv
	for search in sae pso m2n2; do $(VENV)/bin/saemerge compile --search $$search --out pipeline/$${search}_pipeline.yaml || exit 1; done

images:
	images/build.sh

clean:
	rm -rf .saemerge build *.egg-info
