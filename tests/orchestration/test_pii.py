"""Personal data (phone, alternative phone, tax number) never reaches `marts` or the dashboards.

The real pipeline builds a small generated ERP on each warehouse, with a known CRM_PII_KEY and
planted edge values (unicode, surrounding blanks, empty strings, NULL). Then:

- staging's keyed hashes equal Python's own `hmac.new(key, value, sha256)` for every contact
  (computed here, independently of the SQL), NULL for NULL or blank input;
- a scanner reads every column of every table and view in `marts` (and in the dashboards'
  serving copy) and finds no phone- or tax-number-shaped value and none of the literal values
  the source holds — and the same scanner does find a value planted into a real mart;
- neither the key nor its HMAC pads appear in the run's output or in any dbt artefact.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.errors import CrmError
from crm_core.serving_copy import serving_path
from crm_core.settings import PROJECT_ROOT, Settings
from orchestration.pii import key_pads
from tests.helpers.dashboard import DashboardWarehouse, run_cli
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import pg_url

AS_OF = "2026-11-01"
#: A key with non-ASCII characters: the digest must be of its UTF-8 bytes on both warehouses.
KEY = "pii-test-key-Ünïcødé-0123456789"
#: What `crm_demo/generator.py` writes: phone "+1555" + 7 digits, tax number "TX" + 9 digits.
#: The leading "+" is optional so that a digits-only copy is caught too; the digits must stand
#: alone (not inside a longer number such as the rate 0.15555555555555556).
PHONE = re.compile(r"(?<![\d.])\+?1555\d{7}(?!\d)")
TAX_NUMBER = re.compile(r"(?<![A-Za-z0-9])TX\d{9}(?!\d)")
#: Planted source values (contact id -> phone, alternative phone, tax number).
PLANTED = {
    1: ("+٩٧١٥٠١٢٣٤٥٦٧", "  +1 555 0100  ", "DE-Ümlaut-税号-42"),
    2: (" +15550001111 ", "+15550002222", ""),
    3: (None, "", "   "),
}


def build(work: Path, warehouse_url: str) -> tuple[str, str]:
    """Generate a two-week ERP with the planted values, run the pipeline; its output."""
    env = {"CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite", "CRM_EVENTS_PATH": f"{work}/ev",
           "CRM_WAREHOUSE_URL": warehouse_url, "CRM_REPORTING_TZ": "UTC",
           "CRM_PII_KEY": KEY}
    proc = run_cli(work, env, "generate", "--days", "14", "--seed", "11", "--end-date", AS_OF,
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(work / "erp.sqlite") as con:
        for contact, (phone, alternative, tax) in PLANTED.items():
            con.execute("update contacts set phone = ?, alternative_contact = ?, tax_number = ? "
                        "where id = ?", [phone, alternative, tax, contact])
        # Every contact gets an alternative phone (the generator leaves it NULL).
        con.execute("update contacts set alternative_contact = '+1555' || (9000000 + id) "
                    "where id > 3")
    proc = run_cli(work, env, "run", "--date", AS_OF)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, proc.stderr


def expected_hash(value: str | None) -> str | None:
    """The digest staging must hold, computed with Python's hmac (no SQL involved)."""
    value = None if value is None else value.strip(" ")
    if not value:
        return None
    return hmac.new(KEY.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()


Rows = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]


def scan(relations: Iterable[str], rows: Rows, literals: set[str]) -> list[str]:
    """Every cell of every relation, as text, against the phone and tax-number shapes and the
    source's literal values. Returns `relation.column = value` for each finding."""
    findings = []
    for relation in relations:
        columns, data = rows(relation)
        for row in data:
            for column, cell in zip(columns, row, strict=True):
                if cell is None:
                    continue
                text = str(cell)
                if PHONE.search(text) or TAX_NUMBER.search(text) or text.strip() in literals:
                    findings.append(f"{relation}.{column} = {text!r}")
    return findings


def source_literals(work: Path) -> set[str]:
    """Every non-blank phone, alternative phone and tax number the source holds."""
    with sqlite3.connect(work / "erp.sqlite") as con:
        values = con.execute("select phone, alternative_contact, tax_number from contacts")
        found = {v.strip() for row in values for v in row if v is not None and v.strip()}
    assert len(found) > 1000  # the scan compares against thousands of real values
    return found


