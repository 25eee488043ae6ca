# One entry point for people and CI. `make test` and `make up` set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default. A GPU user picks another build, e.g.
#   make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
MEMBERS := $(wildcard packages/*/pyproject.toml) $(wildcard services/*/pyproject.toml)
EXTRAS := dev,bench
STAMP := $(VENV)/.setup-stamp
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup test test-slow lint typecheck up down bench-core bench-news bench-support bench-recommend bench clean

setup: $(STAMP)

$(STAMP): $(MEMBERS) Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -q $(foreach m,$(MEMBERS),-e "./$(patsubst %/,%,$(dir $(m)))[bench]") -r requirements-dev.txt
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy packages/*/src services/*/src

test: setup lint typecheck
	$(BIN)/pytest -q

up: setup
	$(BIN)/verticals up

down:
	$(BIN)/verticals down

test-slow: setup
	$(BIN)/pytest -q -m slow

bench-core: setup
	$(BIN)/python bench/core.py

clean:
	rm -rf $(VENV) var

bench-news: setup
	$(BIN)/python bench/news_monitor.py

bench-support: setup
	$(BIN)/python bench/support_bot.py

bench-recommend: setup
	$(BIN)/python bench/recommender.py

bench: bench-core bench-news bench-support bench-recommend
