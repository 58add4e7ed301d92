"""The ERP's CRM tables, read from their one declaration: the dbt sources file
`dbt_project/models/staging/_erp__sources.yml` (columns and types as `crm-erd.md` has them,
spellings included — `dicount_calculation`, `order` — plus key, cursor, required or optional,
and the ERD's secondary indexes).

The sync takes its table list, cursors and drift check from here, the demo generator its
`CREATE TABLE`s, the tests their fixtures. The sync copies whatever columns the source really
has, so extra columns never break it. The file is read once, on first use (a few KB of YAML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

SOURCES_FILE = (Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging"
                / "_erp__sources.yml")

_TYPE = re.compile(r"(?P<name>[a-z ]+?)\s*(?:\((?P<p>\d+)\s*(?:,\s*(?P<s>\d+))?\))?")


@dataclass(frozen=True)
class ErpColumn:
    name: str
    data_type: str
    not_null: bool = False


@dataclass(frozen=True)
class ErpTable:
    """One ERP table as declared: what the sync, the generator and the tests need."""

    name: str
    columns: tuple[ErpColumn, ...]
    required: bool
    key: str
    cursor: str | None
    indexes: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns)


@cache
def erp_tables() -> dict[str, ErpTable]:
    """Every ERP table, in the declaration's order."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(SOURCES_FILE.read_text(encoding="utf-8"), Loader=loader)
    (source,) = [s for s in doc["sources"] if s["name"] == "raw"]
    tables = {}
    for t in source["tables"]:
        meta: dict[str, Any] = (t.get("config") or {}).get("meta") or {}
        columns = tuple(
            ErpColumn(c["name"], c["data_type"],
                      bool(((c.get("config") or {}).get("meta") or {}).get("not_null")))
            for c in t["columns"])
        tables[t["name"]] = ErpTable(
            t["name"], columns, bool(meta["required"]), meta["key"], meta.get("cursor"),
            tuple((meta.get("indexes") or {}).items()))
    return tables


def __getattr__(name: str) -> tuple[str, ...]:
    """`REQUIRED_TABLES` (the pipeline cannot work without them, docs/contract.md section 2),
    `OPTIONAL_TABLES` (used when present; when the source lacks them the sync lands them
    empty) and `SOURCE_TABLES` (both), read lazily from the declaration."""
    tables = erp_tables().values()
    if name == "REQUIRED_TABLES":
        return tuple(t.name for t in tables if t.required)
    if name == "OPTIONAL_TABLES":
        return tuple(t.name for t in tables if not t.required)
    if name == "SOURCE_TABLES":
        return (tuple(t.name for t in tables if t.required)
                + tuple(t.name for t in tables if not t.required))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sql_type(data_type: str) -> TypeEngine[Any]:
    """The SQLAlchemy type of a declared `data_type` (`integer`, `numeric(14,2)`, …)."""
    match = _TYPE.fullmatch(data_type.strip().lower())
    if match is None:
        raise ValueError(f"unknown data_type {data_type!r}")
    name, p, s = match["name"], match["p"], match["s"]
    if name == "integer":
        return Integer()
    if name == "bigint":
        return BigInteger()
    if name == "numeric":
        return Numeric(int(p), int(s or 0), asdecimal=True)
    if name == "varchar":
        return String(int(p)) if p else String()
    if name == "text":
        return Text()
    if name == "boolean":
        return Boolean()
    if name == "date":
        return Date()
    if name in ("timestamptz", "timestamp with time zone"):
        return DateTime(timezone=True)
    if name == "timestamp":
        return DateTime()
    raise ValueError(f"unknown data_type {data_type!r}")


def build_metadata(schema: str | None = None) -> MetaData:
    """A fresh `MetaData` with every ERP table, optionally in `schema` (PostgreSQL)."""
    md = MetaData(schema=schema)
    for table in erp_tables().values():
        Table(table.name, md, *(
            Column(c.name, sql_type(c.data_type), primary_key=c.name == table.key,
                   autoincrement=False if c.name == table.key else "auto",
                   nullable=not c.not_null if c.name != table.key else False)
            for c in table.columns))
    return md


def erd_indexes(md: MetaData) -> list[Index]:
    """The ERD's secondary indexes as SQLAlchemy indexes on the tables of `md` (create them
    with `index.create(connection)`). The ERP has them, so the generator builds them too
    (after loading, which is faster than loading into them); the sync's cursor reads
    (`updated_at >= …`) rely on `idx_*_updated_at` as they would in production."""
    tables = erp_tables()
    return [Index(name, table.c[column])
            for table in md.tables.values() if table.name in tables
            for name, column in tables[table.name].indexes]
