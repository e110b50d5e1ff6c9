# One entry point for every step: install -> train -> archive -> serve -> predict/explain.
# Every target builds what it needs first, so `make serve` works on a fresh clone.

SHELL := /bin/bash
# The checkout this Makefile is in (also when run with -f from elsewhere); not settable.
override CHECKOUT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV ?= .venv
PYTHON ?= python3
ARTIFACTS ?= artifacts
# Empty DATA means "download the canonical AG News CSVs" (needs the network).
DATA ?=
# A labelled headlines CSV that training scores the final model on (never trained on), e.g.
# canonical_dev.csv; with `make test` it also enables the accuracy-regression test.
EVAL ?=
TRAIN_ARGS ?=
PYTEST_ARGS ?=

export PYTHONPATH := $(CURDIR)

# Values typed on the command line (a headline, a path, a version, extra options) never pass
# through make's expansion or the shell's parsing. Each one given on the command line or in
# the environment is made a simple variable holding exactly what was typed ($(value ...):
# make expands nothing in it, not even $(shell ...)); at the end of this file every one is
# exported as NEWS_<NAME>, and recipes use it quoted from there ("$$NEWS_TEXT"). The *_ARGS
# lists are split into words by scripts/run_with_args.py (shlex, no shell).
USER_VARS := TEXT PNG WORKERS SERVER_DIR VERSION PROMOTE DATA ARTIFACTS MODEL_STORE SERVE_TIMEOUT \
	EVAL TRAIN_ARGS PYTEST_ARGS EXPLORE_ARGS BENCH_ARGS SOAK_ARGS PROFILE_ARGS KSERVE_MAR KSERVE_STORAGE IMAGE \
	NOTICE DRAIN RENEW API PEERS_ARGS BASELINE FOLDS UPGRADE PYTHON VENV
$(foreach v,$(USER_VARS),$(if $(filter command environment,$(firstword $(origin $(v)))),\
	$(eval override $(v) := $$(value $(v)))))
# PYTHON and VENV are a command and a directory that recipes run as words, so they cannot be
# quoted like the rest: anything but letters, digits and _ . / - + is refused.
_SAFE_CHARS := a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R S T \
	U V W X Y Z 0 1 2 3 4 5 6 7 8 9 _ . / - +
