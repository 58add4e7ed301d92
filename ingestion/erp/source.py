"""Reading the ERP's operational database through SQLAlchemy, as Arrow record batches.

This is the generic path (SQLite, MySQL, PostgreSQL…). It opens the source read-only, reads every
table in one consistent snapshot, and maps the reflected column types to Arrow types so the
warehouse gets real decimals, timestamps and booleans. Columns are whatever the source has, so
extra columns come along and never break the sync.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from crm_core.errors import CrmError, first_line, missing_database
from crm_core.urls import redact_url
from ingestion.erp.schema import OPTIONAL_TABLES, REQUIRED_TABLES

#: Rows per Arrow batch: bounded memory whatever the table size.
BATCH_ROWS = 50_000
#: Statement timeout on the source (ms): a sync never holds the ERP's database hostage.
STATEMENT_TIMEOUT_MS = 15 * 60 * 1000
APPLICATION_NAME = "crm-analytics-sync"


def arrow_type(sql_type: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type a reflected column lands as. Unknown types land as text."""
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.Integer):
        return pa.int64()
    if isinstance(sql_type, sa.Float):
        return pa.float64()
    if isinstance(sql_type, sa.Numeric):
        precision = sql_type.precision or 38
        scale = sql_type.scale if sql_type.scale is not None else (10 if precision == 38 else 0)
        return pa.decimal128(min(precision, 38), scale)
    if isinstance(sql_type, sa.DateTime):
        # Timestamps land as UTC instants. A naive source value (SQLite has no time zones)
        # is taken to be UTC, which is how the ERP writes them.
        return pa.timestamp("us", tz="UTC")
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    return pa.string()


@dataclass(frozen=True)
class SourceTable:
    name: str
    table: sa.Table
    schema: pa.Schema

    @property
    def key(self) -> str | None:
        """The single-column primary key, if the source declares one."""
        keys = [c.name for c in self.table.primary_key.columns]
        return keys[0] if len(keys) == 1 else None

    def columns(self) -> list[tuple[str, str]]:
        """(name, source type) of every column, in order: what schema drift is checked on."""
        return [(c.name, repr(c.type)) for c in self.table.columns]


def session_options(timeout_ms: int) -> str:
    """libpq `options` of every source session (SQLAlchemy's, DuckDB's scan, `psql` children):
    read-only, the statement timeout, and no idle-in-transaction timeout — a sync holds its
    snapshot open, idle, while other sessions copy tables, and a server-side idle timeout
    would end it mid-sync."""
    return (f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} "
            "-c idle_in_transaction_session_timeout=0")


def _connect_args(url: sa.URL, timeout_ms: int) -> dict[str, object]:
    if url.get_backend_name() == "postgresql":
        return {
            "application_name": APPLICATION_NAME,
            "options": session_options(timeout_ms),
            "connect_timeout": 10,
        }
    return {}


