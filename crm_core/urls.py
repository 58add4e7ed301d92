"""Parsing the warehouse and source URLs, and printing them without passwords."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crm_core.errors import CrmError
from crm_core.spark import event_parts_folder

#: What `CRM_WAREHOUSE_URL` may be, as error messages list it.
WAREHOUSE_URL_FORMS = ("duckdb:///path/file.duckdb, postgresql://user:pw@host:5432/db "
                       "(also postgres:// and postgresql+psycopg://), spark://host:10000 "
                       "(a Spark Thrift server), spark+http://token:<token>@host/sql/protocolv1/"
                       "o/<organization>/<cluster> (a Databricks cluster's HTTPS endpoint) or "
                       "spark+session:// (Spark in-process)")
#: The port of a Spark Thrift server when the URL names none (HiveServer2's).
SPARK_THRIFT_PORT = 10000
#: The port of an HTTPS endpoint (`spark+http://`) when the URL names none.
SPARK_HTTPS_PORT = 443
#: The path of a Databricks cluster's HTTPS endpoint, the one form dbt-spark's `http` method
#: builds (from `organization` and `cluster`).
SPARK_HTTP_PATH = re.compile(r"/sql/protocolv1/o/(?P<organization>[^/]+)/(?P<cluster>[^/]+)/?")
#: The SQLAlchemy schemes the ERP source may use (drivers installed with the project).
SOURCE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")
SOURCE_URL_FORMS = ("sqlite:///path/erp.sqlite, postgresql+psycopg://user:pw@host:5432/db "
                    "(also postgresql:// and postgresql+psycopg2://)")


#: Where a URL's user information starts: a scheme, however mistyped (`postgresql//`,
#: `"postgresql://`, `postgres_ql ://`), then its colon and slashes if any.
_URL_PREFIX = re.compile(r"^[\w+.\-\" ]*:?/*")
#: A password given as a query parameter (`?password=…`, libpq's `sslpassword`, …).
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?(?:password|passwd|pass|pwd)=)([^&]*)",
                             re.IGNORECASE)


def _userinfo(url: str) -> tuple[str, str, str, str] | None:
    """(prefix, user, password, rest) when the URL has `user:password@` — split by the last
    `@`, so a password with an unencoded `@`, `#`, `/` or `?` stays whole. Needs no valid URL:
    the messages of a malformed one must not show its password either."""
    head, at, rest = url.rpartition("@")
    if not at:
        return None
    prefix = _URL_PREFIX.match(head).group(0)  # type: ignore[union-attr]
    # Without slashes after it, what looked like a scheme may be the user of a URL written
    # without one (`user:pw@host/db`): then the user starts the text.
    for start in (prefix, "") if not prefix.endswith("/") else (prefix,):
        user, colon, password = head[len(start):].partition(":")
        if colon:
            return start, user, password, rest
    return None


def url_password(url: str) -> str | None:
    """The password a URL's user information carries, decoded (None when it has none)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        userinfo = _userinfo(url)  # not a valid URL: split it our own way
        password = userinfo[2] if userinfo is not None else None
    return unquote(password) if password else None


