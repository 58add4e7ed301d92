"""Just enough of PostgreSQL's `pgoutput` logical-decoding protocol (version 1, text format)
for the change-data-capture sync: each changed row's column values in commit order, the keys
that changed, and the commit positions.

The decoding is columnar, so its cost follows the number of columns, not of values: a batch of
messages is gathered into one buffer, the few Relation/Begin/Commit/Truncate messages are read
one by one, and the row messages (Insert, Update, Delete) of each relation are decoded
together — one numpy step per column across all of them reads every value's kind and length
and moves every message's position on — and each column becomes an Arrow string array gathered
from the buffer in C++. A table's changes are handed to the warehouse as one Arrow table of
text values (as PostgreSQL's output functions wrote them), which it casts to the declared
types in one statement.

Message layouts:
https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_core.errors import CrmError, first_line

#: Rows whose values are kept per table; past it only the keys are kept (the sync then reads
#: the rows by key or copies the table), so a mass update cannot fill the sync's memory.
MAX_ROWS_PER_TABLE = 500_000

_INSERT, _UPDATE, _DELETE, _BEGIN, _COMMIT = b"IUDBC"
_RELATION, _TRUNCATE = b"RT"
_NEW, _KEY, _OLD = b"NKO"
_TEXT, _BINARY, _NULL, _UNCHANGED = b"tbnu"
#: Zero bytes after the gathered messages: a fixed-width read at any position inside a message
#: stays inside the buffer.
_PAD = 8


@dataclass(frozen=True)
class Relation:
    """A Relation message: a table as the publisher sees it now (sent before its first change
    in a session and again after its columns change)."""

    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]
    key_positions: tuple[int, ...]

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"


def changes_schema(columns: int) -> pa.Schema:
    """The Arrow layout of a table's changes: `__seq` (commit order: larger is later), `__op`
    (`I`, `U` or `D`), `__toasted` (an unchanged TOASTed value was left out: the row must be
    read again) and `c0`…`cN`, the text of each column in the relation's order (null for NULL,
    for an unchanged TOASTed value and for the non-key values of a delete)."""
    return pa.schema([("__seq", pa.int64()), ("__op", pa.string()), ("__toasted", pa.bool_()),
                      *((f"c{i}", pa.string()) for i in range(columns))])


@dataclass
class TableChanges:
    """One table's changed rows, in commit order (an update that moved the key is a `D` of
    the old key, then the `U`)."""

    #: the columns the values follow (the relation when the first change was decoded)
    columns: tuple[str, ...]
    #: the values are incomplete: columns changed between changes, or too many rows to keep
    #: (`MAX_ROWS_PER_TABLE`); only `keys()` is then to be used
    partial: bool = False
    #: rows kept (0 once partial)
    rows: int = 0
    #: rows kept that left an unchanged TOASTed value out
    toasted: int = 0
    _pieces: list[pa.Table] = field(default_factory=list, repr=False)
    _keys: list[pa.ChunkedArray] = field(default_factory=list, repr=False)

    def add(self, relation: Relation, piece: pa.Table) -> None:
        """Append committed rows decoded with `relation` (the partial rule applies here)."""
        self._keys.append(_key_text(piece, relation.key_positions))
        if self.partial:
            return
        if (relation.columns != self.columns
                or self.rows + piece.num_rows > MAX_ROWS_PER_TABLE):
            self.partial = True
            self._pieces, self.rows, self.toasted = [], 0, 0
            return
        self._pieces.append(piece)
        self.rows += piece.num_rows
        self.toasted += pc.sum(piece["__toasted"]).as_py() or 0

    def table(self) -> pa.Table:
        """The kept rows as one Arrow table (`changes_schema`), in commit order."""
        if not self._pieces:
            return changes_schema(len(self.columns)).empty_table()
        table = pa.concat_tables(self._pieces)
        seq = table["__seq"].to_numpy()
        if (seq[1:] < seq[:-1]).any():  # two relations (oids) of one table, interleaved
            table = table.sort_by("__seq")
        return table

    def keys(self) -> set[str]:
        """The text form of every changed row's key, partial or not (key columns joined by
        `\\x1f`): what is read back from the source by key."""
        if not self._keys:
            return set()
        chunks = [chunk for keys in self._keys for chunk in keys.chunks]
        return set(pc.unique(pa.chunked_array(chunks, pa.string())).to_pylist())


def _key_text(piece: pa.Table, positions: tuple[int, ...]) -> pa.ChunkedArray:
    """Each row's key as text, as the by-key read expects it (NULL as the empty string)."""
    parts = [pc.fill_null(piece[f"c{i}"], "") for i in positions]
    if not parts:
        return pa.chunked_array([pa.repeat(pa.scalar("", pa.string()), piece.num_rows)])
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "\x1f")


