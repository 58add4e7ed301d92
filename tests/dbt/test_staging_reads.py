"""The sync's drift check stops when the source lost a declared ERP column
(`ingestion/erp/schema.py`), because staging reads exactly the declared columns. This proves it
from the compiled dbt project: each `stg_erp__<table>` model's compiled SQL from the manifest,
parsed by sqlglot, with every column resolved to the CTE it is read from; the columns read
from the `source` CTE (`select * from {{ source(...) }}`) are the ERP columns staging needs.
However a model is written (casts, macros, quoted names, expressions), the parse sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from ingestion.erp.schema import erp_tables
from tests.helpers.dbt import run_dbt


def columns_read_from(sql: str, cte: str) -> set[str]:
    """The column names the query reads from the CTE named `cte`."""
    found = set()
    for scope in traverse_scope(sqlglot.parse_one(sql, read="duckdb")):
        # alias -> the table expression it names (a CTE is referenced as a table)
        tables = {alias: node for alias, (node, _) in scope.selected_sources.items()}
        for column in scope.columns:
            alias = column.table or (next(iter(tables)) if len(tables) == 1 else "")
            node = tables.get(alias)
            if isinstance(node, exp.Table) and not node.db and node.name == cte:
                found.add(column.name)
    return found


@pytest.fixture(scope="module")
def compiled_staging(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`stg_erp__<table>` -> its compiled SQL, from `dbt compile`'s manifest."""
    work = tmp_path_factory.mktemp("staging_reads")
    proc = run_dbt(["compile", "--select", "path:dbt_project/models/staging",
                    "--target-path", str(work / "target")],
                   {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(work / "wh.duckdb"),
                    "DBT_LOG_PATH": str(work / "logs")})
    assert proc.returncode == 0, proc.stdout[-3000:]
    manifest = json.loads(Path(work / "target" / "manifest.json").read_text())
    return {node["name"]: node["compiled_code"] for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["name"].startswith("stg_erp__")}


def test_every_declared_table_has_a_staging_model(compiled_staging: dict[str, str]) -> None:
    assert sorted(compiled_staging) == sorted(f"stg_erp__{t}" for t in erp_tables())


@pytest.mark.parametrize("table", sorted(erp_tables()))
def test_staging_reads_exactly_the_declared_columns(compiled_staging: dict[str, str],
                                                    table: str) -> None:
    read = columns_read_from(compiled_staging[f"stg_erp__{table}"], "source")
    assert read == set(erp_tables()[table].column_names)


def test_the_parse_sees_columns_however_they_are_written() -> None:
    sql = """with source as (select * from raw.t),
             renamed as (select cast(a as int) as x, lower(trim("order")) as o,
                                case when b > 0 then c end as y, source.d from source)
             select x, o from renamed"""
    assert columns_read_from(sql, "source") == {"a", "order", "b", "c", "d"}
