"""Just enough of PostgreSQL's `pgoutput` logical-decoding protocol (version 1, text format)
for the change-data-capture sync: each changed row's column values in commit order, the keys
that changed, and the commit positions.

Each table's changes are kept row by row as the messages arrive (their text values, as
PostgreSQL's output functions wrote them); `TableChanges.columns()` turns them into one list
per column for the warehouse, which casts the text to the declared types in one statement.
Message layouts:
https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

_I16, _I32, _I64 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")

#: Rows whose values are kept per table; past it only the keys are kept (the sync then reads
#: the rows by key or copies the table), so a mass update cannot fill the sync's memory.
MAX_ROWS_PER_TABLE = 500_000


@dataclass(frozen=True)
class Relation:
    """A Relation message: a table as the publisher sees it now (sent before its first change
    in a session and again after its columns change)."""

    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]
    key_positions: tuple[int, ...]


@dataclass
class TableChanges:
    """One table's changed rows, in commit order: the operation (`I`, `U` or `D`; an update
    that moved the key is a `D` of the old key then a `U`), whether a value was an unchanged
    TOASTed one PostgreSQL did not send (the row must be read again), and the text values
    (None for NULL and for the values of a delete other than the key)."""

    #: the columns the values follow (the relation when the first change was decoded)
    columns: tuple[str, ...]
    key_positions: tuple[int, ...]
    ops: list[str] = field(default_factory=list)
    toasted: list[bool] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    #: the values are incomplete: columns changed between changes, or too many rows to keep
    #: (`MAX_ROWS_PER_TABLE`); only `Changes.keys` is then to be used
    partial: bool = False

    def value_columns(self) -> list[list[str | None]]:
        """The values as one list per column (a transpose in C, no Python per row)."""
        if not self.rows:
            return [[] for _ in self.columns]
        return [list(c) for c in zip(*self.rows, strict=True)]


@dataclass
class Changes:
    """What a run of decoded messages changed, per table (`schema.name`)."""

    #: table -> the text form of each changed row's key (inserted, updated or deleted)
    keys: dict[str, set[str]] = field(default_factory=dict)
    #: table -> its changed rows with their values, in commit order
    tables: dict[str, TableChanges] = field(default_factory=dict)
    #: tables truncated on the source (reloaded in full)
    truncated: set[str] = field(default_factory=set)
    #: the end position of the last commit read (what the slot may be advanced to)
    end_lsn: int | None = None
    #: ids of the transactions read (their rows must be visible before any is re-read)
    xids: set[int] = field(default_factory=set)
    #: changes (row messages) read
    messages: int = 0


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode("utf-8"), end + 1


def _tuple_values(data: bytes, pos: int) -> tuple[list[str | None], bool, int]:
    """A TupleData: each column's text (None for NULL or an unchanged TOASTed value), whether
    an unchanged TOASTed value was among them, and the position after it."""
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list[str | None] = []
    toasted = False
    for _ in range(count):
        kind = data[pos]
        pos += 1
        if kind == 116 or kind == 98:  # b"t" text, b"b" binary (never asked for)
            (length,) = _I32.unpack_from(data, pos)
            pos += 4
            values.append(data[pos:pos + length].decode("utf-8") if kind == 116 else None)
            pos += length
        else:  # b"n" (NULL) or b"u" (unchanged TOASTed value)
            values.append(None)
            toasted = toasted or kind == 117
    return values, toasted, pos


@dataclass
class _Pending:
    """One transaction's changes until its commit says whether they are kept."""

    rows: list[tuple[str, Relation, str, bool, list[str | None]]] = field(default_factory=list)
    truncated: set[str] = field(default_factory=set)


class Decoder:
    """Decodes the messages of one peek, in order, into `Changes`. Relation messages are kept
    per decoder: a peek session sends each relation before its first change. A transaction
    whose commit ends at or before `skip_through` (already applied) is read and dropped."""

    def __init__(self, skip_through: int | None = None) -> None:
        self.relations: dict[int, Relation] = {}
        self.changes = Changes()
        self.skip_through = skip_through if skip_through is not None else -1
        self._pending = _Pending()
        self._xid = 0

    def _commit(self, end: int) -> None:
        if end > self.skip_through:
            changes = self.changes
            for table, relation, op, toasted, values in self._pending.rows:
                key = "\x1f".join(values[i] or "" for i in relation.key_positions)
                changes.keys.setdefault(table, set()).add(key)
                current = changes.tables.get(table)
                if current is None:
                    current = changes.tables[table] = TableChanges(relation.columns,
                                                                   relation.key_positions)
                if current.partial:
                    continue
                if (current.columns != relation.columns
                        or len(current.rows) >= MAX_ROWS_PER_TABLE):
                    current.partial = True
                    current.ops, current.toasted, current.rows = [], [], []
                    continue
                current.ops.append(op)
                current.toasted.append(toasted)
                current.rows.append(values)
            changes.truncated |= self._pending.truncated
            changes.xids.add(self._xid)
            changes.messages += len(self._pending.rows)
        self.changes.end_lsn = max(end, self.changes.end_lsn or 0)
        self._pending = _Pending()

    def feed(self, data: bytes) -> None:
        kind = data[:1]
        if kind in (b"I", b"U", b"D"):
            (oid,) = _I32.unpack_from(data, 1)
            relation = self.relations[oid & 0xFFFFFFFF]
            table = f"{relation.schema}.{relation.name}"
            pos = 5
            while True:
                part = data[pos:pos + 1]
                values, toasted, pos = _tuple_values(data, pos + 1)
                if part == b"N":  # an insert's or update's new row
                    self._pending.rows.append((table, relation, "I" if kind == b"I" else "U",
                                               toasted, values))
                    break
                # 'K' (the key) or 'O' (the old row): a delete, or an update that moved the
                # key — the old key goes, the new row ('N') follows.
                self._pending.rows.append((table, relation, "D", False, values))
                if pos >= len(data):
                    break
        elif kind == b"B":  # Begin: final LSN, commit time, xid
            (xid,) = _I32.unpack_from(data, 17)
            self._xid = xid & 0xFFFFFFFF
        elif kind == b"C":  # Commit: flags, commit LSN, end LSN, commit time
            (end,) = _I64.unpack_from(data, 10)
            self._commit(end)
        elif kind == b"R":
            (oid,) = _I32.unpack_from(data, 1)
            schema, pos = _cstring(data, 5)
            name, pos = _cstring(data, pos)
            pos += 1  # replica identity setting
            (count,) = _I16.unpack_from(data, pos)
            pos += 2
            columns, keys = [], []
            for i in range(count):
                flags = data[pos]
                column, pos = _cstring(data, pos + 1)
                pos += 8  # type oid, type modifier
                columns.append(column)
                if flags & 1:
                    keys.append(i)
            self.relations[oid & 0xFFFFFFFF] = Relation(oid, schema, name, tuple(columns),
                                                        tuple(keys))
        elif kind == b"T":  # Truncate: relation count, options, oids
            (count,) = _I32.unpack_from(data, 1)
            for i in range(count):
                (oid,) = _I32.unpack_from(data, 6 + 4 * i)
                relation = self.relations.get(oid & 0xFFFFFFFF)
                if relation is not None:
                    self._pending.truncated.add(f"{relation.schema}.{relation.name}")
        # Origin, Type and logical Message messages change no row.

    def feed_all(self, messages: Iterable[bytes]) -> Changes:
        for data in messages:
            self.feed(data)
        return self.changes