@dataclass
class Changes:
    """What a run of decoded messages changed, per table (`schema.name`)."""

    #: table -> its changed rows with their values, in commit order
    tables: dict[str, TableChanges] = field(default_factory=dict)
    #: tables truncated on the source (reloaded in full)
    truncated: set[str] = field(default_factory=set)
    #: the end position of the last commit read
    end_lsn: int | None = None
    #: every transaction whose commit record starts before this position was read (the
    #: source's flushed WAL when the peek began): the slot may be confirmed up to here, past
    #: the last commit read, when the ERP wrote only to tables outside the publication since
    read_through: int | None = None
    #: ids of the transactions read (their rows must be visible before any is re-read)
    xids: set[int] = field(default_factory=set)


def _malformed(what: str) -> CrmError:
    return CrmError(f"cdc: unexpected pgoutput message from the slot ({what})")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CrmError(f"cdc: {what} from the slot is not valid UTF-8 (the source database's "
                       "encoding must be UTF8)") from None


def _relation(data: bytes) -> Relation:
    (oid,) = struct.unpack_from("!I", data, 1)
    fields = data[5:].split(b"\0", 2)
    schema, name = _text(fields[0], "a schema name"), _text(fields[1], "a table name")
    pos = 5 + len(fields[0]) + len(fields[1]) + 2 + 1  # two names, the replica identity
    (count,) = struct.unpack_from("!h", data, pos)
    pos += 2
    columns, keys = [], []
    for i in range(count):
        flags = data[pos]
        end = data.index(0, pos + 1)
        columns.append(_text(data[pos + 1:end], "a column name"))
        pos = end + 1 + 8  # type oid, type modifier
        if flags & 1:
            keys.append(i)
    return Relation(oid, schema, name, tuple(columns), tuple(keys))


class _Batch:
    """A batch of messages gathered into one buffer, with fixed-width big-endian reads at
    many positions at once."""

    def __init__(self, messages: Sequence[bytes]) -> None:
        count = len(messages)
        lengths = np.fromiter(map(len, messages), np.int64, count)
        if (lengths == 0).any():
            raise _malformed("an empty message")
        self.starts = np.zeros(count, np.int64)
        np.cumsum(lengths[:-1], out=self.starts[1:])
        self.ends = self.starts + lengths
        self.data = b"".join(messages)
        #: bytes of messages (a position past it is a malformed message)
        self.size = len(self.data)
        self.data += bytes(_PAD)
        self.buf = np.frombuffer(self.data, np.uint8)
        self.kinds = self.buf[self.starts]
        self.arrow = pa.py_buffer(self.data)

    def length(self, at: np.ndarray) -> np.ndarray:
        """The length of each message in `at`."""
        return self.ends[at] - self.starts[at]

    def int_at(self, at: np.ndarray, width: int) -> np.ndarray:
        """The unsigned big-endian integers of `width` bytes at each position in `at`."""
        value = self.buf[at].astype(np.int64)
        for k in range(1, width):
            value = (value << 8) | self.buf[at + k]
        return value


