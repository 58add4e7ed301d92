"""SQL text helpers both warehouses' readers and writers share."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Double-quote an identifier (both warehouses follow the SQL standard here)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal, for the few statements that take no bound
    parameters (DuckDB's ATTACH, a COPY's file name, postgres_query's text)."""
    return "'" + text.replace("'", "''") + "'"


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def pg_placeholders(sql: str) -> str:
    """Our SQL uses `?` placeholders on both warehouses; psycopg wants `%s` (and a literal
    `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")
