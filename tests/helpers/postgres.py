"""The PostgreSQL test server: a real server (or a clear skip), scratch databases, URLs.

PostgreSQL tests skip with a reason when no server answers, unless `CRM_REQUIRE_POSTGRES=1`
(set by `.ci/run`), in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

PG_HOST = os.environ.get("CRM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CRM_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CRM_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("CRM_TEST_PG_PASSWORD", "")


def pg_conninfo(dbname: str = "postgres") -> str:
    info = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=3"
    return info + (f" password={PG_PASSWORD}" if PG_PASSWORD else "")


def pg_url(dbname: str, driver: str = "postgresql+psycopg") -> str:
    """A SQLAlchemy-style URL for a database on the test server."""
    auth = PG_USER + (f":{PG_PASSWORD}" if PG_PASSWORD else "")
    return f"{driver}://{auth}@{PG_HOST}:{PG_PORT}/{dbname}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin conninfo of a live PostgreSQL server, or skip (fail under CI) without one."""
    try:
        with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server at {PG_HOST}:{PG_PORT} ({type(exc).__name__})"
        if os.environ.get("CRM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CRM_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return pg_conninfo()


@pytest.fixture
def make_pg_database(postgres_server: str) -> Iterator[Callable[[str], str]]:
    """Factory: `make_pg_database("prefix")` creates an empty database and returns its name.
    Every database made is dropped at the end of the test."""
    created: list[str] = []

    def _make(prefix: str = "crm_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        created.append(name)
        return name

    yield _make
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        for name in created:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def module_pg_database(postgres_server: str) -> Iterator[str]:
    """A fresh database for a whole module (`pg_database` is per test; one pipeline or dbt
    build per warehouse is enough for a module); dropped afterwards."""
    name = f"crm_mod_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield name
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """CRM_WAREHOUSE_URL of an empty warehouse: a DuckDB file in `tmp_path`, then a fresh
    PostgreSQL database (dropped afterwards) — a test using it runs on both."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/wh.duckdb"
    return pg_url(request.getfixturevalue("make_pg_database")("crm_wh"), driver="postgresql")


def dbt_postgres_env(dbname: str) -> dict[str, str]:
    """The variables `profiles.yml`'s postgres target reads, for a database on the test
    server."""
    return {"CRM_DBT_TARGET": "postgres", "CRM_PG_HOST": PG_HOST, "CRM_PG_PORT": str(PG_PORT),
            "CRM_PG_USER": PG_USER, "CRM_PG_DBNAME": dbname,
            "DBT_ENV_SECRET_CRM_PG_PASSWORD": PG_PASSWORD}


@pytest.fixture
def pg_database(make_pg_database: Callable[[str], str]) -> str:
    """One fresh, empty PostgreSQL database for this test (dropped afterwards)."""
    return make_pg_database("crm_test")


