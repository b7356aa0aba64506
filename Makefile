# The two commands: `make run` (demo on SQLite, in-process tasks) and `make test` (lint, types, tests).
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install run test test-dates lint worker beat bench bench-smoke mutation serve migrate collectstatic preflight install-production

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) node_modules/.package-lock.json
	$(UV) sync --frozen --python $(PYTHON) --quiet

# axe-core for the accessibility browser tests (package.json, package-lock.json), installed again only
# when either changed: npm writes node_modules/.package-lock.json, the stamp. Without npm the demo still
# runs; the accessibility tests then skip outside CI and fail in it.
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund && touch $@; \
	else echo "npm not found: axe-core not installed (only the accessibility tests need it)"; fi

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
	.venv/bin/lint-imports

test: lint
	.venv/bin/pytest

# The tests marked date_sensitive again, each under a frozen instant: a month end, a leap day, and the
# repeated hour of the night the clocks go back (01:30 BST, before the second 01:00 GMT).
DATE_SENSITIVE_INSTANTS := 2027-01-31T23:30:00+00:00 2028-02-29T12:00:00+00:00 2026-10-25T01:30:00+01:00
test-dates: install
	@set -e; for instant in $(DATE_SENSITIVE_INSTANTS); do \
	  echo "date-sensitive tests at $$instant"; \
	  FUSION_TEST_NOW=$$instant .venv/bin/pytest -q -p no:cacheprovider -m date_sensitive; \
	done

# Celery: one queue per kind of work (CELERY_TASK_ROUTES in fusion_site/settings.py). `make worker` consumes
# them all; a deployment gives a kind its own workers with e.g. `make worker QUEUES=imports`.
QUEUES ?= imports,bill_runs,privacy,mail,default

worker: install
	.venv/bin/celery -A fusion_site worker --queues=$(QUEUES) --loglevel=INFO

beat: install
	.venv/bin/celery -A fusion_site beat --loglevel=INFO

# Production (deploy/GUIDE.md): the settings with DJANGO_DEBUG=false, which refuse to load without the
# secrets and keys; PostgreSQL, Redis and the broker from the environment or .env. `make serve` never
# migrates: it refuses to start while a migration is unapplied (`make migrate` first, on purpose).
# These targets install nothing when .venv exists, so a production machine keeps `make install-production`.
PRODUCTION_ENV := DJANGO_DEBUG=false

$(PY):
	$(MAKE) install

# A production machine installs the runtime dependencies only (no test, lint or browser tools).
install-production: $(UV)
	$(UV) sync --frozen --no-dev --python $(PYTHON) --quiet

migrate: $(PY)
	$(PRODUCTION_ENV) $(PY) manage.py migrate --noinput

collectstatic: $(PY)
	$(PRODUCTION_ENV) $(PY) manage.py collectstatic --noinput

preflight: $(PY)
	$(PRODUCTION_ENV) $(PY) manage.py check --deploy --fail-level WARNING
	$(PRODUCTION_ENV) $(PY) manage.py preflight

serve: collectstatic preflight
	$(PRODUCTION_ENV) .venv/bin/gunicorn --config deploy/gunicorn_conf.py

BENCHES := bench/site_details.py bench/bill_run.py bench/privacy_erasure.py bench/privacy_export.py bench/retention.py bench/payments.py bench/load.py

bench: install
	@set -e; for script in $(BENCHES); do $(PY) $$script; done

# Every bench at a size that runs in seconds (CI runs this), so a bench that breaks fails.
bench-smoke: install
	@set -e; for script in $(BENCHES); do echo "$$script --smoke"; $(PY) $$script --smoke; done

# Mutation testing of the rule modules ([tool.mutmut] in pyproject.toml lists them and their tests), then
# the verdict: at least 90% of mutants killed and every survivor explained in tools/mutation.toml. Not in
# CI (about 15 minutes). One test process at a time, on a test database kept between mutants (--reuse-db)
# rather than migrated afresh for each one.
mutation: install
	rm -rf mutants .local/mutation-test.sqlite3
	mkdir -p .local
	DATABASE_TEST_NAME=$(CURDIR)/.local/mutation-test.sqlite3 .venv/bin/mutmut run --max-children 1
	$(PY) tools/mutation_report.py
