"""The columnar `pgoutput` decoder on real messages: a private `wal_level=logical` cluster
writes them, the CDC peek reads them (`cdc_slot.peek`), and every decoded row is compared with
the values the test wrote — inserts, updates, deletes (key only), a moved key with the key and
with the whole old row (replica identity full), NULL next to the empty string, an unchanged
TOASTed value, multi-byte UTF-8, quotes and newlines, a transaction skipped by `skip_through`,
a relation whose columns change between two changes, the partial rule, a truncate and a
transaction split across two fetched batches. Invalid UTF-8 stops with one clear error."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from crm_core.errors import CrmError
from ingestion.erp import cdc_slot, pgoutput
from ingestion.erp.cdc_slot import cdc_connection, lsn_int, peek
from tests.helpers.logical_pg import LogicalCluster

pytestmark = pytest.mark.postgres

SLOT = "crm_pgoutput_test"
NAMES = ["", None, "it's \"quoted\", with a comma", "two\nlines\r\nand a\ttab \\N \\.",
         "Zürich — 東京 🚀"]
#: Random letters barely compress: stored out of line (TOASTed), far above 2 kB.
BIG = "".join(random.Random(3).choices(string.ascii_letters, k=100_000))


@dataclass(frozen=True)
class Source:
    cluster: LogicalCluster
    db: str

    def run(self, *statements: str) -> None:
        """Each statement in its own transaction (a list in one: `begin; …; commit`)."""
        with psycopg.connect(self.cluster.conninfo(self.db), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def peek(self, skip_through: int | None = None) -> pgoutput.Changes:
        with cdc_connection(self.cluster.url(self.db)) as conn:
            return peek(conn, SLOT, skip_through)

    def wal_lsn(self) -> int:
        with psycopg.connect(self.cluster.conninfo(self.db), autocommit=True) as conn:
            return lsn_int(conn.execute("select pg_current_wal_lsn()::text").fetchone()[0])


@contextmanager
def _source(cluster: LogicalCluster, encoding: str = "UTF8") -> Iterator[Source]:
    """A database with the test's tables, their publication and a `pgoutput` slot."""
    db = f"crm_pgo_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        conn.execute(f'create database "{db}" encoding \'{encoding}\' lc_collate \'C\' '
                     "lc_ctype 'C' template template0")
    source = Source(cluster, db)
    source.run(
        "create table items (id integer primary key, name text, note text, big text, "
        "n numeric)",
        "create table fulls (id integer primary key, name text)",
        "alter table fulls replica identity full",
        "create table many (id integer primary key)",
        "create table wide (id integer primary key, a text)",
        "create table gone (id integer primary key)",
        f"create publication {SLOT} for table items, fulls, many, wide, gone",
        f"select pg_create_logical_replication_slot('{SLOT}', 'pgoutput')")
    try:
        yield source
    finally:
        cluster.drop_database(db)


@pytest.fixture
def source(logical_pg: LogicalCluster) -> Iterator[Source]:
    with _source(logical_pg) as created:
        yield created


def _insert(id_: int, name: str | None, big: str | None = None, n: str = "1.50") -> str:
    def literal(value: str | None) -> str:
        return "null" if value is None else "'" + value.replace("'", "''") + "'"
    return (f"insert into items (id, name, big, n) values ({id_}, {literal(name)}, "
            f"{literal(big)}, {n})")


def _rows(changes: pgoutput.Changes, table: str) -> list[tuple]:
    """(op, toasted, values…) of each decoded row of `table`, in order."""
    decoded = changes.tables[f"public.{table}"].table()
    columns = [decoded[name].to_pylist() for name in decoded.column_names]
    return [tuple(row[1:]) for row in zip(*columns, strict=True)]


