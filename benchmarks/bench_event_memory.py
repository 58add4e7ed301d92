"""Peak memory of loading hostile event files, each load in a fresh child process.

    .venv/bin/python benchmarks/bench_event_memory.py [--gib 1.0] [--line-mb 200]

Cases (same lines in the first two; memory is each child's own peak RSS,
`ru_maxrss`):
- `baseline`: a one-line file (what the interpreter, DuckDB and Arrow cost on their own);
- `normal day`: `--gib` GiB of valid event lines in one plain `.jsonl` file;
- `gz bomb`: the very same bytes gzipped (a few MB on disk, `--gib` GiB inflated);
- `huge line`: one `--line-mb` MB line without a newline (rejected as `line_too_long`).

Reports the gz bomb's peak over the normal day's (goal < 1.5) and the huge line's cost — its
peak minus the baseline's — over its size (goal <= 2). Ratios are taken within one run, so a
busy machine moves both sides alike. Not a test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DAY = "2026-03-01"

CHILD = """
import resource
import sys
from datetime import date
from pathlib import Path
from crm_core.urls import parse_warehouse_url
from ingestion.events.files import load_events
from ingestion.warehouse import open_warehouse
events, work = Path(sys.argv[1]), Path(sys.argv[2])
wh = open_warehouse(parse_warehouse_url(f"duckdb:///{work}/wh.duckdb", work))
try:
    report = load_events(events, wh, as_of=date(2026, 3, 1))
finally:
    wh.close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, report.events, report.rejected)
"""


def chunk() -> bytes:
    """64 distinct valid lines (~16 KB): repeated, they fill a day; gzipped, they shrink
    ~100-fold (the repetition is within deflate's window)."""
    lines = [json.dumps({"specversion": "1.0", "id": f"evt-{i:06d}", "source": "erp/crm/1",
                         "type": "erp.campaign.impression", "time": f"{DAY}T10:{i % 60:02d}:00Z",
                         "data": {"campaign_id": i % 40 + 1, "contact_id": 1000 + i,
                                  "business_id": 1, "branch_id": 2, "note": "x" * 150}})
             for i in range(64)]
    return ("\n".join(lines) + "\n").encode()


def write_case(root: Path, name: str, writer) -> Path:  # noqa: ANN001 - a callable(path)
    folder = root / name / "events" / DAY
    folder.mkdir(parents=True)
    writer(folder)
    return root / name


def measure(case: Path) -> tuple[int, str]:
    """(peak RSS in bytes, events and rejects) of loading `case` in a fresh process; the child
    reports its own `ru_maxrss` (KiB on Linux)."""
    work = case / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(case / "events"), str(work)],
                          capture_output=True, text=True, check=True)
    peak_kib, *counts = proc.stdout.strip().splitlines()[-1].split()  # after any progress bar
    return int(peak_kib) * 1024, " ".join(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--line-mb", type=int, default=200)
    args = parser.parse_args()
    block = chunk()
    repeats = int(args.gib * (1 << 30)) // len(block)

    with tempfile.TemporaryDirectory(dir=Path.cwd() / "target" if (Path.cwd() / "target")
                                     .is_dir() else None) as tmp:
        root = Path(tmp)

        def tiny(folder: Path) -> None:
            (folder / "one.jsonl").write_bytes(block.split(b"\n")[0] + b"\n")

        def plain(folder: Path) -> None:
            with (folder / "day.jsonl").open("wb") as out:
                for _ in range(repeats):
                    out.write(block)

        def bomb(folder: Path) -> None:
            with gzip.open(folder / "day.jsonl.gz", "wb", compresslevel=6) as out:
                for _ in range(repeats):
                    out.write(block)

        def huge(folder: Path) -> None:
            with (folder / "huge.jsonl").open("wb") as out:
                out.write(b'{"id": "huge", "note": "')
                piece = b"y" * (1 << 20)
                for _ in range(args.line_mb * 1_000_000 // len(piece)):
                    out.write(piece)

        cases = {"baseline": tiny, "huge line": huge, "normal day": plain, "gz bomb": bomb}
        peaks, sizes = {}, {}
        for name, writer in cases.items():
            case = write_case(root, name.replace(" ", "_"), writer)
            sizes[name] = sum(p.stat().st_size for p in (case / "events").rglob("*.jsonl*"))
            peaks[name], out = measure(case)
            print(f"{name:<11} on disk {sizes[name] / 1e6:9.1f} MB  peak RSS "
                  f"{peaks[name] / 2**20:8.0f} MiB  (events, rejected: {out})", flush=True)
        inflated = repeats * len(block)
        print(f"gz bomb: {sizes['gz bomb'] / 1e6:.1f} MB expanding to {inflated / 2**30:.2f} GiB")
        print(f"ratio gz bomb / normal day peak: {peaks['gz bomb'] / peaks['normal day']:.2f} "
              "(goal < 1.5)")
        cost = peaks["huge line"] - peaks["baseline"]
        print(f"huge line: {sizes['huge line'] / 1e6:.0f} MB line costs {cost / 2**20:.0f} MiB "
              f"over the baseline = {cost / sizes['huge line']:.2f}x its size (goal <= 2)")


if __name__ == "__main__":
    main()
