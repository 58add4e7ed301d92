"""`benchmarks/compare_marts.py`, the before/after proof for changes that must not move a
number: two dumps of the same marts compare identical; a changed value, a missing row, a lost
column and a changed type are each reported, and fail the comparison; an added table or column
is reported and fails only with --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from tests.helpers.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "compare_marts.py"


def _warehouse(path: Path, *statements: str) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.deals as select * from (values "
                    "(1, 10, 2.50::decimal(18,2), 0.5::double), "
                    "(1, 10, 2.50::decimal(18,2), 0.5::double), "
                    "(2, null, null, null)) as t(business_id, branch_id, amount, rate)")
        for statement in statements:
            con.execute(statement)
    return path


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, check=False, timeout=120)


def _dump(tmp_path: Path, name: str, *statements: str) -> Path:
    out = tmp_path / f"dump_{name}"
    proc = _cli("dump", "--warehouse", _warehouse(tmp_path / f"{name}.duckdb", *statements),
                "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_identical_marts_compare_identical(tmp_path: Path) -> None:
    proc = _cli("compare", _dump(tmp_path, "a"), _dump(tmp_path, "b"))
    assert proc.returncode == 0, proc.stdout
    assert "deals: 3 rows, identical" in proc.stdout


def test_every_kind_of_difference_is_reported(tmp_path: Path) -> None:
    base = _dump(tmp_path, "base")
    cases = {
        "value": ("update marts.deals set rate = 0.25 where business_id = 2",
                  "1 rows only in A, 1 rows only in B"),
        "duplicate": ("delete from marts.deals where business_id = 1 and rowid = 0",
                      "rows 3 -> 2"),
        "column": ("alter table marts.deals drop column rate", "columns only in A: ['rate']"),
        "type": ("alter table marts.deals alter amount type double", "types changed"),
    }
    for name, (statement, expected) in cases.items():
        proc = _cli("compare", base, _dump(tmp_path, name, statement))
        assert proc.returncode == 1, (name, proc.stdout)
        assert expected in proc.stdout, (name, proc.stdout)


def test_added_tables_and_columns_fail_only_when_strict(tmp_path: Path) -> None:
    base = _dump(tmp_path, "base")
    grown = _dump(tmp_path, "grown", "alter table marts.deals add column note varchar",
                  "create table marts.extra as select 1 as x")
    proc = _cli("compare", base, grown)
    assert proc.returncode == 0, proc.stdout
    assert "only in B: table extra" in proc.stdout
    assert "columns only in B: ['note']" in proc.stdout
    assert _cli("compare", base, grown, "--strict").returncode == 1
