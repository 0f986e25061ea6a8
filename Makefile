# Shiplight — every command creates .venv at the repo root and installs the locked
# dependencies on first use, then always runs .venv/bin/python (the machine's global
# Python may carry other versions of moto and boto3).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt shared/requirements.txt pyproject.toml | sha1sum | cut -c1-12)

SAM_VENV := .tools/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(shell sha1sum tools/sam-requirements.txt | cut -c1-12)
SAM := $(SAM_VENV)/bin/sam
CFN_LINT := $(SAM_VENV)/bin/cfn-lint
# sam build needs a python3.12 interpreter on PATH for the python3.12 runtime (no Docker here).
PY312 := $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v "$$p" || echo "$$p"; } && break; done)

.PHONY: help install demo test test-unit test-integration test-e2e lint format typecheck validate build bench lock clean

help: ## Show the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt shared/requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

install: $(STAMP) ## Create .venv and install the locked dependencies

demo: $(STAMP) ## Run the demo on the embedded local stack (Ctrl-C to stop serving)
	$(VENV)/bin/shiplight demo

test: $(STAMP) ## Run the whole test suite (unit, integration, e2e)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

lint: $(STAMP) ## ruff (lint + format check) and the import-layer contracts
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(STAMP) ## mypy (strict, pydantic plugin)
	$(PY) -m mypy

$(SAM_STAMP): tools/sam-requirements.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@rm -f $(SAM_VENV)/.installed-*
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(SAM_VENV)/bin/python -m pip install --quiet --require-hashes -r tools/sam-requirements.txt
	@touch $@

validate: $(SAM_STAMP) ## cfn-lint and sam validate --lint on template.yaml
	$(CFN_LINT) template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template-file template.yaml

build: $(SAM_STAMP) ## sam build without Docker (python3.12 from pyenv)
	@test -n "$(PY312)" || { echo "python3.12 is needed on PATH for sam build" >&2; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM) build --template-file template.yaml

bench: $(STAMP) ## Print the benchmark figures and write bench-results.json
	$(PY) -m infra.bench

lock: ## Re-resolve the locks (needs network): shared/requirements.txt, requirements-dev.txt, tools/sam-requirements.txt
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header -o shared/requirements.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -c shared/requirements.txt --universal --python-version 3.11 --generate-hashes --no-header -o requirements-dev.txt
	$(VENV)/bin/uv pip compile tools/sam.in --python-version 3.11 --generate-hashes --no-header -o tools/sam-requirements.txt

clean: ## Remove build output and caches (keeps .venv)
	rm -rf .aws-sam .shiplight .pytest_cache .mypy_cache .ruff_cache .hypothesis bench-results.json
