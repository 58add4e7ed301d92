"""Server-side time of the dashboard pages (Streamlit's AppTest, in this process), cold and
cached, for a page run and for a filter change, on several warehouse scales.

    .venv/bin/python benchmarks/bench_dashboards.py small=/tmp/b/small large=/tmp/b/large

Each `scale=DIR` names a folder holding `wh.duckdb` (and its serving copy); when the folder
has none, it is built there first (`generate --scale <scale> --end-date 2026-11-01` into
SQLite, then `run`; `large` takes several minutes). Timings:

- cold page run: Streamlit's data cache cleared and the DuckDB connection dropped, then a new
  AppTest of the page is run (every query goes to the warehouse);
- cached page run: the same AppTest run again (every query answered from the cache);
- filter change, cold / cached: the business filter set to one business on an already rendered
  page, with the cache cleared / after the same change was made once.

Medians and 95th percentiles over `--repeat` runs; the last line compares each scale with the
first one (same process, same machine state).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = ["overview", "pipeline", "forecast", "team", "leads", "campaigns", "customers"]


def build(scale: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_env(folder)}
    cli = [sys.executable, "-m", "crm_cli.cli"]
    for args in (["generate", "--scale", scale, "--end-date", "2026-11-01", "--quiet"],
                 ["run", "--date", "2026-11-01"]):
        print(f"[{scale}] crm-analytics {' '.join(args)}", flush=True)
        subprocess.run(cli + args, cwd=folder, env=env, check=True)


def _env(folder: Path) -> dict[str, str]:
    return {"CRM_SOURCE_URL": f"sqlite:///{folder}/erp.sqlite",
            "CRM_EVENTS_PATH": f"{folder}/events",
            "CRM_WAREHOUSE_URL": f"duckdb:///{folder}/wh.duckdb",
            "CRM_REPORTING_TZ": "UTC"}


def _reset_caches() -> None:
    from dashboards import data

    data.CACHE.clear()
    data._duckdb_connections.clear()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(folder: Path, repeat: int) -> dict[str, dict[str, list[float]]]:
    from streamlit.testing.v1 import AppTest

    os.environ.update({"CRM_WAREHOUSE_URL": f"duckdb:///{folder}/wh.duckdb"})
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE"):
        os.environ.pop(key, None)
    out: dict[str, dict[str, list[float]]] = {}
    for page in PAGES:
        path = str(REPO / "dashboards" / "pages" / f"{page}.py")
        times: dict[str, list[float]] = {"cold": [], "cached": [], "filter_cold": [],
                                         "filter_cached": []}
        AppTest.from_file(path, default_timeout=300).run()  # warm imports, not timed
        for _ in range(repeat):
            _reset_caches()
            at = AppTest.from_file(path, default_timeout=300)
            times["cold"].append(_timed(at.run))
            times["cached"].append(_timed(at.run))
            assert not at.exception, [e.message for e in at.exception]
            _reset_caches()
            at.multiselect(key="filter_business").set_value([1])
            times["filter_cold"].append(_timed(at.run))
            at.multiselect(key="filter_business").set_value([])
            at.run()
            at.multiselect(key="filter_business").set_value([1])
            times["filter_cached"].append(_timed(at.run))
            assert not at.exception, [e.message for e in at.exception]
        out[page] = times
    return out


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scales", nargs="+", metavar="SCALE=DIR")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for item in args.scales:
        scale, _, folder = item.partition("=")
        path = Path(folder).resolve()
        if not (path / "wh.duckdb").exists():
            build(scale, path)
        results[scale] = measure(path, args.repeat)

    kinds = ["cold", "cached", "filter_cold", "filter_cached"]
    print("\n| scale | page | " + " | ".join(f"{k} median / p95 (ms)" for k in kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    for scale, pages in results.items():
        for page, times in pages.items():
            cells = [f"{statistics.median(times[k]):.0f} / {_p95(times[k]):.0f}" for k in kinds]
            print(f"| {scale} | {page} | " + " | ".join(cells) + " |")
    base = next(iter(results))
    for scale in list(results)[1:]:
        for kind in kinds:
            ratios = [statistics.median(results[scale][p][kind])
                      / statistics.median(results[base][p][kind]) for p in PAGES]
            print(f"{scale} / {base}, {kind}: median page ratio "
                  f"{statistics.median(ratios):.2f} (max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
