"""The synthetic ERP: deterministic, shaped like a business, untidy like a real ERP, and the same
rows whether written to SQLite or PostgreSQL."""

import gzip
import hashlib
import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_core.errors import CrmError
from crm_demo.generator import generate
from ingestion.erp.schema import SOURCE_TABLES
from tests.helpers import oracle
from tests.helpers.postgres import pg_url

END = date(2026, 2, 28)


def table_digest(url: str, schema: str | None = None) -> dict[str, str]:
    engine = sa.create_engine(url)
    md = sa.MetaData(schema=schema)
    out = {}
    with engine.connect() as conn:
        for name in SOURCE_TABLES:
            table = sa.Table(name, md, autoload_with=conn)
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            out[name] = hashlib.sha256(repr([tuple(map(str, r)) for r in rows]).encode()) \
                .hexdigest()
    engine.dispose()
    return out


def files_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        result = [tuple(r) for r in conn.exec_driver_sql(sql)]
    engine.dispose()
    return result


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("gen")
    url = f"sqlite:///{tmp}/erp.sqlite"
    generate(url, tmp / "events", scale="small", days=60, seed=3, end_date=END, progress=False)
    return url, tmp / "events"


def test_same_arguments_give_identical_output(small, tmp_path: Path) -> None:
    url, events = small
    again = f"sqlite:///{tmp_path}/erp.sqlite"
    generate(again, tmp_path / "events", scale="small", days=60, seed=3, end_date=END,
             progress=False)
    assert table_digest(again) == table_digest(url)
    assert files_digest(tmp_path / "events") == files_digest(events)
    other = f"sqlite:///{tmp_path}/other.sqlite"
    generate(other, tmp_path / "other", scale="small", days=60, seed=4, end_date=END,
             progress=False)
    assert table_digest(other)["crm_deals"] != table_digest(url)["crm_deals"]


def test_small_scale_is_a_plausible_business(small) -> None:
    url, _ = small
    counts = {t: rows(url, f"select count(*) from {t}")[0][0] for t in SOURCE_TABLES}
    assert counts["contacts"] == 3000 and counts["crm_leads"] == 4000
    assert counts["crm_deals"] == 2500 and counts["crm_campaigns"] == 40
    tenants = sorted((n for _, n in rows(url, "select business_id, count(*) from contacts "
                                               "group by 1")), reverse=True)
    assert len(tenants) >= 3 and tenants[0] > 3 * tenants[-1]  # unequal tenants
    statuses = Counter(s.strip().lower() for (s,) in rows(url, "select status from crm_leads"))
    assert statuses["new"] > statuses["qualified"] > 0 and statuses["won"] > 0


def test_the_untidiness_a_real_erp_has(small) -> None:
    url, _ = small
    one = lambda sql: rows(url, sql)[0][0]  # noqa: E731
    assert one("select count(*) from contacts where is_deleted") > 0
    assert one("select count(*) from crm_deals where stage_id is null") > 0
    assert one("select count(*) from contacts c where not exists "
               "(select 1 from contact_accounts a where a.contact_id = c.id)") > 0
    assert one("select count(*) from (select contact_id from contact_accounts "
               "group by contact_id having count(*) = 2)") > 0
    assert one("select count(*) from crm_leads where status <> lower(trim(status))") > 0
    assert one("select count(*) from crm_leads where source is null") > 0
    assert one("select count(*) from crm_leads where source is not null "
               "and trim(source) = ''") > 0
    assert one("select count(*) from crm_campaigns where budget is null") > 0
    assert one("select count(*) from crm_campaigns where end_date is null") > 0
    assert one("select count(*) from (select campaign_id, date from crm_campaign_performance "
               "group by 1, 2 having count(*) > 1)") > 0


def test_event_files_are_cloudevents_with_duplicates_late_and_bad_lines(small) -> None:
    _, events = small
    folders = sorted(p for p in events.iterdir() if p.is_dir())
    assert all((f / "_SUCCESS").exists() for f in folders)
    assert any(p.suffix == ".gz" for f in folders for p in f.iterdir())
    ids: Counter[tuple[str, str]] = Counter()
    bad = late = 0
    types = Counter()
    for folder in folders:
        landing = date.fromisoformat(folder.name)
        for path in sorted(folder.glob("*.jsonl*")):
            data = path.read_bytes()
            text = gzip.decompress(data) if path.suffix == ".gz" else data
            for line in text.decode().splitlines():
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                    when = date.fromisoformat(ev["time"][:10])
                except (json.JSONDecodeError, TypeError, KeyError, ValueError):
                    bad += 1
                    continue
                if not isinstance(ev.get("data"), dict) or not ev["type"].startswith("erp."):
                    bad += 1
                    continue
                if ev["type"] == "erp.campaign.like":
                    bad += 1
                    continue
                assert ev["specversion"] == "1.0"
                ids[(ev["source"], ev["id"])] += 1
                types[ev["type"]] += 1
                late += (landing - when).days >= 2
    assert set(types) == {"erp.campaign.impression", "erp.campaign.click",
                          "erp.campaign.conversion", "erp.campaign.sent",
                          "erp.lead.qualified", "erp.opportunity.won"}
    assert types["erp.campaign.impression"] > types["erp.campaign.click"] \
        > types["erp.campaign.conversion"]
    assert sum(n > 1 for n in ids.values()) > 0  # duplicate deliveries
    assert late > 0 and bad > 0


