"""Registers the shared fixtures (tests/helpers) and the hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.helpers.cli",        # `run_world`: a generated world with one `crm-analytics run`
    "tests.helpers.postgres",   # the PostgreSQL server, scratch databases, `warehouse_url`
    "tests.helpers.dashboard",  # the dashboards' pipeline-built warehouse, page runner, truth
    "tests.helpers.faults",     # the fault tests' generated ERP and reference warehouse
    "tests.helpers.logical_pg",  # a private wal_level=logical cluster (CDC tests)
    "tests.helpers.cdc",        # an ERP database on it, for the CDC sync
    "tests.helpers.spark",      # `spark_world`: the DuckDB reference of the Spark tests
]

# Hypothesis profiles for the property-based bad-input cases: a modest one for `make test`, a
# larger one for `make soak`. `CRM_HYPOTHESIS_PROFILE` picks one (default "fast"); no deadline,
# because this machine is shared and a slow example is not a failure.
settings.register_profile(
    "fast", max_examples=30, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.register_profile(
    "soak", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.load_profile(os.environ.get("CRM_HYPOTHESIS_PROFILE", "fast"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding `spark` or `slow` tests first (Spark's first of all), the rest in their
    usual order. `make test` hands whole modules to two workers in this order; starting the
    longest ones early keeps one worker from running a 7-minute module alone at the end."""
    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("spark"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    first: dict[object, int] = {}
    for item in items:
        first[item.path] = min(first.get(item.path, 2), weight(item))
    items.sort(key=lambda item: first[item.path])
