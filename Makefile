# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Every worker's metrics in one folder, emptied at each start (docs/OPERATIONS.md).
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus

.PHONY: run test lint format worker migrate install install-dev bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

.env:
	cp .env.example .env

migrate: install .env
	$(BIN)/python manage.py migrate --noinput

run: migrate
	mkdir -p $(PROMETHEUS_MULTIPROC_DIR) && rm -f $(PROMETHEUS_MULTIPROC_DIR)/*.db
	PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_MULTIPROC_DIR) $(BIN)/uvicorn smartspec.asgi:application --host $(HOST) --port $(PORT) --loop uvloop --http httptools

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A worker with the beat scheduler embedded (one host); needs REDIS_URL. Beat keeps its state under var/.
worker: migrate
	$(BIN)/celery -A smartspec worker --beat --schedule=var/celerybeat-schedule --loglevel=INFO

# Benchmarks (run by hand; needs PostgreSQL and Redis): prints a table, writes benchmarks/results/latest.json.
# The first run installs LiteLLM's proxy (the comparison) into its own venv, var/bench-litellm-venv.
bench: install-dev
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m benchmarks.run
