# The two commands: `make run` (demo on SQLite, in-process tasks) and `make test` (lint, types, tests).
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install run test lint worker beat bench

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --python $(PYTHON) --quiet

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_billing_demo
	$(PY) manage.py seed_privacy_demo
	@echo "Open http://127.0.0.1:8000/ and log in with one of the accounts above; the public website is /site/."
	$(PY) manage.py runserver 127.0.0.1:8000

lint: install
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/mypy .

test: lint
	.venv/bin/pytest

worker: install
	.venv/bin/celery -A fusion_site worker --loglevel=INFO

beat: install
	.venv/bin/celery -A fusion_site beat --loglevel=INFO

bench: install
	$(PY) bench/site_details.py
	$(PY) bench/bill_run.py
	$(PY) bench/privacy_erasure.py
	$(PY) bench/privacy_export.py
	$(PY) bench/retention.py