@dataclass
class _Columns:
    """Where each value of some tuples lies in the buffer: per column the start, end and
    whether it is a text value (else null), and per tuple whether a value was an unchanged
    TOASTed one and where the tuple ends."""

    starts: list[np.ndarray]
    ends: list[np.ndarray]
    text: list[np.ndarray]
    toasted: np.ndarray
    end: np.ndarray

    def join(self, other: _Columns, order: np.ndarray) -> _Columns:
        """These tuples and `other`'s, in `order` (positions in the two, one after the other).
        """
        def merged(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
            return [np.concatenate([x, y])[order] for x, y in zip(a, b, strict=True)]

        return _Columns(merged(self.starts, other.starts), merged(self.ends, other.ends),
                        merged(self.text, other.text),
                        np.concatenate([self.toasted, other.toasted])[order],
                        np.concatenate([self.end, other.end])[order])


def _tuples(batch: _Batch, at: np.ndarray, count: int) -> _Columns:
    """Walk the TupleData starting at each position of `at`, one column at a time across all
    of them (every tuple of a relation has its `count` columns)."""
    if (batch.int_at(at, 2) != count).any():
        raise _malformed("a tuple's column count differs from its relation's")
    pos = at + 2
    buf = batch.buf
    toasted = np.zeros(len(at), np.bool_)
    starts, ends, texts = [], [], []
    for _ in range(count):
        kind = buf[pos]
        text = kind == _TEXT
        sized = text | (kind == _BINARY)
        unchanged = kind == _UNCHANGED
        known = sized | unchanged | (kind == _NULL)
        if not known.all():
            raise _malformed(f"a value of kind {bytes([kind[~known][0]])!r}")
        toasted |= unchanged
        length = np.where(sized, batch.int_at(pos + 1, 4), 0)  # -1 reads as 2**32 - 1
        start = pos + 5 * text
        starts.append(start)
        ends.append(start + length * text)
        texts.append(text)
        pos = pos + 1 + sized * (4 + length)
        if pos.max() > batch.size:
            raise _malformed("a value past the end of the messages")
    return _Columns(starts, ends, texts, toasted, pos)


def _strings(batch: _Batch, starts: np.ndarray, ends: np.ndarray, text: np.ndarray,
             evens: pa.Array, relation: Relation, column: int) -> pa.Array:
    """One column of text values, gathered from the buffer: an array of 2n slices of it — each
    value, then the bytes up to the next value — of which Arrow takes every other one into a
    contiguous string array (and checks the UTF-8)."""
    rows = len(starts)
    offsets = np.empty(2 * rows + 1, np.int64)
    offsets[0:-1:2], offsets[1::2] = starts, ends
    offsets[-1] = ends[-1] if rows else 0
    validity = None
    if not text.all():
        valid = np.ones(2 * rows, np.bool_)
        valid[0::2] = text
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    slices = pa.Array.from_buffers(pa.large_binary(), 2 * rows,
                                   [validity, pa.py_buffer(offsets), batch.arrow])
    values = slices.take(evens)
    try:
        return values.cast(pa.string())
    except pa.ArrowInvalid as exc:
        where = f"{relation.table}.{relation.columns[column]}"
        if "UTF8" not in str(exc):  # more than 2 GiB of one column in one batch
            raise CrmError(f"cdc: the values of {where} in one batch of the slot's messages "
                           f"are too large ({first_line(exc)})") from None
        raise CrmError(f"cdc: a value of {where} from the slot is not valid UTF-8 (the "
                       "source database's encoding must be UTF8)") from None


def _rows(batch: _Batch, relation: Relation, at: np.ndarray, base: int
          ) -> tuple[pa.Table, np.ndarray]:
    """The Insert, Update and Delete messages at `at` (all of `relation`, in order) as rows:
    an insert's or update's new row, a delete's key (or old row), and for an update that
    carries its old key ('K') or old row ('O') a `D` of that, then the new row. Returns the
    rows and the message each came from."""
    begin = batch.starts[at]
    kind = batch.kinds[at]
    part = batch.buf[begin + 5]
    new = part == _NEW
    old = (part == _KEY) | (part == _OLD)
    if ((kind == _INSERT) & ~new).any() or ((kind == _DELETE) & ~old).any() or (
            (kind == _UPDATE) & ~new & ~old).any():
        raise _malformed("a row message without its tuple")
    count = len(relation.columns)
    values = _tuples(batch, begin + 6, count)
    ops = np.where(new, kind, _DELETE).astype(np.uint8)
    toasted = values.toasted & new  # a delete only needs its key
    seq = 2 * (base + at)
    message = at
    tuple_end = values.end
    two = np.flatnonzero(old & (kind == _UPDATE))
    if len(two):
        if (batch.buf[values.end[two]] != _NEW).any():
            raise _malformed("an update without its new row")
        second = _tuples(batch, values.end[two] + 1, count)
        tuple_end = tuple_end.copy()
        tuple_end[two] = second.end
        order = np.argsort(np.concatenate([seq, seq[two] + 1]))
        values = values.join(second, order)
        toasted = np.concatenate([toasted, second.toasted])[order]
        ops = np.concatenate([ops, np.full(len(two), _UPDATE, np.uint8)])[order]
        seq = np.concatenate([seq, seq[two] + 1])[order]
        message = np.concatenate([at, at[two]])[order]
    if (tuple_end != batch.ends[at]).any():
        raise _malformed("a row message longer or shorter than its tuples")
    rows = len(seq)
    evens = pa.array(np.arange(0, 2 * rows, 2))
    columns = {f"c{i}": _strings(batch, values.starts[i], values.ends[i], values.text[i],
                                 evens, relation, i) for i in range(count)}
    op_strings = pa.Array.from_buffers(pa.string(), rows, [
        None, pa.py_buffer(np.arange(rows + 1, dtype=np.int32)), pa.py_buffer(ops.tobytes())])
    table = pa.table({"__seq": pa.array(seq, pa.int64()), "__op": op_strings,
                      "__toasted": pa.array(toasted, pa.bool_()), **columns})
    return table, message


class Decoder:
    """Decodes the messages of one peek, batch by batch and in order, into `Changes`.
    Relation messages are kept per decoder: a peek session sends each relation before its
    first change. A transaction whose commit record starts before `skip_through` (already
    applied) is read and dropped — PostgreSQL's own rule for a slot confirmed up to there;
    one still open at the end of a batch waits for its commit in a later one."""

    def __init__(self, skip_through: int | None = None) -> None:
        self.relations: dict[int, Relation] = {}
        self.changes = Changes()
        self.skip_through = skip_through if skip_through is not None else -1
        self._xid = 0
        self._fed = 0
        #: the open transaction's rows and truncated tables (from earlier batches)
        self._pending: list[tuple[Relation, pa.Table]] = []
        self._pending_truncated: set[str] = set()

    def feed(self, messages: Sequence[bytes]) -> None:
        """Decode the next messages of the peek."""
        if not messages:
            return
        batch = _Batch(messages)
        base, self._fed = self._fed, self._fed + len(messages)
        kinds = batch.kinds
        commits = np.flatnonzero(kinds == _COMMIT)
        begins = np.flatnonzero(kinds == _BEGIN)
        if (batch.length(commits) < 26).any() or (batch.length(begins) < 21).any():
            raise _malformed("a short Begin or Commit message")
        # flags, commit LSN (where the commit record starts), end LSN
        commit_starts = batch.int_at(batch.starts[commits] + 2, 8)
        ends = batch.int_at(batch.starts[commits] + 10, 8)
        begin_xids = batch.int_at(batch.starts[begins] + 17, 4)
        # Each commit's transaction id: of the last Begin before it (or of an earlier batch).
        previous = np.searchsorted(begins, commits) - 1
        xids = np.where(previous >= 0, begin_xids[np.maximum(previous, 0)]
                        if len(begins) else 0, self._xid)
        kept = commit_starts >= self.skip_through

        relations_before = dict(self.relations)
        versions: dict[int, list[tuple[int, Relation]]] = {}
        truncates: list[tuple[int, str]] = []
        rows = (kinds == _INSERT) | (kinds == _UPDATE) | (kinds == _DELETE)
        for i in np.flatnonzero(~rows & (kinds != _BEGIN) & (kinds != _COMMIT)).tolist():
            try:
                self._control(messages[i], i, versions, truncates)
            except (struct.error, IndexError, ValueError):
                raise _malformed(f"a {chr(messages[i][0])!r} message") from None

        decoded = [(relation, _rows(batch, relation, at, base))
                   for relation, at in self._groups(batch, np.flatnonzero(rows),
                                                    relations_before, versions)]

        # The open transaction of the earlier batches commits with this batch's first commit.
        if len(commits):
            if kept[0]:
                for relation, piece in self._pending:
                    self._add(relation, piece)
                self.changes.truncated |= self._pending_truncated
            self._pending, self._pending_truncated = [], set()
        for i, table in truncates:
            which = np.searchsorted(commits, i)
            if which == len(commits):
                self._pending_truncated.add(table)
            elif kept[which]:
                self.changes.truncated.add(table)
        for relation, (piece, message) in decoded:
            which = np.searchsorted(commits, message)
            committed = int((which < len(commits)).sum())  # the open transaction's come last
            keep = kept[np.minimum(which[:committed], len(commits) - 1)] if committed else None
            if keep is not None and keep.all():
                self._add(relation, piece.slice(0, committed))
            elif keep is not None and keep.any():
                self._add(relation, piece.slice(0, committed).filter(pa.array(keep)))
            if committed < piece.num_rows:
                self._pending.append((relation, piece.slice(committed)))
        self.changes.xids.update(xids[kept].tolist())
        if len(ends):
            self.changes.end_lsn = max(int(ends.max()), self.changes.end_lsn or 0)
        if len(begins):
            self._xid = int(begin_xids[-1])

    def _control(self, data: bytes, i: int, versions: dict[int, list[tuple[int, Relation]]],
                 truncates: list[tuple[int, str]]) -> None:
        """A message other than Begin, Commit and the row messages, at position `i`."""
        if data[0] == _RELATION:
            relation = _relation(data)
            self.relations[relation.oid] = relation
            versions.setdefault(relation.oid, []).append((i, relation))
        elif data[0] == _TRUNCATE:  # relation count, options, oids
            (count,) = struct.unpack_from("!i", data, 1)
            for oid in struct.unpack_from(f"!{count}I", data, 6):
                if oid in self.relations:
                    truncates.append((i, self.relations[oid].table))
        # Origin, Type and logical Message messages change no row.

    def _groups(self, batch: _Batch, at: np.ndarray, before: dict[int, Relation],
                versions: dict[int, list[tuple[int, Relation]]]
                ) -> list[tuple[Relation, np.ndarray]]:
        """The row messages at `at` grouped by the relation each was written with (a table's
        Relation message may come again in the batch, after its columns changed), in the order
        of their first message."""
        if not len(at):
            return []
        oids = batch.int_at(batch.starts[at] + 1, 4)
        groups = []
        for oid in np.unique(oids).tolist():
            mine = at[oids == oid]
            history = versions.get(oid, [])
            which = np.searchsorted(np.array([i for i, _ in history], np.int64), mine)
            for version in np.unique(which).tolist():
                relation = before.get(oid) if version == 0 else history[version - 1][1]
                if relation is None:
                    raise _malformed(f"a change of relation {oid} before its Relation message")
                groups.append((relation, mine[which == version]))
        groups.sort(key=lambda group: int(group[1][0]))
        return groups

    def _add(self, relation: Relation, piece: pa.Table) -> None:
        if not piece.num_rows:
            return
        current = self.changes.tables.get(relation.table)
        if current is None:
            current = self.changes.tables[relation.table] = TableChanges(relation.columns)
        current.add(relation, piece)
