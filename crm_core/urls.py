"""Parsing the warehouse and source URLs, and printing them without passwords."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crm_core.errors import CrmError


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe for logs and errors."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse lives: a DuckDB file, or a PostgreSQL database."""

    kind: str  # "duckdb" | "postgres"
    duckdb_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "postgres"

    @property
    def is_duckdb(self) -> bool:
        return self.kind == "duckdb"

    def conninfo(self) -> str:
        """libpq connection string for psycopg (PostgreSQL warehouses only)."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": self.dbname,
            "application_name": "crm-analytics",
        }
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items())

    def describe(self) -> str:
        """Where it is, without secrets."""
        if self.is_duckdb:
            return f"duckdb:///{self.duckdb_path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _libpq_quote(value: str) -> str:
    """Quote a libpq conninfo value: single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_warehouse_url(url: str, cwd: Path) -> WarehouseTarget:
    """`duckdb:///rel/or/abs.duckdb` or `postgresql[+driver]://user:pw@host:port/db`."""
    if url.startswith("duckdb:///"):
        raw_path = url[len("duckdb:///"):]
        if not raw_path:
            raise CrmError("CRM_WAREHOUSE_URL: malformed URL (no file after duckdb:///)")
        path = Path(raw_path)
        return WarehouseTarget(kind="duckdb", duckdb_path=(cwd / path).resolve())
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+", 1)[0] in {"postgresql", "postgres"}:
        try:
            parts = urlsplit(url)
            port = parts.port or 5432
        except ValueError:
            raise CrmError(f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r}") from None
        dbname = unquote(parts.path.lstrip("/")) or "postgres"
        return WarehouseTarget(
            kind="postgres",
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=dbname,
        )
    raise CrmError(
        f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r} "
        "(expected duckdb:///path/file.duckdb or postgresql://user:pw@host:5432/db)"
    )
