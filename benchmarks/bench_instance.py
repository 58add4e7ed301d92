"""Does run history slow a run down? `crm-analytics run` on an instance holding 1 recorded run
against the same run on one holding 100.

Both instances (two DAGSTER_HOMEs) serve the same small demo warehouse. Instance A records one
real pipeline run. Instance B records one real run and 99 cheap but real runs of a tiny job
that materializes every asset key of the pipeline (so B's event log holds 100 runs'
materializations of the very keys the pipeline writes). Then the same `run` (nothing new:
incremental sync, no event files, full dbt build) alternates between A and B, `--rounds`
times each, and the ratio of the medians is reported: interleaving makes a shared machine's
noise fall on both sides alike.

Usage: .venv/bin/python benchmarks/bench_instance.py [--rounds 3] [--history 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

CRM = str(Path(sys.executable).with_name("crm-analytics"))


def crm(args: list[str], cwd: Path, home: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["DAGSTER_HOME"] = str(home)
    started = time.perf_counter()
    subprocess.run([CRM, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def record_tiny_runs(home: Path, count: int) -> float:
    """`count` recorded runs of a one-op job materializing every pipeline asset key."""
    from dagster import AssetMaterialization, job, op

    from orchestration.definitions import defs
    from orchestration.instance import dagster_instance

    keys = list(defs.resolve_asset_graph().get_all_asset_keys())

    @op
    def touch(context) -> None:  # noqa: ANN001 (Dagster's context)
        for key in keys:
            context.log_event(AssetMaterialization(asset_key=key, metadata={"tiny": True}))

    @job
    def tiny_history() -> None:
        touch()

    started = time.perf_counter()
    with dagster_instance(home) as instance:
        for _ in range(count):
            assert tiny_history.execute_in_process(instance=instance).success
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_instance_") as tmp:
        cwd = Path(tmp)
        today = datetime.now(UTC).date().isoformat()
        subprocess.run([CRM, "generate", "--days", "14", "--end-date", today, "--quiet"],
                       cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        one, many = cwd / "home_1", cwd / "home_100"
        first = crm(["run", "--date", today], cwd, one)
        crm(["run", "--date", today], cwd, many)
        tiny = record_tiny_runs(many, args.history - 1)
        print(f"first run {first:.1f}s; {args.history - 1} tiny runs recorded in {tiny:.1f}s")
        times: dict[Path, list[float]] = {one: [], many: []}
        for round_ in range(args.rounds):
            for home in (one, many) if round_ % 2 == 0 else (many, one):
                times[home].append(crm(["run", "--date", today], cwd, home))
                print(f"  {home.name}: {times[home][-1]:.1f}s", flush=True)
        a, b = statistics.median(times[one]), statistics.median(times[many])
        print(f"run after 1 recorded run: median {a:.1f}s "
              f"{sorted(round(t, 1) for t in times[one])}")
        print(f"run after {args.history} recorded runs: median {b:.1f}s "
              f"{sorted(round(t, 1) for t in times[many])}")
        print(f"ratio (100 / 1): {b / a:.3f}")


if __name__ == "__main__":
    main()
