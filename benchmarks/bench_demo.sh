#!/usr/bin/env bash
# `make demo` on a fresh clone: the whole of it (runtime-only install into a new .venv, then
# generate the small demo + one run + headline numbers), the size of the .venv it leaves, and
# the pipeline part again on its own. Usage: benchmarks/bench_demo.sh
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git clone --quiet "$SRC" "$WORK/repo"
cd "$WORK/repo"
/usr/bin/time -f "make demo (fresh clone): %e s wall, peak RSS %M KB" make demo > "$WORK/demo.log"
echo "demo .venv: $(du -sh .venv | cut -f1)"
/usr/bin/time -f "pipeline again (demo data exists: run only): %e s wall, peak RSS %M KB" \
  .venv/bin/crm-analytics demo > /dev/null