def url_passwords(url: str) -> list[str]:
    """Every password a URL may carry (user information, split both ways, and query
    parameters), as written and decoded: what a message about it must not show."""
    found = [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    userinfo = _userinfo(url)
    if userinfo is not None:
        found.append(userinfo[2])
    with contextlib.suppress(ValueError):
        found.append(urlsplit(url).password or "")
    return [form for raw in found if raw for form in {raw, unquote(raw)}]


def redact_url(url: str) -> str:
    """The URL with any password (user information or query parameter) replaced by `***`,
    safe for logs and errors — a malformed URL too."""
    masked = _QUERY_PASSWORD.sub(lambda m: m.group(1) + "***", url)
    userinfo = _userinfo(masked)
    if userinfo is None:
        return masked
    prefix, user, _, rest = userinfo
    return f"{prefix}{user}:***@{rest}"


def check_url(name: str, url: str) -> None:
    """Raise a one-line `CrmError` when a URL's host part does not parse (a port that is not
    a number from 1 to 65535, say): said where the URL enters, not deep inside a driver. The
    parser's own words are left out: they quote the text it took for a port, which is part of
    the password when the password has an unencoded `#`, `/` or `?`."""
    try:
        parts = urlsplit(url)
        port, netloc = parts.port, parts.netloc
    except ValueError:
        port, netloc = 0, ""
    # A password with an unencoded `/`, `?` or `#` ends the host part early: the parser then
    # takes its start for a port or a host, and the rest (the password's) for the path. So a
    # host part that is the start of the user information the URL's last `@` ends is refused.
    userinfo = _userinfo(url) if netloc and "@" not in netloc else None
    cut_short = userinfo is not None and netloc.startswith(f"{userinfo[1]}:")
    if port == 0 or cut_short:
        raise CrmError(f"{name}: malformed URL {redact_url(url)!r} (the port must be a number "
                       "from 1 to 65535; in a password, write @ : / ? # [ ] and % "
                       "percent-encoded: %40 %3A %2F %3F %23 %5B %5D %25)")


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse lives: a DuckDB file, a PostgreSQL database, or Spark (through a
    Thrift server, a Databricks-style HTTPS endpoint, or in this process: `spark_method`
    "thrift", "http" or "session")."""

    kind: str  # "duckdb" | "postgres" | "spark"
    #: DuckDB: the warehouse file. Spark: the local DuckDB staging file the loaders write `raw`
    #: into before it is published to the lake (`CRM_SPARK_STAGING_PATH`, set by `Settings`);
    #: its serving copy is what the dashboards read. PostgreSQL: None.
    duckdb_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = field(default="", repr=False)
    dbname: str = "postgres"
    spark_method: str = ""
    #: `spark+http://`: the endpoint's path, `/sql/protocolv1/o/<organization>/<cluster>`.
    http_path: str = ""
    #: A Spark warehouse's staging file keeps its campaign events as Parquet parts in this
    #: folder (ingestion/events/parts.py); None for every other warehouse.
    event_parts: Path | None = None

    @property
    def spark_cluster(self) -> tuple[str, str]:
        """`spark+http://`: the (organization, cluster) its path names."""
        found = SPARK_HTTP_PATH.fullmatch(self.http_path)
        return (found["organization"], found["cluster"]) if found else ("", "")

    @property
    def is_duckdb(self) -> bool:
        return self.kind == "duckdb"

    @property
    def is_spark(self) -> bool:
        return self.kind == "spark"

    @property
    def has_serving_copy(self) -> bool:
        """The dashboards read a DuckDB serving copy (`crm_core.serving_copy`) beside
        `duckdb_path`: DuckDB and Spark warehouses; PostgreSQL is read directly."""
        return self.duckdb_path is not None

    def staging(self) -> WarehouseTarget:
        """Where the loaders write `raw`: a Spark warehouse's local DuckDB staging file (the
        pipeline then publishes its `raw` to the lake), else the warehouse itself."""
        if self.is_spark:
            if self.duckdb_path is None:
                raise CrmError("a Spark warehouse needs its staging file (CRM_SPARK_STAGING_PATH)")
            return WarehouseTarget(kind="duckdb", duckdb_path=self.duckdb_path,
                                   event_parts=event_parts_folder(self.duckdb_path))
        return self

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
        if self.is_spark:
            if self.spark_method == "session":
                return "spark+session://"
            if self.spark_method == "http":
                return f"spark+http://{self.host}:{self.port}{self.http_path}"
            return f"spark://{self.host}:{self.port}"
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
    if scheme in {"spark", "spark+session", "spark+http"}:
        return _parse_spark_url(url, scheme)
    if scheme.split("+", 1)[0] in {"postgresql", "postgres"}:
        try:
            parts = urlsplit(url)
            port = parts.port or 5432
        except ValueError:
            raise CrmError(f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r}") from None
        if parts.query:
            # Every client of the warehouse (psycopg, dbt, the dashboards) gets the same
            # connection from the fields below; an option only one of them read would be worse
            # than none. libpq's environment variables reach all of them.
            raise CrmError(f"CRM_WAREHOUSE_URL {redact_url(url)!r}: query parameters are not "
                           "read; set libpq's environment variables instead (PGSSLMODE=require, "
                           "PGSSLROOTCERT=…, PGOPTIONS=…), which every connection honours")
        dbname = unquote(parts.path.lstrip("/")) or "postgres"
        return WarehouseTarget(
            kind="postgres",
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=dbname,
        )
    if scheme:
        raise CrmError(f"CRM_WAREHOUSE_URL: unsupported scheme {scheme!r} in "
                       f"{redact_url(url)!r}; supported forms: {WAREHOUSE_URL_FORMS}")
    raise CrmError(f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r} "
                   f"(supported forms: {WAREHOUSE_URL_FORMS})")


def _parse_spark_url(url: str, scheme: str) -> WarehouseTarget:
    """`spark+session://` (nothing after it), `spark://host[:port]` (a Thrift server) or
    `spark+http://token:<token>@host[:port]/sql/protocolv1/o/<org>/<cluster>` (HTTPS)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (SPARK_HTTPS_PORT if scheme == "spark+http" else SPARK_THRIFT_PORT)
    except ValueError:
        raise CrmError(f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r}") from None
    if scheme == "spark+session":
        if parts.netloc or parts.path.strip("/"):
            raise CrmError(f"CRM_WAREHOUSE_URL: {redact_url(url)!r}: spark+session:// takes no "
                           "host or path (Spark runs in this process; the lake is CRM_LAKE_PATH)")
        return WarehouseTarget(kind="spark", spark_method="session", host="", port=0, user="")
    if not parts.hostname:
        raise CrmError(f"CRM_WAREHOUSE_URL: malformed URL {redact_url(url)!r} (no host after "
                       f"{scheme}://)")
    if scheme == "spark+http":
        if not SPARK_HTTP_PATH.fullmatch(parts.path):
            raise CrmError(f"CRM_WAREHOUSE_URL: {redact_url(url)!r}: spark+http:// needs the "
                           "cluster's path, /sql/protocolv1/o/<organization>/<cluster> (the "
                           "cluster's JDBC/ODBC settings show it)")
        if not parts.password:
            raise CrmError(f"CRM_WAREHOUSE_URL: {redact_url(url)!r}: spark+http:// needs an "
                           "access token, as spark+http://token:<token>@host/...")
        return WarehouseTarget(kind="spark", spark_method="http", host=parts.hostname,
                               port=port, user="token", password=unquote(parts.password),
                               http_path=parts.path.rstrip("/"))
    return WarehouseTarget(kind="spark", spark_method="thrift", host=parts.hostname, port=port,
                           user=unquote(parts.username or ""),
                           password=unquote(parts.password or ""))


def check_source_scheme(url: str) -> None:
    """Refuse a source URL whose scheme the sync cannot read, listing the forms it can (before
    SQLAlchemy answers a typo such as `sqlit://` with "Can't load plugin")."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SOURCE_SCHEMES:
        raise CrmError(f"CRM_SOURCE_URL: unsupported scheme {scheme!r} in {redact_url(url)!r}; "
                       f"supported forms: {SOURCE_URL_FORMS}")
