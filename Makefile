# The two commands a newcomer needs are `make run` and `make test` (see README.md).
SHELL := /bin/bash
UV := scripts/uv

# Tests run on the real services; override on the command line to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/kfadmin
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test deps lint bench-sync bench-search bench-dashboard

deps:
	$(UV) sync --frozen

## Start kfadmin on its embedded default: SQLite, the embedded broker, the emulator, demo data.
## If one process ends, all stop and scripts/run.py says which one and why.
run: deps
	$(UV) run python manage.py migrate --noinput
	$(UV) run python manage.py demo_setup
	$(UV) run python scripts/run.py -f Procfile

## Run the whole test suite against PostgreSQL and Redis, browser tests included.
test: deps
	scripts/ensure-chromium.sh
	$(UV) run ruff check .
	$(UV) run lint-imports
	$(UV) run mypy
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(UV) run pytest $(PYTEST_ARGS)

lint: deps
	$(UV) run ruff check .
	$(UV) run lint-imports
	$(UV) run mypy
