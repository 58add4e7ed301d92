"""Just enough of PostgreSQL's `pgoutput` logical-decoding protocol (version 1) for the
change-data-capture sync: which table's rows changed, their keys, and the commit positions.

The sync does not apply the decoded column values: it reads the changed rows again from the
source by key, with the same bulk paths a full sync uses (so types, unchanged TOASTed values
and added columns need no decoding here). Message layouts:
https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

_I16, _I32, _I64 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")


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
class Changes:
    """What a run of decoded messages changed, per table (`schema.name`)."""

    #: table -> the text form of each changed row's key (inserted, updated or deleted)
    keys: dict[str, set[str]] = field(default_factory=dict)
    #: tables truncated on the source (reloaded in full)
    truncated: set[str] = field(default_factory=set)
    #: the end position of the last commit read (what the slot may be advanced to)
    end_lsn: int | None = None
    #: ids of the transactions read (their rows must be visible before they are re-read)
    xids: set[int] = field(default_factory=set)
    #: changes (row messages) read
    messages: int = 0


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode("utf-8"), end + 1


def _tuple_values(data: bytes, pos: int) -> tuple[list[str | None], int]:
    """A TupleData: each column's text (None for NULL or an unchanged TOASTed value)."""
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list[str | None] = []
    for _ in range(count):
        kind = data[pos:pos + 1]
        pos += 1
        if kind in (b"t", b"b"):
            (length,) = _I32.unpack_from(data, pos)
            pos += 4
            values.append(data[pos:pos + length].decode("utf-8") if kind == b"t" else None)
            pos += length
        else:  # b"n" (NULL) or b"u" (unchanged TOASTed value)
            values.append(None)
    return values, pos


class Decoder:
    """Decodes the messages of one peek, in order, into `Changes`. Relation messages are kept
    per decoder: a peek session sends each relation before its first change. A transaction
    whose commit ends at or before `skip_through` (already applied) is read and dropped."""

    def __init__(self, skip_through: int | None = None) -> None:
        self.relations: dict[int, Relation] = {}
        self.changes = Changes()
        self.skip_through = skip_through if skip_through is not None else -1
        self._keys: dict[str, set[str]] = {}
        self._truncated: set[str] = set()
        self._xid = 0
        self._messages = 0

    def _key(self, relation: Relation, values: list[str | None]) -> None:
        key = "\x1f".join(values[i] or "" for i in relation.key_positions)
        self._keys.setdefault(f"{relation.schema}.{relation.name}", set()).add(key)
        self._messages += 1

    def _commit(self, end: int) -> None:
        if end > self.skip_through:
            for table, keys in self._keys.items():
                self.changes.keys.setdefault(table, set()).update(keys)
            self.changes.truncated |= self._truncated
            self.changes.xids.add(self._xid)
            self.changes.messages += self._messages
        self.changes.end_lsn = max(end, self.changes.end_lsn or 0)
        self._keys, self._truncated, self._messages = {}, set(), 0

    def feed(self, data: bytes) -> None:
        kind = data[:1]
        if kind == b"B":  # Begin: final LSN, commit time, xid
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
        elif kind in (b"I", b"U", b"D"):
            (oid,) = _I32.unpack_from(data, 1)
            relation = self.relations[oid & 0xFFFFFFFF]
            pos = 5
            while True:
                part = data[pos:pos + 1]
                values, pos = _tuple_values(data, pos + 1)
                # An update's old key ('K'/'O') and its new tuple ('N'): both keys changed
                # (a key update deletes the old one).
                self._key(relation, values)
                if part == b"N" or pos >= len(data):
                    break
        elif kind == b"T":  # Truncate: relation count, options, oids
            (count,) = _I32.unpack_from(data, 1)
            for i in range(count):
                (oid,) = _I32.unpack_from(data, 6 + 4 * i)
                relation = self.relations.get(oid & 0xFFFFFFFF)
                if relation is not None:
                    self._truncated.add(f"{relation.schema}.{relation.name}")
        # Origin, Type and logical Message messages change no row.

    def feed_all(self, messages: Iterable[bytes]) -> Changes:
        for data in messages:
            self.feed(data)
        return self.changes
