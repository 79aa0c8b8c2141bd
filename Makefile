# Parley: `make run` serves on http://127.0.0.1:8000, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# The second pass of the suite runs the integration tests on these services.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/parley
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test test-unit test-integration test-faults lint format bench bench-relay bench-upstream bench-keepalive bench-long-chat bench-markdown screenshots simulator clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py collectstatic --noinput -v0
	DEBUG=$${DEBUG:-true} $(BIN)/daphne -b $(HOST) -p $(PORT) project.asgi:application

test: install lint test-unit test-integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest

test-integration: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest -m integration

test-faults: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -m faults

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m tests.benchmarks.reply_cost

bench-long-chat: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m tests.benchmarks.long_chat

bench-upstream: install
	$(BIN)/python -m tests.benchmarks.upstream

bench-keepalive: install
	$(BIN)/python -m tests.benchmarks.keepalive

bench-markdown: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m tests.benchmarks.streaming_markdown

bench-relay: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m tests.benchmarks.relay --steps 10,50,100,150

screenshots: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m tests.screenshots

simulator: install
	$(BIN)/python -m providers.simulator --port 8765

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
