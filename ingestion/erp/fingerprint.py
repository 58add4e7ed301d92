"""Hard deletes (and any drift) found by key-range fingerprints instead of by every key.

For a table with a one-column integer primary key, ids are grouped in buckets of 4,096
(`id >> 12`). Per bucket, both sides compute `count(*)`, the sum of the id's offset in its
bucket (`id & 4095`) and the sum of that offset squared: a query whose answer is a few hundred
rows however large the table, computed by the source (an index-only or sequential scan of the key,
nothing crosses the wire but the answer) and by the warehouse over `raw`. Offsets rather than
ids keep every sum exact in a plain bigint on every database (at most 4,096 × 4,095²).

A bucket whose three numbers differ is replaced from the source: its id range is deleted from
`raw` and the source's rows of that range are copied again. That removes hard deletes, brings
back anything `raw` lost, and costs only the differing ranges. Count + sum + sum of squares tell
apart any one or two ids gone and others come with the same count; a coincidence needs three or
more ids swapped inside one bucket with equal sums of offsets and of their squares, and even then
the rows that came are new rows, which arrive anyway through the cursor's delta.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingestion.warehouse import quote_ident

#: log2 of the ids per bucket: 4,096 ids, ~500 buckets for 2M rows.
BUCKET_BITS = 12
_OFFSET_MASK = (1 << BUCKET_BITS) - 1

Fingerprints = dict[int, tuple[int, int, int]]
Totals = tuple[int, int, int]


def fingerprint_sql(table_sql: str, key: str, cast: bool = True) -> str:
    """`select bucket, count, sum(offset), sum(offset²) … group by bucket` over `table_sql` (an
    already quoted table name). `cast`: bigint results (PostgreSQL's and DuckDB's sums widen to
    numeric/hugeint); off for databases whose CAST does not know `bigint` (MySQL)."""
    k = quote_ident(key)
    offset = f"({k} & {_OFFSET_MASK})"
    sums = [f"sum({offset})", f"sum({offset} * {offset})"]
    if cast:
        sums = [f"cast({s} as bigint)" for s in sums]
    return (f"select {k} >> {BUCKET_BITS} as bucket, count(*) as n, {sums[0]} as s1, "
            f"{sums[1]} as s2 from {table_sql} where {k} is not null "
            f"group by {k} >> {BUCKET_BITS}")


def totals_sql(table_sql: str, key: str) -> str:
    """The screen before the buckets: `count(*)`, `sum(id)`, `sum(id * id)` over the whole
    table, exact (PostgreSQL sums a bigint into numeric, DuckDB into hugeint) and read as text
    (numeric would reach DuckDB's postgres extension as a double). A plain aggregate is about
    three times cheaper than the grouped one, and most syncs see no delete. Only for keys of at
    most 32 bits, whose squares fit a bigint."""
    k = quote_ident(key)
    return (f"select count(*) as n, cast(sum({k}) as varchar) as s1, "
            f"cast(sum(cast({k} as bigint) * {k}) as varchar) as s2 from {table_sql}")


def as_totals(row: Sequence[object]) -> Totals:
    n, s1, s2 = row
    return int(n), int(s1 or 0), int(s2 or 0)  # type: ignore[call-overload]


def as_fingerprints(rows: Sequence[Sequence[object]]) -> Fingerprints:
    return {int(b): (int(n), int(s1), int(s2)) for b, n, s1, s2 in rows}  # type: ignore[call-overload]


def differing_ranges(source: Fingerprints, raw: Fingerprints) -> list[tuple[int, int]]:
    """Half-open id ranges `[lo, hi)` covering every bucket that differs, adjacent buckets
    merged (fewer, larger ranges: one predicate per run of buckets)."""
    buckets = sorted(b for b in source.keys() | raw.keys() if source.get(b) != raw.get(b))
    ranges: list[tuple[int, int]] = []
    for b in buckets:
        lo, hi = b << BUCKET_BITS, (b + 1) << BUCKET_BITS
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def ranges_sql(key: str, ranges: Sequence[tuple[int, int]]) -> str:
    """A predicate (valid on every database) selecting the ids in the ranges."""
    k = quote_ident(key)
    return " or ".join(f"({k} >= {lo} and {k} < {hi})" for lo, hi in ranges)