def duckdb_rows(con: duckdb.DuckDBPyConnection) -> Rows:
    def rows(relation: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = con.execute(f"select * from {relation}")
        return [d[0] for d in cur.description], cur.fetchall()
    return rows


def postgres_rows(con: psycopg.Connection[Any]) -> Rows:
    def rows(relation: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = con.execute(f"select * from {relation}")
        return [d.name for d in cur.description or []], cur.fetchall()
    return rows


def relations(con: Any, schemas: Sequence[str]) -> list[str]:
    """Every table and view of these schemas, as `schema.name`."""
    marks = ", ".join(f"'{s}'" for s in schemas)
    found = [f'{s}."{t}"' for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables "
        f"where table_schema in ({marks}) order by 1, 2").fetchall()]
    assert len(found) >= 12, found  # every mart is scanned
    return found


def staging_hashes(con: Any) -> dict[int, tuple[str | None, ...]]:
    return {row[0]: row[1:] for row in con.execute(
        "select contact_id, phone_hash, alternative_contact_hash, tax_number_hash "
        "from staging.stg_erp__contacts").fetchall()}


def assert_hashes_match_python(work: Path, hashes: dict[int, tuple[str | None, ...]]) -> None:
    with sqlite3.connect(work / "erp.sqlite") as con:
        source = {row[0]: row[1:] for row in con.execute(
            "select id, phone, alternative_contact, tax_number from contacts")}
    assert hashes.keys() == source.keys()
    for contact, values in source.items():
        assert hashes[contact] == tuple(expected_hash(v) for v in values), contact
    assert hashes[3] == (None, None, None)  # NULL, empty, blanks: no hash
    assert hashes[1][0] == expected_hash("+٩٧١٥٠١٢٣٤٥٦٧")  # unicode digits


def assert_key_left_no_trace(output: str, since: float) -> None:
    """Neither the key nor its pads in the run's output, nor in any dbt artefact or log the
    run wrote (dagster-dbt keeps a target folder per invocation under target/)."""
    ipad, opad = key_pads(KEY)
    secrets = [KEY, ipad.hex(), opad.hex()]
    for secret in secrets:
        assert secret not in output
    written = [p for folder in (PROJECT_ROOT / "target", PROJECT_ROOT / "logs")
               if folder.exists() for p in folder.rglob("*")
               if p.is_file() and p.stat().st_mtime >= since]
    assert any(p.name == "run_results.json" for p in written)  # the run's artefacts are here
    compiled = [p for p in written
                if p.name == "stg_erp__contacts.sql" and p.parent.name == "staging"]
    assert compiled and all("getvariable" in p.read_text() or "current_setting" in p.read_text()
                            for p in compiled)
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in secrets:
            assert secret not in text, path


def test_duckdb_marts_and_serving_copy_hold_no_personal_data(tmp_path: Path) -> None:
    since = time.time() - 1
    warehouse = tmp_path / "wh.duckdb"
    out, err = build(tmp_path, f"duckdb:///{warehouse}")
    literals = source_literals(tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        assert_hashes_match_python(tmp_path, staging_hashes(con))
        marts = relations(con, ["marts"])
        assert scan(marts, duckdb_rows(con), literals) == []
        # The scanner can fail: a phone planted into a real mart is found.
        con.execute("begin")
        con.execute("update marts.v_crm_contact_summary set contact_code = '+15550001111' "
                    "where contact_pk = (select min(contact_pk) from marts.v_crm_contact_summary)")
        planted = scan(marts, duckdb_rows(con), literals)
        assert planted == ["marts.\"v_crm_contact_summary\".contact_code = '+15550001111'"]
        con.execute("rollback")
    with duckdb.connect(str(serving_path(warehouse)), read_only=True) as con:
        served = relations(con, ["marts", "meta"])
        assert any("top_contacts" in r for r in served)
        assert scan(served, duckdb_rows(con), literals) == []
    assert_key_left_no_trace(out + err, since)


@pytest.mark.postgres
def test_postgres_marts_hold_no_personal_data(tmp_path: Path,
                                              make_pg_database: Callable[[str], str]) -> None:
    since = time.time() - 1
    dbname = make_pg_database("crm_pii")
    out, err = build(tmp_path, pg_url(dbname, driver="postgresql"))
    literals = source_literals(tmp_path)
    with psycopg.connect(pg_url(dbname, driver="postgresql")) as con:
        assert_hashes_match_python(tmp_path, staging_hashes(con))
        marts = relations(con, ["marts"])
        assert scan(marts, postgres_rows(con), literals) == []
        # The scanner can fail: a tax number planted into a real mart is found.
        con.execute("update marts.v_crm_contact_summary set contact_code = 'TX123456789' "
                    "where contact_pk = (select min(contact_pk) from marts.v_crm_contact_summary)")
        planted = scan(marts, postgres_rows(con), literals)
        assert planted == ["marts.\"v_crm_contact_summary\".contact_code = 'TX123456789'"]
        con.rollback()
    assert_key_left_no_trace(out + err, since)


def test_no_model_dashboard_or_doc_names_a_personal_data_column() -> None:
    """Exposures, semantic models, marts, the dashboards' queries and the analysts' guide say
    nothing of phones or tax numbers: only staging may, and only as hashes."""
    words = re.compile(r"\b(phone|alternative_contact|tax_number)\b", re.I)
    places = [*(REPO_ROOT / "dbt_project" / "models" / "marts").rglob("*"),
              *(REPO_ROOT / "dbt_project" / "models" / "intermediate").rglob("*"),
              REPO_ROOT / "dbt_project" / "models" / "exposures.yml",
              *(REPO_ROOT / "dashboards").rglob("*.py"), REPO_ROOT / "docs" / "querying.md",
              REPO_ROOT / "orchestration" / "serving_copy.py"]
    hits = [f"{p.relative_to(REPO_ROOT)}: {m.group(0)}" for p in places if p.is_file()
            for m in words.finditer(p.read_text(encoding="utf-8"))]
    assert hits == []
    staging = (REPO_ROOT / "dbt_project" / "models" / "staging" / "stg_erp__contacts.sql")
    selected = re.findall(r"\bas (\w*(?:phone|alternative_contact|tax_number)\w*)",
                          staging.read_text(encoding="utf-8"))
    assert sorted(selected) == ["alternative_contact_hash", "phone_hash", "tax_number_hash"]


def test_the_pii_key_is_validated_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="CRM_PII_KEY must be at least 16 characters"):
        Settings.from_env({"CRM_PII_KEY": "short"}, cwd=tmp_path)
    settings = Settings.from_env({"CRM_PII_KEY": KEY}, cwd=tmp_path)
    assert settings.pii_key == KEY and KEY not in repr(settings)
    assert Settings.from_env({}, cwd=tmp_path).pii_key is None
    # HMAC's pads, as the warehouses get them, give Python's own digest.
    ipad, opad = key_pads(KEY)
    inner = hashlib.sha256(ipad + b"x").digest()
    assert hashlib.sha256(opad + inner).hexdigest() == expected_hash("x")
    long_key = "k" * 100  # longer than a block: hashed first, as RFC 2104 says
    ipad, opad = key_pads(long_key)
    inner = hashlib.sha256(ipad + b"x").digest()
    assert hashlib.sha256(opad + inner).hexdigest() == hmac.new(
        long_key.encode(), b"x", hashlib.sha256).hexdigest()


def test_without_a_key_staging_keeps_no_hash_at_all(
        dashboard_warehouse: DashboardWarehouse) -> None:
    """The shared dashboard warehouse was built with no CRM_PII_KEY: every hash is NULL (no
    unkeyed digest of a phone), and its marts and serving copy hold no personal data either."""
    work = dashboard_warehouse.work
    literals = source_literals(work)
    with duckdb.connect(str(dashboard_warehouse.warehouse_file), read_only=True) as con:
        hashes = staging_hashes(con)
        assert len(hashes) > 1000 and set(hashes.values()) == {(None, None, None)}
        assert scan(relations(con, ["marts"]), duckdb_rows(con), literals) == []
    with duckdb.connect(str(serving_path(dashboard_warehouse.warehouse_file)),
                        read_only=True) as con:
        assert scan(relations(con, ["marts", "meta"]), duckdb_rows(con), literals) == []


@pytest.mark.parametrize("page", ["overview", "pipeline", "leads", "campaigns", "customers"])
def test_no_dashboard_page_shows_personal_data(page: str, app: Callable[..., AppTest],
                                               dashboard_warehouse: DashboardWarehouse) -> None:
    """Everything a page sends to the browser in demo mode (every element's protobuf: text,
    metrics, tables, the charts' data and the CSV downloads' tables, which are these same
    frames) holds no phone- or tax-number-shaped value and no literal source value."""
    at = app(page)
    literals = source_literals(dashboard_warehouse.work)
    sent = [str(element.proto) for element in at.main.children.values()]
    sent += [str(element.proto) for element in at.sidebar.children.values()]
    blob = "\n".join(sent)
    assert len(blob) > 1000 and at.get("plotly_chart")  # charts' data are in there
    assert not PHONE.search(blob) and not TAX_NUMBER.search(blob)
    cells = {str(v).strip() for frame in at.dataframe for column in frame.value.columns
             for v in frame.value[column].tolist()}
    assert not cells & literals
