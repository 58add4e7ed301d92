"""What the sales cockpit marts add to the pipeline's `dbt build`, on a warehouse a `run`
built (e.g. at `medium`): the whole build and the build without the cockpit marts (and their
tests), alternated in one session so a shared machine's load hits both alike. The ratio is
the figure; the rest of a `run` (sync, event loading) does not change, so the ratio of the
build bounds the ratio of the run.

Usage: .venv/bin/python benchmarks/bench_cockpit_dbt.py WAREHOUSE.duckdb [rounds] [as_of]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the cockpit's own nodes; int_crm_campaigns is not here: it replaces a CTE the daily
#: campaign mart had before, at the same cost
COCKPIT = ["int_crm_deal_outcomes+", "stage_probability_overrides+",
           "deal_close_date_slippage+"]


def build(warehouse: str, as_of: str, exclude: list[str]) -> float:
    env = {**os.environ, "CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": warehouse,
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [str(Path(sys.executable).with_name("dbt")), "build", "--profiles-dir",
               str(ROOT), "--vars", json.dumps({"as_of_date": as_of, "reporting_tz": "UTC"}),
               "--target-path", str(ROOT / "target" / "bench_cockpit")]
    if exclude:
        command += ["--exclude", *exclude]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit("error: dbt build failed: " + result.stdout[-2000:])
    return elapsed


def main() -> None:
    warehouse = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    as_of = sys.argv[3] if len(sys.argv) > 3 else "2026-11-01"
    without, with_ = [], []
    for number in range(1, rounds + 1):
        without.append(build(warehouse, as_of, COCKPIT))
        with_.append(build(warehouse, as_of, []))
        print(f"round {number}: without cockpit {without[-1]:.1f} s, "
              f"with {with_[-1]:.1f} s", flush=True)
    print(f"dbt build: without {sum(without) / rounds:.1f} s, with {sum(with_) / rounds:.1f} s, "
          f"ratio {sum(with_) / sum(without):.3f}")


if __name__ == "__main__":
    main()
