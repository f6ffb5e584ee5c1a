# The front door. `make` alone lists the targets.
# The stand-in base images of docker/offline/ (built by `make offline-images`, no
# registry needed) are used whenever they exist; OFFLINE=0 forces the official ones,
# OFFLINE=1 insists on the stand-ins.

COMPOSE ?= docker compose
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SERVICE ?= worker-cpu
N       ?= 2
ITEMS   ?= 1000000
# The lock compiler: hashed pins for every platform and Python >= 3.11 (the offline image
# is 3.11.2, the official one 3.12). Run from the venv, where requirements-dev.in pins uv.
LOCK    = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
          --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)

STANDIN_PYTHON := $(shell sed -n 's/^PYTHON_IMAGE=//p' docker/offline/images.env)
OFFLINE ?= $(shell docker image inspect $(STANDIN_PYTHON) >/dev/null 2>&1 && echo 1)
ifeq ($(OFFLINE),1)
include docker/offline/images.env
export PYTHON_IMAGE REDIS_IMAGE POSTGRES_IMAGE
endif
#: Printed when a compose command fails before any image could be pulled.
REGISTRY_HINT := echo "make: if the error above is a registry or DNS error, run 'make offline-images' once; every target then uses the stand-ins" >&2; exit 1

.DEFAULT_GOAL := help
.PHONY: help up up-prod down-prod down clean logs ps scale demo queues test test-unit test-integration \
        test-stack test-faults test-swarm bench bench-mapreduce lint format offline-images venv lock

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}'

up: ## Build and start the whole deployment, wait until healthy
	$(COMPOSE) up -d --build --wait || { $(REGISTRY_HINT); }

# The production profile (compose.prod.yml), as its own project with its own volumes
# (Postgres creates its roles on a fresh volume): missing secrets are generated in
# SECRETS_DIR; base images are pinned when docker/prod/images.env exists (scripts/pin-images.sh).
SECRETS_DIR  ?= ./secrets
PROD_PROJECT ?= celeryref-prod
PROD_IMAGES  := $(if $(filter 1,$(OFFLINE)),,$(wildcard docker/prod/images.env))
PROD_COMPOSE  = SECRETS_DIR=$(SECRETS_DIR) $(COMPOSE) -p $(PROD_PROJECT) -f docker-compose.yml -f compose.prod.yml
up-prod: ## Start the production profile (hardened, least privilege, secrets in SECRETS_DIR)
	bash scripts/prod-secrets.sh $(SECRETS_DIR)
	$(if $(PROD_IMAGES),set -a && . ./$(PROD_IMAGES) && set +a &&) \
	  $(PROD_COMPOSE) up -d --build --wait || { $(REGISTRY_HINT); }

down-prod: ## Stop and remove the production profile's containers (volumes are kept)
	$(PROD_COMPOSE) down

down: ## Stop and remove the containers (volumes are kept)
	$(COMPOSE) down

clean: ## Stop and remove containers AND volumes (queued tasks, data)
	$(COMPOSE) down -v --remove-orphans

logs: ## Follow the logs of every service
	$(COMPOSE) logs -f --tail=100

ps: ## Show services, state and health
	$(COMPOSE) ps -a

scale: ## Scale a worker service: make scale SERVICE=worker-cpu N=3
	$(COMPOSE) up -d --wait --no-recreate --scale $(SERVICE)=$(N)

demo: ## A task on every queue, then every pattern (canvas, workflow, map-reduce job), checked (stack must be up)
	$(COMPOSE) exec -T app python -m celeryref.client demo

queues: ## Print the waiting messages per queue (the scaling signal)
	$(COMPOSE) exec -T app python -m celeryref.client queues

$(BIN)/pytest: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

$(VENV)/.bench-installed: requirements-bench.txt $(BIN)/pytest
	$(BIN)/pip install --quiet --require-hashes -r requirements-bench.txt
	touch $@

venv: $(BIN)/pytest ## Create the host virtualenv with the test tools

lock: $(BIN)/pytest ## Recompile the hashed locks requirements*.txt from requirements*.in (UPGRADE=1: newest allowed)
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) requirements-bench.in -o requirements-bench.txt

lint: $(BIN)/pytest ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check celeryref bench devtools tests
	$(BIN)/ruff format --check celeryref bench devtools tests
	$(BIN)/mypy

format: $(BIN)/pytest ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix celeryref bench devtools tests
	$(BIN)/ruff format celeryref bench devtools tests

test: lint ## The whole suite: lint, unit, integration, stack and swarm tiers (needs Docker)
	$(BIN)/pytest tests/unit
	$(BIN)/pytest tests/integration
	$(BIN)/pytest tests/stack --ignore-glob='tests/stack/test_faults_*'
	$(BIN)/pytest -rxX tests/stack/test_faults_workers.py tests/stack/test_faults_input.py \
	  tests/stack/test_faults_infra.py tests/stack/test_faults_load.py
# Last: entering/leaving Swarm mode breaks DNS on bridge networks created before it.
	$(BIN)/pytest tests/swarm

test-unit: $(BIN)/pytest ## Unit tier only (nothing running)
	$(BIN)/pytest tests/unit

test-integration: $(BIN)/pytest ## Integration tier (real Redis/Postgres, in-process workers)
	$(BIN)/pytest tests/integration

test-stack: $(BIN)/pytest ## Stack tier (the real compose deployment in Docker)
	$(BIN)/pytest tests/stack

test-faults: $(BIN)/pytest ## Fault/shutdown/bad-input drills in real Docker (docs/RELIABILITY.md)
	$(BIN)/pytest tests/stack/test_faults_workers.py tests/stack/test_faults_infra.py \
	  tests/stack/test_faults_input.py tests/stack/test_faults_load.py

test-swarm: $(BIN)/pytest ## Swarm tier: the stack on a single-node swarm (init, deploy, scale, rolling update; leaves it)
	$(BIN)/pytest tests/swarm

bench: $(VENV)/.bench-installed ## Deployment vs plain Celery defaults, 9 workloads -> docs/BENCHMARKS.md (QUICK=1 | MEDIUM=1, ONLY=...)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(if $(MEDIUM),--medium) $(if $(ONLY),--only $(ONLY))

bench-mapreduce: $(VENV)/.bench-installed ## Map-reduce benchmark: 1M items, 1 and 2 worker-cpu vs reference vs naive
	$(BIN)/python -m bench.mapreduce.run --items $(ITEMS) --repeat 2

offline-images: ## Build the stand-in base images from Debian packages (air-gapped)
	bash docker/offline/build-images.sh
