#!/usr/bin/env bash
# Daily rollup cost: day 1 (no history) against day N+1 after N=100 days of history.
# Both warehouses see the same ERP (one generated medium dataset); only the event history
# differs. Usage: benchmarks/bench_rollup.sh [scale]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCALE="${1:-medium}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CRM="$ROOT/.venv/bin/crm-analytics"
END=2026-10-31
FIRST=$(date -d "$END - 100 days" +%F)
DAY100=$(date -d "$END - 1 day" +%F)
export CRM_SOURCE_URL="sqlite:///$WORK/erp.sqlite" CRM_EVENTS_PATH="$WORK/events"
"$CRM" generate --scale "$SCALE" --days 101 --end-date "$END" --quiet

# Day 1: an empty warehouse rolls up the first landing day.
export CRM_WAREHOUSE_URL="duckdb:///$WORK/day1.duckdb"
/usr/bin/time -f "rollup of day 1 ($FIRST, no history): %e s wall" "$CRM" run --date "$FIRST"

# Day N+1: 100 days already rolled up, then the next day.
export CRM_WAREHOUSE_URL="duckdb:///$WORK/dayN.duckdb"
"$CRM" run --date "$DAY100" > /dev/null
/usr/bin/time -f "rollup of day 101 ($END, after 100 days): %e s wall" "$CRM" run --date "$END"
