"""What the fault tests share: one generated ERP and landing folder, the warehouse a clean run
builds from them (the reference every fault case must end equal to), the last good state a
day earlier (where most fault cases start), and a comparison of two warehouses that ignores
only what differs between two correct runs (load ids, load times, sync times).

Generating and the two runs cost about a minute, so they are built once per test session and
only copied by each test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from ingestion.erp.schema import SOURCE_TABLES
from tests.helpers.cli import CLI, crm

#: The last landing day of the generated data: the day the fault runs are for.
DAY = dt.date(2026, 3, 14)
#: The day before: the last good state most cases start from.
PREVIOUS_DAY = DAY - dt.timedelta(days=1)

#: Event tables, with the columns that legitimately differ between two correct loads.
EVENT_TABLES: dict[str, tuple[str, ...]] = {
    "campaign_events": ("load_id",),
    "rejected_events": ("load_id",),
    "event_files": ("loaded_at", "load_id"),
}
CONTRACT_MARTS = ("v_crm_contact_summary", "v_crm_pipeline_summary",
                  "v_crm_campaign_performance", "v_crm_lead_conversion")

#: schema.table -> columns left out of the comparison
COMPARED: dict[str, tuple[str, ...]] = {
    **{f"raw.{t}": () for t in SOURCE_TABLES},
    **{f"raw.{t}": skip for t, skip in EVENT_TABLES.items()},
    **{f"marts.{m}": () for m in CONTRACT_MARTS},
}

State = dict[str, tuple[list[str], list[str]]]


@dataclass(frozen=True)
class FaultWorld:
    work: Path
    source_file: Path
    events: Path
    reference: Path  # directory holding the clean run's wh.duckdb (as of DAY)
    previous: Path  # directory holding a clean run's wh.duckdb as of PREVIOUS_DAY
    reference_state: State
    previous_state: State

    def env(self, warehouse_url: str, **extra: str) -> dict[str, str]:
        return {"CRM_SOURCE_URL": f"sqlite:///{self.source_file}",
                "CRM_EVENTS_PATH": str(self.events), "CRM_WAREHOUSE_URL": warehouse_url,
                "CRM_REPORTING_TZ": "UTC", **extra}

    def copy_previous(self, to: Path) -> Path:
        """The last good warehouse (with its serving copy and symlink) copied into `to`;
        returns the warehouse file."""
        shutil.copytree(self.previous, to, symlinks=True, dirs_exist_ok=True)
        return to / "wh.duckdb"


def _normalise(value: Any) -> Any:
    """One spelling per value, whichever warehouse or driver returned it."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return round(value, 9)
    return value


def _table_state(columns: list[str], rows: list[tuple], skip: tuple[str, ...]
                 ) -> tuple[list[str], list[str]]:
    keep = [i for i, c in enumerate(columns) if c not in skip]
    lines = sorted(repr(tuple(_normalise(row[i]) for i in keep)) for row in rows)
    return [columns[i] for i in keep], lines


def warehouse_state(warehouse_url: str) -> State:
    """Every compared table as (columns, sorted normalised rows); a missing table is absent."""
    state: State = {}
    if warehouse_url.startswith("duckdb:///"):
        con = duckdb.connect(warehouse_url.removeprefix("duckdb:///"), read_only=True)
        try:
            for name, skip in COMPARED.items():
                try:
                    cur = con.execute(f"select * from {name}")
                except duckdb.CatalogException:
                    continue
                cols = [d[0] for d in cur.description]
                state[name] = _table_state(cols, cur.fetchall(), skip)
        finally:
            con.close()
        return state
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for name, skip in COMPARED.items():
            schema, table = name.split(".")
            if conn.execute("select to_regclass(%s)", [f'"{schema}"."{table}"']
                            ).fetchone()[0] is None:
                continue
            cur = conn.execute(f"select * from {name}")
            cols = [d.name for d in cur.description]
            state[name] = _table_state(cols, cur.fetchall(), skip)
    return state


def assert_same_state(actual: State, expected: State, what: str) -> None:
    """Table by table, so a failure says which table differs and how."""
    assert sorted(actual) == sorted(expected), f"{what}: tables differ"
    problems = []
    for name in expected:
        (a_cols, a_rows), (e_cols, e_rows) = actual[name], expected[name]
        if a_cols != e_cols:
            problems.append(f"{name}: columns {a_cols} != {e_cols}")
        elif a_rows != e_rows:
            extra = sorted(set(a_rows) - set(e_rows))[:2]
            missing = sorted(set(e_rows) - set(a_rows))[:2]
            problems.append(f"{name}: {len(a_rows)} rows, expected {len(e_rows)}; "
                            f"extra e.g. {extra}, missing e.g. {missing}")
    assert not problems, f"{what}:\n" + "\n".join(problems)