@pytest.mark.postgres
def test_postgres_receives_the_same_rows_as_sqlite(small, pg_database: str,
                                                   tmp_path: Path) -> None:
    url, _ = small
    pg = pg_url(pg_database)
    generate(pg, tmp_path / "events", scale="small", days=60, seed=3, end_date=END,
             schema="erp", progress=False)
    pg_rows, sqlite_rows = oracle.read_source(pg, "erp"), oracle.read_source(url)

    def normal(table: list[dict]) -> list[tuple]:
        """Typed values, timestamps as UTC instants (SQLite keeps them naive)."""
        def value(v: object) -> object:
            return oracle.utc(v) if isinstance(v, datetime) else v

        return sorted((tuple((k, value(v)) for k, v in sorted(r.items())) for r in table),
                      key=repr)

    for name in sqlite_rows:
        assert normal(pg_rows[name]) == normal(sqlite_rows[name]), name


def test_a_bad_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(CrmError) as err:
        generate("postgresql+psycopg://u:hunter2@127.0.0.1:1/x", tmp_path / "ev",
                 progress=False)
    assert "hunter2" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CrmError, match="unknown scale"):
        generate(f"sqlite:///{tmp_path}/x.sqlite", tmp_path / "ev", scale="huge")


def test_a_generate_that_fails_midway_leaves_the_previous_erp_and_events(
        small, tmp_path: Path) -> None:
    """The ERP file and the event folders are written beside their targets and moved in at
    the end: a generate stopped after the ERP is written (here the event folder cannot be
    created) leaves the previous data whole, not empty tables `demo` would take for its own.
    Then a generate that completes replaces both."""
    url, events = small
    erp = tmp_path / "erp.sqlite"
    (tmp_path / "landing").mkdir()
    erp.write_bytes(Path(url.removeprefix("sqlite:///")).read_bytes())
    before = erp.read_bytes()
    blocker = tmp_path / "landing" / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(CrmError, match="cannot create the event folder"):
        generate(f"sqlite:///{erp}", blocker / "events", scale="small", days=30, seed=9,
                 end_date=END, progress=False)
    assert erp.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp.sqlite", "landing"]
    assert sorted(p.name for p in (tmp_path / "landing").iterdir()) == ["a_file"]

    landing = tmp_path / "landing" / "events"
    (landing / "2001-01-01").mkdir(parents=True)  # an old day: replaced with the rest
    (landing / "notes").mkdir()  # not a day: kept
    generate(f"sqlite:///{erp}", landing, scale="small", days=60, seed=3, end_date=END,
             progress=False)
    assert table_digest(f"sqlite:///{erp}") == table_digest(url)
    assert files_digest(landing) == files_digest(events)
    assert {p.name for p in landing.iterdir()} >= {"notes", END.isoformat()}
    assert not (landing / "2001-01-01").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp.sqlite", "landing"]


def test_a_move_that_fails_midway_puts_the_previous_event_folders_back(tmp_path: Path) -> None:
    """The old day folders are moved aside inside the landing folder and the new ones renamed
    in; when a rename fails (here a plain file holds a day's name), every old folder returns
    and nothing staged is left behind for the loader to see."""
    from crm_core.landing import scan_landing

    landing = tmp_path / "events"
    generate(f"sqlite:///{tmp_path / 'erp.sqlite'}", landing, scale="small", days=60, seed=3,
             end_date=END, progress=False)
    (landing / "2001-01-01").mkdir()
    (landing / "2001-01-01" / "old.jsonl").write_text("{}\n")
    days = sorted(p.name for p in landing.iterdir() if p.name[:1].isdigit())
    blocked = days[len(days) // 2]
    for path in (landing / blocked).iterdir():
        path.unlink()
    (landing / blocked).rmdir()
    (landing / blocked).write_text("a file where a day's folder goes")
    before = files_digest(landing)
    with pytest.raises(CrmError, match="cannot write the event folders"):
        generate(f"sqlite:///{tmp_path / 'erp.sqlite'}", landing, scale="small", days=60,
                 seed=3, end_date=END, progress=False)
    assert files_digest(landing) == before
    assert (landing / "2001-01-01" / "old.jsonl").read_text() == "{}\n"
    assert sorted(p.name for p in landing.iterdir()) == days
    assert scan_landing(landing).ignored == []


def test_generate_keeps_what_else_the_sqlite_file_holds(tmp_path: Path) -> None:
    """A SQLite file holding tables of its own beside the ERP's keeps them, its permissions
    and the symlink that names it; the ERP tables are the new ones."""
    import sqlite3
    import stat

    real = tmp_path / "d#1" / "erp 100%.sqlite"  # `#` and `%` must not bend a URL or URI
    real.parent.mkdir()
    with sqlite3.connect(real) as conn:
        conn.execute("create table notes (body text)")
        conn.execute("insert into notes values ('keep me')")
        conn.execute("create table crm_deals (id integer)")  # an old ERP table: replaced
    real.chmod(0o640)
    link = tmp_path / "erp.sqlite"
    link.symlink_to(real)
    events = tmp_path / "events"
    generate(f"sqlite:///{link}", events, scale="small", days=30, seed=5, end_date=END,
             progress=False)
    assert link.is_symlink() and link.resolve() == real
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    with sqlite3.connect(real) as conn:
        assert conn.execute("select body from notes").fetchall() == [("keep me",)]
        assert conn.execute("select count(*) from crm_deals").fetchone()[0] > 100
    assert sorted(p.name for p in real.parent.iterdir()) == [real.name]


def test_generate_refuses_to_replace_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    target = tmp_path / "erp.sqlite"
    target.write_bytes(b"not a database, but someone's file" * 100)
    with pytest.raises(CrmError, match="cannot be read as a SQLite database"):
        generate(f"sqlite:///{target}", tmp_path / "events", scale="small", days=30, seed=5,
                 end_date=END, progress=False)
    assert target.read_bytes() == b"not a database, but someone's file" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp.sqlite"]
