#!/usr/bin/env bash
# `crm-analytics run` at a scale on this checkout vs on a base commit, interleaved in one
# session so that a shared machine's load hits both alike: the ratio is the figure, not the
# seconds. Both use this checkout's virtualenv; the base's code is an export of the commit put
# first on PYTHONPATH, run as `python -m` of its own command-line module (the installed console
# script would import this checkout's packages for a base whose layout differs). Same generated
# ERP and event files for every run; each run gets a fresh warehouse (first run: full load) and
# is then run again (nothing new: mostly `dbt build`).
# Usage: benchmarks/bench_run_vs_base.sh BASE_COMMIT [scale] [rounds]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${1:?usage: bench_run_vs_base.sh BASE_COMMIT [scale] [rounds]}"
SCALE="${2:-medium}"
ROUNDS="${3:-2}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/base"
git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base"
export CRM_SOURCE_URL="sqlite:///$WORK/erp.sqlite" CRM_EVENTS_PATH="$WORK/events"
CLI="$ROOT/.venv/bin/crm-analytics"
(cd "$WORK" && "$CLI" generate --scale "$SCALE" --end-date 2026-11-01 --quiet)

cli_module() {  # the command line's module in a checkout (it moved with the package layout)
  if [ -f "$1/crm_cli/cli.py" ]; then echo crm_cli.cli; else echo orchestration.cli; fi
}

timed() {  # timed LABEL CODE_DIR WAREHOUSE_DIR: two runs, seconds appended to $WORK/times
  local label="$1" code="$2" dir="$3" start end
  rm -rf "$dir" && mkdir -p "$dir"
  for pass in first again; do
    start=$(date +%s.%N)
    (cd "$dir" && CRM_WAREHOUSE_URL="duckdb:///$dir/wh.duckdb" PYTHONPATH="$code" \
      "$ROOT/.venv/bin/python" -m "$(cli_module "$code")" run --date 2026-11-01 \
      > "$dir/$pass.log" 2>&1)
    end=$(date +%s.%N)
    echo "$label $pass $(echo "$end - $start" | bc)" | tee -a "$WORK/times"
  done
}

for round in $(seq "$ROUNDS"); do
  timed base "$WORK/base" "$WORK/run_base"
  timed branch "$ROOT" "$WORK/run_branch"
done

"$ROOT/.venv/bin/python" - "$WORK/times" <<'PY'
import sys
from collections import defaultdict
times = defaultdict(list)
for line in open(sys.argv[1]):
    label, run, seconds = line.split()
    times[(label, run)].append(float(seconds))
for run in ("first", "again"):
    base, branch = sum(times[("base", run)]), sum(times[("branch", run)])
    print(f"run ({run}): base {base / len(times[('base', run)]):.1f} s, "
          f"branch {branch / len(times[('branch', run)]):.1f} s, ratio {branch / base:.3f}")
PY