def assert_no_duplicate_events(state: State) -> None:
    """Each delivered line is in `raw.campaign_events` once, and each file in the manifest once
    (the compared rows carry the file path and line number)."""
    for table in ("raw.campaign_events", "raw.event_files"):
        rows = state[table][1]
        assert len(rows) == len(set(rows)), f"{table}: duplicate rows"


def subset(state: State, prefix: str) -> State:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def events_subset(state: State) -> State:
    return {k: v for k, v in state.items() if k.split(".")[-1] in EVENT_TABLES}


@pytest.fixture(scope="session")
def fault_world(tmp_path_factory: pytest.TempPathFactory) -> FaultWorld:
    work = tmp_path_factory.mktemp("faults")
    world = FaultWorld(work, work / "erp.sqlite", work / "events", work / "reference",
                       work / "previous", {}, {})
    gen = crm(["generate", "--days", "14", "--seed", "3", "--end-date", DAY.isoformat(),
               "--quiet"], work, **world.env(f"duckdb:///{work}/unused.duckdb"))
    assert gen.returncode == 0, gen.stderr
    for folder, day in ((world.reference, DAY), (world.previous, PREVIOUS_DAY)):
        folder.mkdir()
        proc = crm(["run", "--date", day.isoformat()], folder,
                   **world.env(f"duckdb:///{folder}/wh.duckdb"))
        assert proc.returncode == 0, proc.stderr
    reference = warehouse_state(f"duckdb:///{world.reference}/wh.duckdb")
    previous = warehouse_state(f"duckdb:///{world.previous}/wh.duckdb")
    # The fault runs have something to do: the last day's events are not in the last good state.
    assert len(reference["raw.event_files"][1]) > len(previous["raw.event_files"][1])
    # ... and change a contract mart that does not read contact balances (the dbt-failure case
    # shows such marts move on while those downstream of a failed model stay).
    assert any(reference[f"marts.{m}"] != previous[f"marts.{m}"]
               for m in CONTRACT_MARTS if m != "v_crm_contact_summary")
    return FaultWorld(world.work, world.source_file, world.events, world.reference,
                      world.previous, reference, previous)


# --------------------------------------------------------------------------------------------
# Processes


def env_for(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
    return {**base, "PYTHONUNBUFFERED": "1", **extra}


#: `crm-analytics` that SIGKILLs itself between a batch's event rows and its manifest.
KILLED_BEFORE_MANIFEST = [sys.executable, str(Path(__file__).with_name("killed_cli.py"))]


def start(args: list[str], cwd: Path, env: dict[str, str], prefix: list[str] | None = None,
          cli: list[str] | None = None) -> subprocess.Popen[str]:
    """The real `crm-analytics` (or `cli`) as a child process (stdout and stderr piped)."""
    return subprocess.Popen((prefix or []) + (cli or CLI) + args, cwd=cwd, env=env_for(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args: list[str], cwd: Path, env: dict[str, str], prefix: list[str] | None = None,
        timeout: int = 600, cli: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = start(args, cwd, env, prefix, cli)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def descendants(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies count as gone)."""
    result = set()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if status.rsplit(")", 1)[1].split()[0] != "Z":
            result.add(pid)
    return result


def wait_gone(pids: set[int], seconds: float = 10) -> set[int]:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@contextmanager
def duckdb_writer_held(path: Path) -> Iterator[int]:
    """Another process holding a DuckDB write connection on `path` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def kill(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGKILL the pipeline process itself (not its process group): what the OOM killer does."""
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return out, err


def overflow_numeric(source_file: Path, table: str, column: str, where: str = "1 = 1") -> None:
    """An ERP migration widened `table.column` from the ERD's NUMERIC(14, 2) to NUMERIC(20, 2)
    and one value (of the first row matching `where`) now exceeds it: the sync lands it (a
    changed column reloads in full), and the staging model's `cast(... as decimal(14, 2))`
    fails when it is computed: pick with `where` a row the marts read (a soft-deleted one may
    be filtered out before the cast is computed)."""
    with sqlite3.connect(source_file) as con:
        columns = con.execute("select sql from sqlite_master where name = ?", [table]
                              ).fetchone()[0]
        widened = re.sub(rf"{column} NUMERIC\(14, 2\)", f"{column} NUMERIC(20, 2)", columns)
        assert widened != columns, columns
        con.execute(f"alter table {table} rename to {table}_old")
        con.execute(widened)
        con.execute(f"insert into {table} select * from {table}_old")
        con.execute(f"drop table {table}_old")
        con.execute(f"update {table} set {column} = 1000000000000000 "
                    f"where id = (select min(id) from {table} where {where})")
