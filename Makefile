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
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

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

TRAIN_CMD = $(PY) -m training $(if $(DATA),--data "$(DATA)") --out "$(ARTIFACTS)" $(TRAIN_ARGS)

# Trains only when no model exists yet, and only the experiment that is archived (what
# `make serve` needs); `make train` always retrains and runs the whole comparison.
$(ARTIFACTS)/model.pt: | install
	$(TRAIN_CMD) --archived-only

train: install ## Train all experiments and save the chosen model to ARTIFACTS (DATA=file.csv)
	$(TRAIN_CMD)

clean: ## Remove trained artifacts and archives (keeps the virtual environment)
	rm -rf $(ARTIFACTS) model_store/*.mar logs

.PHONY: explain
explain: install ## Explain one headline via the running server: make explain TEXT="..." [PNG=out.png]
	@test -n "$(TEXT)" || { echo 'TEXT is empty: run make explain TEXT="The final tennis tournament starts next week."' >&2; exit 2; }
	$(PY) -m client explain "$(TEXT)" $(if $(PNG),--png "$(PNG)")

# --- Serving: archive, TorchServe, client (handler/, serving/, client/, config.properties) ---
MODEL_STORE ?= model_store
MAR := $(MODEL_STORE)/news_cnn.mar
# Archive version; empty means the version in $(ARTIFACTS)/manifest.json.
VERSION ?=
WORKERS ?=
SERVE_TIMEOUT ?= 300
SERVING_SOURCES := handler/handler.py handler/request_parsing.py handler/model-config.yaml serving/archive.py $(wildcard model/*.py)
ARCHIVE_CMD = $(PY) -m serving.archive --artifacts "$(ARTIFACTS)" --export-path "$(MODEL_STORE)" $(if $(VERSION),--version "$(VERSION)")

.PHONY: archive serve stop predict scale keys status

$(MAR): $(ARTIFACTS)/model.pt $(SERVING_SOURCES) | install
	$(ARCHIVE_CMD)

archive: $(ARTIFACTS)/model.pt | install ## Build model_store/news_cnn.mar from ARTIFACTS (VERSION=2.0 overrides the version)
	$(ARCHIVE_CMD)
	@# A copy named for its version stays beside the others, so versions can be registered side by side.
	$(if $(VERSION),cp "$(MAR)" "$(MODEL_STORE)/news_cnn_v$(VERSION).mar")

serve: $(MAR) ## Start TorchServe in the background (trains and archives first if needed; DATA=file.csv)
	$(PY) -m serving start --timeout $(SERVE_TIMEOUT)

stop: ## Stop the TorchServe that make serve started
	@if [ -x "$(PY)" ]; then $(PY) -m serving stop; else echo "TorchServe was not running."; fi

status: install ## Is TorchServe up, which model version, how many workers
	$(PY) -m serving status

predict: install ## Classify a headline on the running server: make predict TEXT="..."
	@test -n "$(TEXT)" || { echo 'TEXT is empty: run make predict TEXT="The final tennis tournament starts next week."' >&2; exit 2; }
	$(PY) -m client predict "$(TEXT)"

scale: install ## Set the number of workers and wait until done: make scale WORKERS=3
	@test -n "$(WORKERS)" || { echo 'WORKERS is empty: run make scale WORKERS=3' >&2; exit 2; }
	$(PY) -m client scale $(WORKERS)

keys: install ## Print where TorchServe's keys are, and the current keys (renewed if about to expire)
	$(PY) -m serving keys

# --- Deploy: embeddings explorer, Docker image, KServe storage (deploy/, training/explore.py) ---
EXPLORE_ARGS ?=
KSERVE_MAR ?= $(MAR)
KSERVE_STORAGE ?= $(MODEL_STORE)/kserve
IMAGE ?= news-cnn-serve

.PHONY: explore kserve-storage docker-image

explore: install ## Explore word vectors: neighbours, analogies, FastText OOV (with DATA), PCA plot (EXPLORE_ARGS="--help")
	$(PY) -m training.explore $(if $(DATA),--data "$(DATA)") $(EXPLORE_ARGS)

kserve-storage: $(MAR) ## Lay out KServe storage (config/config.properties, model-store/news_cnn.mar) in model_store/kserve
	$(PY) -m deploy.kserve_storage --mar "$(KSERVE_MAR)" --out "$(KSERVE_STORAGE)"

docker-image: $(MAR) ## Build the TorchServe Docker image (deploy/Dockerfile) with the archive: IMAGE=news-cnn-serve
	@command -v docker >/dev/null 2>&1 || { echo "docker is not installed: the image needs a Docker engine (see deploy/Dockerfile)" >&2; exit 1; }
	docker build -f deploy/Dockerfile -t "$(IMAGE)" .

# --- Bench: benchmark and reliability suite (bench/) ---
# BENCH_ARGS="--quick" for a short rough run; SOAK_ARGS="--quick" for the test-suite sizes.
BENCH_ARGS ?=
SOAK_ARGS ?=
PROFILE_ARGS ?=
BENCH_RUN = $(PY) -u -m bench $(1) --mar "$(MAR)" --artifacts "$(ARTIFACTS)"

.PHONY: bench soak profile wrk

wrk: ## Make sure wrk (the benchmark's load generator) is installed (apt-get as root)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "wrk (the benchmark's load generator) is missing: installing it with apt-get install -y wrk"; \
	    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; \
	  else \
	    echo "wrk (the benchmark's load generator) is missing: install it with 'sudo apt-get install -y wrk'" >&2; exit 1; \
	  fi; }

bench: $(MAR) wrk ## Benchmark vs an echo floor, batching, workers, in-process; writes bench/results.{json,md,png}
	$(call BENCH_RUN,run) $(BENCH_ARGS)

soak: $(MAR) ## Reliability suite at full size: load, worker crash, scaling, bad input, auth -> bench/soak.json
	$(call BENCH_RUN,soak) $(SOAK_ARGS)

profile: $(MAR) wrk ## py-spy profile of a worker, CPU per process under load -> bench/profile.txt (PROFILE_ARGS="--path /predictions/echo")
	$(call BENCH_RUN,profile) $(PROFILE_ARGS)
