"""CPU time of the `pgoutput` decoder alone, on synthetic messages. Not a test.

    .venv/bin/python benchmarks/bench_pgoutput.py [--rows 44000] [--columns 22]

The messages are what the CDC benchmark's incremental sync peeks at `large` (bench_cdc.py):
`--rows` changes of one table of `--columns` text columns (every fifth value NULL), in 100
transactions, fed in the peek's batches (`cdc_slot.PEEK_BATCH`), up to the Arrow table the
warehouse reads. Two workloads: updates only, and 80% updates, 10% deletes, 10% inserts with
every tenth update moving its key (a delete of the old key, then the new row). Prints the best
of five runs (process CPU seconds) of each.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingestion.erp.cdc_slot import PEEK_BATCH  # noqa: E402
from ingestion.erp.pgoutput import Decoder  # noqa: E402

TRANSACTIONS = 100


def relation(columns: int) -> bytes:
    body = struct.pack("!I", 1) + b"public\0crm_deals\0d" + struct.pack("!h", columns)
    for i in range(columns):
        body += bytes([i == 0]) + f"c{i}\0".encode() + struct.pack("!Ii", 25, -1)
    return b"R" + body


def tuple_data(values: list[str | None]) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        else:
            data = value.encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


def messages(rows: int, columns: int, mixed: bool) -> list[bytes]:
    out = [relation(columns)]
    per_transaction = rows // TRANSACTIONS
    n = 0
    for t in range(TRANSACTIONS):
        out.append(b"B" + struct.pack("!qqi", 0, 0, t))
        for _ in range(per_transaction):
            values = [str(n)] + [f"value{n % 97}-{i}" if i % 5 else None
                                 for i in range(1, columns)]
            kind = n % 10 if mixed else 1
            oid = struct.pack("!I", 1)
            if kind == 0:
                out.append(b"I" + oid + b"N" + tuple_data(values))
            elif kind == 9:
                out.append(b"D" + oid + b"K" + tuple_data([str(n)] + [None] * (columns - 1)))
            elif kind == 5:
                old = tuple_data([str(n + rows)] + [None] * (columns - 1))
                out.append(b"U" + oid + b"K" + old + b"N" + tuple_data(values))
            else:
                out.append(b"U" + oid + b"N" + tuple_data(values))
            n += 1
        out.append(b"C\0" + struct.pack("!qqq", 0, 1000 + t, 0))
    return out


def decode(batch: list[bytes]) -> int:
    decoder = Decoder()
    for i in range(0, len(batch), PEEK_BATCH):
        decoder.feed(batch[i:i + PEEK_BATCH])
    return decoder.changes.tables["public.crm_deals"].table().num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=44_000)
    parser.add_argument("--columns", type=int, default=22)
    args = parser.parse_args()
    decode(messages(1000, args.columns, True))  # imports and first calls
    for mixed in (False, True):
        batch = messages(args.rows, args.columns, mixed)
        times = []
        for _ in range(5):
            started = time.process_time()
            rows = decode(batch)
            times.append(time.process_time() - started)
        print(f"{'mixed' if mixed else 'updates'}: {len(batch) - 1 - 2 * TRANSACTIONS:,} row "
              f"messages, {rows:,} rows, {args.columns} columns: {min(times):.3f} s CPU "
              f"(best of 5; median {sorted(times)[2]:.3f} s)")


if __name__ == "__main__":
    main()
