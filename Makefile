# One entry point for every step: install -> train -> archive -> serve -> predict/explain.
# Every target builds what it needs first, so `make serve` works on a fresh clone.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ARTIFACTS ?= artifacts
# Empty DATA means "download the canonical AG News CSVs" (needs the network).
DATA ?=
TRAIN_ARGS ?=
PYTEST_ARGS ?=

export PYTHONPATH := $(CURDIR)
# Point NLTK at a local copy of its data when one sits beside the checkout.
ifneq ($(wildcard ../shared/nltk_data),)
export NLTK_DATA ?= $(abspath ../shared/nltk_data)
endif

.PHONY: help install test train clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	@command -v java >/dev/null 2>&1 || { echo "Java 17+ is required by TorchServe: install it, e.g. 'sudo apt-get install -y openjdk-17-jre-headless'" >&2; exit 1; }
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) { print "Java " $$2 " found; TorchServe needs 17+: sudo apt-get install -y openjdk-17-jre-headless" > "/dev/stderr"; exit 1 } }'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed ## Create the virtual environment with pinned requirements (checks Java)

test: install ## Run the test suite (with DATA=file.csv it also trains end to end on that file)
	DATA="$(DATA)" $(PY) -m pytest tests $(PYTEST_ARGS)

$(ARTIFACTS)/model.pt: | install
	$(PY) -m training $(if $(DATA),--data "$(DATA)") --out "$(ARTIFACTS)" $(TRAIN_ARGS)

train: install ## Train all experiments and save the chosen model to ARTIFACTS (DATA=file.csv)
	$(PY) -m training $(if $(DATA),--data "$(DATA)") --out "$(ARTIFACTS)" $(TRAIN_ARGS)

clean: ## Remove trained artifacts and archives (keeps the virtual environment)
	rm -rf $(ARTIFACTS) model_store/*.mar logs