_unsafe = $(if $(2),$(call _unsafe,$(subst $(firstword $(2)),,$(1)),$(wordlist 2,$(words $(2)),$(2))),$(1))
$(foreach v,PYTHON VENV,$(if $(call _unsafe,$(subst $(subst ,, ),#,$($(v))),$(_SAFE_CHARS))$(filter-out 1,$(words $($(v)))),\
	$(error $(v) must be a command or path of letters, digits and _ . / - + only (got: $($(v))))))
PY := $(VENV)/bin/python
RUN_WITH_ARGS = $(PY) scripts/run_with_args.py
# Point NLTK at a local copy of its data when one sits beside the checkout.
ifneq ($(wildcard ../shared/nltk_data),)
export NLTK_DATA ?= $(abspath ../shared/nltk_data)
endif

.PHONY: help install test test-unit lint train clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) was not found: install CPython 3.10-3.12, or name one with make install PYTHON=python3.12" >&2; exit 1; }
	@$(PYTHON) scripts/check_python.py pyproject.toml requirements/dev.txt
	@$(PYTHON) scripts/check_java.py
	$(PYTHON) -m venv $(VENV)
	@# Every package, pip and setuptools included, at the version and hash the lock records.
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	@# The project itself, editable, for the news-cnn command, built by the locked setuptools.
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(VENV)/bin/pip check
	@touch $@

install: $(VENV)/.installed ## Virtual environment from the hash-locked requirements/dev.txt + this project, editable (checks Python, Java)

# pyproject.toml says what each part needs (ranges); the locks say exactly what is installed,
# with hashes: requirements/dev.txt (everything, `make install`) and requirements/serving.txt
# (the image; its versions are dev.txt's). Locked versions are kept unless UPGRADE=1.
UPGRADE ?=
LOCK_CMD = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links $${NEWS_UPGRADE:+--upgrade}

.PHONY: lock
# Needs pip-compile in the venv, not a full install: a machine the lock does not fit yet
# makes one with `python3 -m venv .venv && .venv/bin/pip install pip-tools && make lock`.
lock: ## Re-lock requirements/{dev,serving}.txt from pyproject.toml, requirements/pip.txt and bench/requirements-peers.txt from their .in (UPGRADE=1: newest versions in range)
	@test -x $(VENV)/bin/pip-compile || { echo "$(VENV)/bin/pip-compile is missing: make install, or $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install pip-tools" >&2; exit 1; }
	$(LOCK_CMD) --extra train --extra dev --extra ray --output-file requirements/dev.txt pyproject.toml
	$(LOCK_CMD) --constraint requirements/dev.txt --output-file requirements/serving.txt pyproject.toml
	$(LOCK_CMD) --constraint requirements/dev.txt --output-file requirements/pip.txt requirements/pip.in
	$(LOCK_CMD) --constraint requirements/dev.txt --output-file bench/requirements-peers.txt bench/requirements-peers.in

test: install ## Run every test (DATA=file.csv: also trains end to end on it; EVAL=dev.csv: and checks its accuracy there)
	DATA="$$NEWS_DATA" EVAL="$$NEWS_EVAL" $(RUN_WITH_ARGS) NEWS_PYTEST_ARGS -- $(PY) -m pytest tests

test-unit: install ## Run the tests that start no TorchServe (no Java)
	DATA="$$NEWS_DATA" EVAL="$$NEWS_EVAL" $(RUN_WITH_ARGS) NEWS_PYTEST_ARGS -- $(PY) -m pytest tests -q -m "not integration" -n auto

lint: install ## ruff check (pyflakes, pycodestyle, import order, bugbear, pyupgrade; settings in pyproject.toml)
	$(VENV)/bin/ruff check .

TRAIN_CMD = $(RUN_WITH_ARGS) NEWS_TRAIN_ARGS -- $(PY) -m training $${NEWS_DATA:+--data "$$NEWS_DATA"} \
	$${NEWS_EVAL:+--eval-data "$$NEWS_EVAL"} --out "$$NEWS_ARTIFACTS"

# Trains only when no model exists yet, and only the experiment that is archived (what
# `make serve` needs); `make train` always retrains and runs the whole comparison.
$(ARTIFACTS)/model.pt: | install
	$(TRAIN_CMD) --archived-only

train: install ## Train all experiments and save the chosen model to ARTIFACTS (DATA=file.csv; EVAL=dev.csv scores them on it)
	$(TRAIN_CMD)

FOLDS ?= 5

.PHONY: evaluate
evaluate: install ## Cross-validate the archived recipe (FOLDS=5, outside the test split; EVAL=dev.csv scores each fold's model on it) -> ARTIFACTS/cv.{json,md}; TRAIN_ARGS="--word-dropout 0.2" for a variant
	$(TRAIN_CMD) --cv "$$NEWS_FOLDS"

# Deletes only relative paths inside the checkout (ARTIFACTS, MODEL_STORE: see the script).
clean: ## Remove trained artifacts and archives (keeps the virtual environment)
	$(PYTHON) "$(CHECKOUT)/scripts/clean.py"

.PHONY: explain
explain: install ## Explain one headline via the running server: make explain TEXT="..." [PNG=out.png]
	@test -n "$$NEWS_TEXT" || { echo 'TEXT is empty: run make explain TEXT="The final tennis tournament starts next week."' >&2; exit 2; }
	$(CLIENT) explain $${NEWS_PNG:+--png "$$NEWS_PNG"} -- "$$NEWS_TEXT"

# --- Serving: archive, TorchServe, client (handler/, serving/, client/, config.properties) ---
MODEL_STORE ?= model_store
MAR := $(MODEL_STORE)/news_cnn.mar
# Archive version for `make archive`: it builds model_store/news_cnn_v$(VERSION).mar beside the
# served news_cnn.mar, which it replaces only with PROMOTE=1. Empty: manifest.json's version.
VERSION ?=
PROMOTE ?=
WORKERS ?=
SERVE_TIMEOUT ?= 300
# Where the TorchServe to call was started: its config.properties and key_file.json.
SERVER_DIR ?= .
NEWS_CNN = $(VENV)/bin/news-cnn
CLIENT = $(NEWS_CNN) --config "$$NEWS_SERVER_DIR/config.properties" --key-file "$$NEWS_SERVER_DIR/key_file.json"
SERVING_SOURCES := handler/handler.py handler/request_parsing.py handler/model-config.yaml serving/archive.py $(wildcard model/*.py)
ARCHIVE_CMD = $(PY) -m serving.archive --artifacts "$$NEWS_ARTIFACTS" --export-path "$$NEWS_MODEL_STORE"

.PHONY: archive serve stop predict scale keys status ready live

$(MAR): $(ARTIFACTS)/model.pt $(SERVING_SOURCES) | install
	$(ARCHIVE_CMD)

archive: $(ARTIFACTS)/model.pt | install ## Build news_cnn.mar; VERSION=2.0: news_cnn_v2.0.mar beside it (PROMOTE=1: also served)
	$(ARCHIVE_CMD) $${NEWS_VERSION:+--version "$$NEWS_VERSION" --versioned} $${NEWS_PROMOTE:+--promote}

serve: $(MAR) ## Start TorchServe in the background (trains and archives first if needed; DATA=file.csv)
	$(NEWS_CNN) start --timeout "$$NEWS_SERVE_TIMEOUT"

# NOTICE: seconds for balancers to see readiness false before the in-flight wait (DRAIN=0: stop at once).
NOTICE ?= 2
DRAIN ?= 1
stop: ## Stop gracefully: readiness false, wait for in-flight requests (<= 30 s), stop (DRAIN=0: at once)
	@if [ -x "$(NEWS_CNN)" ]; then $(NEWS_CNN) stop --workdir "$$NEWS_SERVER_DIR" --notice "$$NEWS_NOTICE" $$([ "$$NEWS_DRAIN" = 0 ] && echo --no-drain); \
	else echo "TorchServe was not running."; fi

status: install ## Is TorchServe up, which version, how many workers (exits 1 below minWorkers)
	$(NEWS_CNN) status --workdir "$$NEWS_SERVER_DIR"

ready: install ## Readiness: exit 0 when a READY worker answers the canary headline right, else 1 and why
	@$(NEWS_CNN) ready --workdir "$$NEWS_SERVER_DIR"

live: install ## Liveness: exit 0 when the TorchServe frontend answers
	@$(NEWS_CNN) live --workdir "$$NEWS_SERVER_DIR"

predict: install ## Classify a headline on the running server: make predict TEXT="..."
	@test -n "$$NEWS_TEXT" || { echo 'TEXT is empty: run make predict TEXT="The final tennis tournament starts next week."' >&2; exit 2; }
	$(CLIENT) predict -- "$$NEWS_TEXT"

scale: install ## Set the number of workers and wait until done: make scale WORKERS=3
	@test -n "$$NEWS_WORKERS" || { echo 'WORKERS is empty: run make scale WORKERS=3' >&2; exit 2; }
	$(CLIENT) scale -- "$$NEWS_WORKERS"

# RENEW=inference|management renews that key (everyone holding the old one must re-read the
# key file); API=1 also prints the never-expiring API key.
RENEW ?=
API ?=
keys: install ## Key file path, inference and management keys (API=1: API key; RENEW=inference: renew it)
	@$(NEWS_CNN) keys --workdir "$$NEWS_SERVER_DIR" $${NEWS_RENEW:+--renew "$$NEWS_RENEW"} $${NEWS_API:+--api}

# --- Monitoring: Prometheus beside the server, rules from the model's reference (deploy/prometheus/) ---
.PHONY: monitor monitoring-rules

monitor: install ## Prometheus on 127.0.0.1:9090 beside `make serve`, with the shipped rules, in the foreground (apt-get install prometheus)
	$(PY) -m serving.monitoring serve --config "$$NEWS_SERVER_DIR/config.properties" --workdir logs/prometheus

monitoring-rules: $(MAR) ## Regenerate deploy/prometheus/rules{,_test}.yml and the PrometheusRule from the served archive's reference profile
	$(PY) -m serving.monitoring rules --profile "$$NEWS_MODEL_STORE/news_cnn.mar"

# --- Deploy: embeddings explorer, Docker image, KServe storage (deploy/, training/explore.py) ---
EXPLORE_ARGS ?=
KSERVE_MAR ?= $(MAR)
KSERVE_STORAGE ?= $(MODEL_STORE)/kserve
IMAGE ?= news-cnn-serve

.PHONY: explore kserve-storage docker-image

explore: install ## Explore word vectors: neighbours, analogies, FastText OOV (with DATA), PCA plot (EXPLORE_ARGS="--help")
	$(RUN_WITH_ARGS) NEWS_EXPLORE_ARGS -- $(PY) -m training.explore $${NEWS_DATA:+--data "$$NEWS_DATA"}

kserve-storage: $(MAR) ## Lay out KServe storage (config/config.properties, model-store/news_cnn.mar) in model_store/kserve
	@test -n "$$NEWS_KSERVE_STORAGE" || { echo 'KSERVE_STORAGE is empty: its model-store/ is replaced, so name a directory, e.g. KSERVE_STORAGE=model_store/kserve' >&2; exit 2; }
	$(PY) -m deploy.kserve_storage --mar "$$NEWS_KSERVE_MAR" --out "$$NEWS_KSERVE_STORAGE"

docker-image: $(MAR) ## Build the TorchServe Docker image (deploy/Dockerfile) with the archive: IMAGE=news-cnn-serve
	@command -v docker >/dev/null 2>&1 || { echo "docker is not installed: the image needs a Docker engine (see deploy/Dockerfile)" >&2; exit 1; }
	docker build -f deploy/Dockerfile -t "$$NEWS_IMAGE" .

# --- Bench: benchmarks (bench/) and the reliability suite (tests/reliability/) ---
# BENCH_ARGS="--quick" for a short rough run; SOAK_ARGS: more pytest options, e.g.
# SOAK_ARGS="--soak-size quick" for make test's sizes on the served archive.
BENCH_ARGS ?=
SOAK_ARGS ?=
PROFILE_ARGS ?=
# The default is a small run of the peers' /predictions; PEERS_ARGS="--cases peers,explanations,grid"
# for the full comparison with the batch settings grid (docs/benchmarks.md).
PEERS_ARGS ?= --quick
BENCH_RUN = $(RUN_WITH_ARGS) $(2) -- $(PY) -u -m bench $(1) --mar "$$NEWS_MODEL_STORE/news_cnn.mar" --artifacts "$$NEWS_ARTIFACTS"

.PHONY: bench soak profile wrk bench-peers bench-compare

wrk: ## Make sure wrk (the benchmark's load generator) is installed (apt-get as root)
	@$(PYTHON) scripts/ensure_wrk.py

bench: $(MAR) wrk ## Benchmark vs an echo floor, batching, workers, in-process; writes bench/results.{json,md,png}
	$(call BENCH_RUN,run,NEWS_BENCH_ARGS)

soak: $(MAR) ## Reliability suite at full size (pytest -m soak): load, worker crash, scaling, bad input, auth, graceful stop, bounded memory -> bench/soak.{json,md}
	$(RUN_WITH_ARGS) NEWS_SOAK_ARGS -- $(PY) -m pytest tests -m soak --soak-size full --soak-mar "$$NEWS_MODEL_STORE/news_cnn.mar" --soak-artifacts "$$NEWS_ARTIFACTS" --soak-out bench/soak.json

profile: $(MAR) wrk ## py-spy profile of a worker, CPU per process under load -> bench/profile.txt (PROFILE_ARGS="--path /predictions/echo")
	$(call BENCH_RUN,profile,NEWS_PROFILE_ARGS)

# BASELINE=path/to/old/news_cnn.mar: the served archive against an older one, in one TorchServe.
BASELINE ?=
bench-compare: $(MAR) wrk ## Candidate vs BASELINE=old.mar: /predictions c=16,64 and /explanations -> bench/compare.{json,md}
	@test -n "$$NEWS_BASELINE" || { echo 'BASELINE is empty: run make bench-compare BASELINE=path/to/old/news_cnn.mar' >&2; exit 2; }
	$(call BENCH_RUN,compare --baseline "$$NEWS_BASELINE" $${NEWS_DATA:+--data "$$NEWS_DATA"},NEWS_BENCH_ARGS)

# The peers (FastAPI, uvicorn, Ray Serve, LitServe, BentoML) are installed on demand, never by `make install`, from
# their own hash lock, made against requirements/dev.txt so that it keeps the project's versions.
$(VENV)/.peers-installed: bench/requirements-peers.txt | install
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r bench/requirements-peers.txt
	@touch $@

bench-peers: $(MAR) wrk $(VENV)/.peers-installed ## TorchServe vs FastAPI, Ray Serve, LitServe and BentoML, small run (installs them first) -> bench/peers.{json,md,png}
	$(call BENCH_RUN,peers,NEWS_PEERS_ARGS)

# Last, once every default above is set: the values recipes read (see USER_VARS).
$(foreach v,$(USER_VARS),$(eval export NEWS_$(v) := $$($(v))))