@pytest.mark.parametrize("batch", [10_000, 2])
def test_real_pgoutput_messages_decode_to_the_written_values(
        source: Source, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small fetch splits transactions across batches: the open one waits for its commit.
    monkeypatch.setattr(cdc_slot, "PEEK_BATCH", batch)
    # items ends with exactly this many rows (kept), many with one more (keys only)
    monkeypatch.setattr(pgoutput, "MAX_ROWS_PER_TABLE", 11)
    source.run(_insert(1, "already applied"))
    skipped = source.peek()
    assert _rows(skipped, "items") == [("I", False, "1", "already applied", None, None, "1.50")]
    skip_through = skipped.end_lsn
    assert skip_through is not None

    source.run(
        # one transaction: five inserts, the first with a TOASTed value
        "begin; " + "; ".join(_insert(2 + i, name, BIG if i == 0 else None, f"{i}.25")
                              for i, name in enumerate(NAMES)) + "; commit",
        "update items set note = 'n', n = 7 where id = 2",  # big: unchanged TOASTed ('u')
        "update items set id = 10 where id = 3",  # a moved key: 'K' (the key) then 'N'
        "delete from items where id = 4",  # a delete carries only the key
        "begin; insert into items (id, name) values (7, 'x'); "
        "update items set name = 'seven' where id = 7; commit",
        "insert into fulls values (1, 'one')",
        "update fulls set id = 2, name = 'two' where id = 1",  # 'O' (the old row) then 'N'
        "delete from fulls where id = 2",
        "insert into many select generate_series(1, 12)",  # past MAX_ROWS_PER_TABLE
        "insert into wide values (1, 'a')",
        # a new Relation message before the next change, within its transaction
        "begin; alter table wide add column b text; insert into wide values (2, 'b', 'c'); "
        "commit",
        "insert into gone values (1)",
        "truncate gone")
    end = source.wal_lsn()
    changes = source.peek(skip_through)

    names = dict(enumerate(NAMES, start=2))
    assert _rows(changes, "items") == [
        ("I", False, "2", names[2], None, BIG, "0.25"),
        ("I", False, "3", names[3], None, None, "1.25"),
        ("I", False, "4", names[4], None, None, "2.25"),
        ("I", False, "5", names[5], None, None, "3.25"),
        ("I", False, "6", names[6], None, None, "4.25"),
        ("U", True, "2", names[2], "n", None, "7"),
        ("D", False, "3", None, None, None, None),
        ("U", False, "10", names[3], None, None, "1.25"),
        ("D", False, "4", None, None, None, None),
        ("I", False, "7", "x", None, None, None),
        ("U", False, "7", "seven", None, None, None),
    ]
    items = changes.tables["public.items"]
    assert (items.rows, items.toasted, items.partial) == (11, 1, False)
    assert items.columns == ("id", "name", "note", "big", "n")
    assert items.keys() == {"2", "3", "4", "5", "6", "7", "10"}
    assert _rows(changes, "fulls") == [
        ("I", False, "1", "one"), ("D", False, "1", "one"), ("U", False, "2", "two"),
        ("D", False, "2", "two")]
    many = changes.tables["public.many"]
    assert (many.partial, many.rows, many.keys()) == (True, 0, {str(i) for i in range(1, 13)})
    wide = changes.tables["public.wide"]
    assert (wide.partial, wide.columns, wide.keys()) == (True, ("id", "a"), {"1", "2"})
    assert changes.truncated == {"public.gone"}
    assert "public.gone" in changes.tables  # its insert, before the truncate
    assert skip_through < changes.end_lsn <= end
    # the flushed WAL before the peek: every commit read ends before it
    assert changes.read_through is not None and changes.end_lsn <= changes.read_through
    # the 13 transactions after the skipped one
    assert len(changes.xids) == 13 and not changes.xids & skipped.xids

    # Without the position the first transaction is read too: items has one row too many.
    again = source.peek()
    assert again.tables["public.items"].partial
    assert again.tables["public.items"].keys() == items.keys() | {"1"}
    assert again.xids == changes.xids | skipped.xids


def test_invalid_utf8_names_the_column(logical_pg: LogicalCluster) -> None:
    """A source database in SQL_ASCII hands out its bytes as they are: not UTF-8, one error."""
    with _source(logical_pg, "SQL_ASCII") as source:
        source.run("insert into items (id, name) values (1, E'caf\\xe9')")
        with pytest.raises(CrmError, match=r"public\.items\.name .*not valid UTF-8"):
            source.peek()
