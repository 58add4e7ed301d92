#!/usr/bin/env bash
# `make demo` on a fresh clone, timed in its two parts: install (venv + pip) and pipeline
# (generate the small demo + one run + headline numbers). Usage: benchmarks/bench_demo.sh
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git clone --quiet "$SRC" "$WORK/repo"
cd "$WORK/repo"
/usr/bin/time -f "install (make install, fresh venv): %e s wall, peak RSS %M KB" make --quiet install
/usr/bin/time -f "pipeline (crm-analytics demo: generate small + run): %e s wall, peak RSS %M KB" \
  .venv/bin/crm-analytics demo > /dev/null
/usr/bin/time -f "pipeline again (demo data exists: run only): %e s wall, peak RSS %M KB" \
  .venv/bin/crm-analytics demo > /dev/null
