# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
RUNTIME_STAMP = $(VENV)/.installed-runtime

.PHONY: demo test test-spark soak install lint sqllint docs dashboard clean

# `make demo` installs what running needs, with pip's progress; `make test` (and lint, soak,
# sqllint) add the dev extras (pytest, ruff, playwright, sqlfluff, metricflow, hypothesis).
$(RUNTIME_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11+ is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/crm-analytics demo

# The Spark warehouse (docs/spark.md): pyspark, dbt-spark and a Java runtime. `make test` runs
# the whole pipeline on an in-process Spark at `small`, dbt's unit tests on it and dbt through
# a local Thrift server (4.3 minutes of CI's pytest time on a 2-core machine, BENCHMARKS.md);
# `make test-spark` runs every Spark test (also the full build compared relation by relation, the pipeline through Thrift,
# a failed build and the day after: 20–30 minutes on an idle 2-core machine).
SPARK_STAMP = $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,spark]'
	@touch $(SPARK_STAMP)

# -n: two workers (TEST_WORKERS), each taking whole files (--dist loadfile) so a module's
# shared warehouse is built once. Most tests wait on one dbt or pipeline process using one core.
# --no-loadscope-reorder: files go out in tests/conftest.py's order (the long ones first), not
# by their number of tests.
# --durations: CI's log names the slowest tests, so a slower suite can be traced to its cause.
# --timeout: the slowest test takes about 3 minutes on an idle 2-core machine; one past 20 is
# hung, and fails with its stack instead of stalling CI.
TEST_WORKERS ?= 2
test: $(SPARK_STAMP)
	$(BIN)/python -m pytest -m "not soak and not spark_full" -n $(TEST_WORKERS) --dist loadfile \
		--no-loadscope-reorder --durations=20 --timeout=1200 $(PYTEST_ARGS)

test-spark: $(SPARK_STAMP)
	CRM_REQUIRE_SPARK=1 $(BIN)/python -m pytest -m spark $(PYTEST_ARGS)

# The long reliability and load cases (RELIABILITY.md): repeated faults, 20 dashboard sessions.
# The property-based bad-input cases run again there with the larger hypothesis profile.
soak: $(STAMP)
	CRM_HYPOTHESIS_PROFILE=soak $(BIN)/python -m pytest -m "soak or hypothesis" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# SQL style of every dbt model, macro, snapshot and test (.sqlfluff; dbt templater)
sqllint: $(STAMP)
	CRM_DUCKDB_PATH=target/sqlfluff.duckdb $(BIN)/sqlfluff lint dbt_project

# dbt's documentation site (target/index.html, and target/static_index.html as one file).
# The catalog needs a built warehouse: the demo's when there is one, else a small one built
# here from a generated two-week ERP (target/docs_build/), so it works from a fresh clone.
DOCS_BUILD = target/docs_build
DOCS_WAREHOUSE = $(if $(wildcard data/warehouse.duckdb),data/warehouse.duckdb,$(DOCS_BUILD)/warehouse.duckdb)
docs: $(STAMP)
	@if [ ! -f "$(DOCS_WAREHOUSE)" ]; then \
		echo "no warehouse yet: building a small one in $(DOCS_BUILD) for the docs catalog"; \
		mkdir -p $(DOCS_BUILD) && \
		export CRM_SOURCE_URL=sqlite:///$(DOCS_BUILD)/erp.sqlite \
			CRM_EVENTS_PATH=$(DOCS_BUILD)/events \
			CRM_WAREHOUSE_URL=duckdb:///$(DOCS_BUILD)/warehouse.duckdb && \
		$(BIN)/crm-analytics generate --days 14 --quiet && \
		$(BIN)/crm-analytics run || exit 1; \
	fi
	CRM_DBT_TARGET=duckdb CRM_DUCKDB_PATH=$(DOCS_WAREHOUSE) \
		$(BIN)/dbt docs generate --profiles-dir . --static
	@echo "docs: open target/static_index.html, or run: $(BIN)/dbt docs serve --profiles-dir ."

dashboard: $(RUNTIME_STAMP)
	$(BIN)/crm-analytics dashboard

clean:
	rm -rf target logs data