def _readonly_url(url: sa.URL) -> sa.URL:
    """SQLite opened read-only (`mode=ro`), so the pipeline cannot write to the ERP."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.set(database=f"file:{url.database}?mode=ro",
                       query={**url.query, "uri": "true"})
    return url


def require_sqlite_file(url: sa.URL | str, display_url: str | None = None) -> None:
    """A SQLite source must be an existing file: opening a missing one would create it."""
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except ArgumentError:
            return  # reported, with the URL's problem, when the source is opened
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        from pathlib import Path

        if not Path(url.database).is_file():
            shown = display_url or str(url)  # str() masks the password
            raise CrmError(f"source database {shown} does not exist "
                           "(run `crm-analytics generate` for demo data)")


class ErpSource:
    """The ERP database, opened read-only. Use as a context manager."""

    def __init__(self, url: str, schema: str | None,
                 statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> None:
        self.display_url = redact_url(url)
        #: Every source connection (SQLAlchemy, DuckDB's scan, piped COPY) sets this timeout.
        self.statement_timeout_ms = statement_timeout_ms
        try:
            parsed = sa.make_url(url)
        except ArgumentError:
            raise CrmError(f"CRM_SOURCE_URL: malformed URL {self.display_url!r}") from None
        self.backend = parsed.get_backend_name()
        self.schema = schema if self.backend == "postgresql" else None
        require_sqlite_file(parsed, self.display_url)
        try:
            self.engine: Engine = sa.create_engine(
                _readonly_url(parsed), connect_args=_connect_args(parsed, statement_timeout_ms),
                poolclass=sa.NullPool,
            )
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise CrmError(f"CRM_SOURCE_URL {self.display_url!r} is not usable: "
                           f"{first_line(exc)}") from None

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read-only connection and transaction: every table is read from the same snapshot
        (REPEATABLE READ on PostgreSQL), so a deal never points at a lead read a moment later."""
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            url = self.engine.url
            raise CrmError(missing_database(exc.orig or exc, f"source {self.display_url}",
                                            host=url.host or "localhost", port=url.port or 5432,
                                            user=url.username or "postgres")
                           or f"source {self.display_url} is unreachable: "
                              f"{first_line(exc.orig or exc)}") from None
        try:
            if self.backend == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def tables(self, conn: Connection) -> list[SourceTable]:
        """The ERP tables present (required ones checked), reflected with their real columns."""
        try:
            present = set(sa.inspect(conn).get_table_names(schema=self.schema))
        except SQLAlchemyError as exc:
            raise CrmError(f"source {self.display_url}: cannot list tables: "
                           f"{first_line(exc.orig or exc)}") from None
        missing = [t for t in REQUIRED_TABLES if t not in present]
        if missing:
            where = f" (schema {self.schema!r})" if self.schema else ""
            raise CrmError(f"source {self.display_url}{where} is missing required "
                           f"table(s): {', '.join(missing)}")
        names = REQUIRED_TABLES + tuple(t for t in OPTIONAL_TABLES if t in present)
        md = sa.MetaData(schema=self.schema)
        # One reflection for all tables (a few catalog queries instead of a few per table);
        # foreign keys are not followed: the sync needs columns and primary keys only.
        with warnings.catch_warnings():
            # A column of a type SQLAlchemy does not know (`point`, an extension's type) is
            # still copied, as the warehouse path reads it: nothing for the user to act on.
            warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
            md.reflect(conn, schema=self.schema, only=list(names), resolve_fks=False)
        result = []
        for name in names:
            table = md.tables[f"{self.schema}.{name}" if self.schema else name]
            schema = pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])
            result.append(SourceTable(name, table, schema))
        return result

    def batches(self, conn: Connection, source_table: SourceTable,
                batch_rows: int = BATCH_ROWS, columns: list[str] | None = None,
                where: sa.ColumnElement[bool] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the table as Arrow batches of at most `batch_rows` rows: only `columns` when
        given, only rows matching `where` when given (the sync's filters, `paths`)."""
        table, schema = source_table.table, source_table.schema
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        query = sa.select(*(table.c[name] for name in schema.names))
        if where is not None:
            query = query.where(where)
        try:
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                query
            )
            for rows in result.partitions(batch_rows):
                yield _rows_to_batch(rows, schema, source_table.name)
        except SQLAlchemyError as exc:
            raise CrmError(f"source table {source_table.name}: read failed: "
                           f"{first_line(exc.orig or exc)}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            # A value the driver cannot convert to the column's declared type (SQLite lets
            # any value into any column).
            where_found = _text_in_number_column(conn, source_table, schema.names)
            raise CrmError(f"source table {source_table.name}{where_found}: a value does not "
                           f"match its column type: {first_line(exc)}") from None


def _text_in_number_column(conn: Connection, source_table: SourceTable,
                           columns: list[str]) -> str:
    """On SQLite, where a number column can hold any text: ", column C (value V)" for the first
    such column holding a text or blob value — one scan per number column, on the error path
    only; "" elsewhere or when none does (a date, say, is what failed)."""
    if conn.dialect.name != "sqlite":
        return ""
    table = source_table.table
    for name in columns:
        arrow = source_table.schema.field(name).type
        if not (pa.types.is_integer(arrow) or pa.types.is_floating(arrow)
                or pa.types.is_decimal(arrow)):
            continue
        column = table.c[name]
        try:
            texts = conn.execute(sa.select(sa.func.quote(column)).where(
                sa.func.typeof(column).in_(["text", "blob"])).limit(100)).scalars().all()
        except SQLAlchemyError:
            return ""  # the error being reported is the one that matters
        for quoted in texts:  # SQL literals: 'text' ('' inside), or X'…' for a blob
            if not quoted.startswith("'"):
                return f", column {name} (value {quoted[:42]})"
            text = quoted[1:-1].replace("''", "'")
            if not _is_number(text):
                return f", column {name} (value {text[:40] + '…' if len(text) > 40 else text!r})"
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rows_to_batch(rows: list[sa.Row], schema: pa.Schema, table: str) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise CrmError(f"source table {table}, column {field.name}: value does not fit "
                           f"{field.type}: {first_line(exc)}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

