#!/usr/bin/env bash
# `crm-analytics run` on the medium scale (SQLite source -> DuckDB warehouse), timed after the
# data is generated. Usage: benchmarks/bench_run_medium.sh [scale]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCALE="${1:-medium}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export CRM_SOURCE_URL="sqlite:///$WORK/erp.sqlite" CRM_EVENTS_PATH="$WORK/events" \
       CRM_WAREHOUSE_URL="duckdb:///$WORK/wh.duckdb"
/usr/bin/time -f "generate --scale $SCALE: %e s wall, peak RSS %M KB" \
  "$ROOT/.venv/bin/crm-analytics" generate --scale "$SCALE" --end-date 2026-11-01 --quiet
/usr/bin/time -f "run (first, full load) on $SCALE: %e s wall, peak RSS %M KB" \
  "$ROOT/.venv/bin/crm-analytics" run --date 2026-11-01
/usr/bin/time -f "run (again, nothing new) on $SCALE: %e s wall, peak RSS %M KB" \
  "$ROOT/.venv/bin/crm-analytics" run --date 2026-11-01
