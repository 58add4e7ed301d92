"""Are the marts the same before and after a change? Dump every table of schema `marts` built
by one checkout's code, then compare two dumps.

    # build a `medium` warehouse with the code of a checkout (its own .venv) and dump its marts
    python benchmarks/compare_marts.py dump --code /tmp/base --out /tmp/marts_base
    python benchmarks/compare_marts.py dump --code . --out /tmp/marts_branch \
        --source /tmp/marts_base/input   # the same generated ERP and event files
    python benchmarks/compare_marts.py compare /tmp/marts_base /tmp/marts_branch

`dump` runs the checkout's own `crm-analytics generate` and `run` (SQLite source, DuckDB
warehouse, fixed seed and dates), or reuses the generated input of an earlier dump
(`--source`) so both sides read identical rows even when the generator changed, or reads an
existing warehouse file (`--warehouse`). Each table goes to `<table>.parquet`, every row sorted
by all its columns, with `manifest.json` (columns, types, row counts, the checkout's commit).

`compare` reports tables and columns only on one side, type changes, row counts, and rows that
differ on the columns both sides have (EXCEPT ALL in both directions: NULLs match, values
compare exactly). Exit status 0 when nothing differs except added tables or columns
(`--strict`: those count too), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

AS_OF = "2026-11-01"
SCHEMA = "marts"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _build(code: Path, work: Path, scale: str, source: Path | None) -> Path:
    """Generate (or copy) the input into `work/input`, run the checkout's pipeline on it, and
    return the warehouse file."""
    cli = code / ".venv" / "bin" / "crm-analytics"
    if not cli.exists():
        sys.exit(f"error: {cli} not found: run `make install` in {code} first")
    inputs = work / "input"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(CRM_SOURCE_URL=f"sqlite:///{inputs / 'erp.sqlite'}",
               CRM_EVENTS_PATH=str(inputs / "events"),
               CRM_WAREHOUSE_URL=f"duckdb:///{work / 'warehouse.duckdb'}",
               CRM_REPORTING_TZ="UTC")
    if source is not None:
        shutil.copytree(source, inputs)
    else:
        inputs.mkdir(parents=True)
        _run([str(cli), "generate", "--scale", scale, "--end-date", AS_OF, "--quiet"], work, env)
    # the run may move or mark landed event files: keep a pristine copy for the other side
    if not (work / "input.pristine").exists():
        shutil.copytree(inputs, work / "input.pristine")
    _run([str(cli), "run", "--date", AS_OF], work, env)
    return work / "warehouse.duckdb"


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("$", " ".join(argv), flush=True)
    proc = subprocess.run(argv, cwd=cwd, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"error: {argv[1]} failed with exit status {proc.returncode}")


def dump(warehouse: Path, out: Path, commit: str | None) -> None:
    """Every table of schema marts as sorted Parquet, plus manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "and table_catalog = current_database() order by 1", [SCHEMA]).fetchall()]
        manifest: dict[str, object] = {"commit": commit, "tables": {}}
        for table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? "
                "and table_catalog = current_database() order by ordinal_position",
                [SCHEMA, table]).fetchall()
            rows = con.execute(f"select count(*) from {SCHEMA}.{_quote(table)}").fetchone()
            con.execute(f"copy (select * from {SCHEMA}.{_quote(table)} order by all) "
                        f"to {_literal(out / (table + '.parquet'))} (format parquet)")
            manifest["tables"][table] = {  # type: ignore[index]
                "columns": {name: kind for name, kind in columns},
                "rows": rows[0] if rows else 0}
            print(f"{table}: {manifest['tables'][table]['rows']} rows")  # type: ignore[index]
    finally:
        con.close()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def compare(a: Path, b: Path, strict: bool) -> int:
    """Print the differences between two dumps; the exit status."""
    ma = json.loads((a / "manifest.json").read_text())
    mb = json.loads((b / "manifest.json").read_text())
    print(f"A: {a} (commit {ma.get('commit')})\nB: {b} (commit {mb.get('commit')})")
    ta, tb = ma["tables"], mb["tables"]
    differs = added = False
    for name in sorted(set(ta) - set(tb)):
        print(f"only in A: table {name}")
        differs = True
    for name in sorted(set(tb) - set(ta)):
        print(f"only in B: table {name} ({tb[name]['rows']} rows)")
        added = True
    con = duckdb.connect()
    for name in sorted(set(ta) & set(tb)):
        ca, cb = ta[name]["columns"], tb[name]["columns"]
        notes = []
        if [c for c in ca if c not in cb]:
            notes.append(f"columns only in A: {[c for c in ca if c not in cb]}")
            differs = True
        if [c for c in cb if c not in ca]:
            notes.append(f"columns only in B: {[c for c in cb if c not in ca]}")
            added = True
        common = [c for c in ca if c in cb]
        changed = {c: (ca[c], cb[c]) for c in common if ca[c] != cb[c]}
        if changed:
            notes.append(f"types changed: {changed}")
            differs = True
        cols = ", ".join(_quote(c) for c in common)
        pa = f"read_parquet({_literal(a / (name + '.parquet'))})"
        pb = f"read_parquet({_literal(b / (name + '.parquet'))})"
        only_a = con.execute(f"select {cols} from {pa} except all select {cols} from {pb}").pl()
        only_b = con.execute(f"select {cols} from {pb} except all select {cols} from {pa}").pl()
        if ta[name]["rows"] != tb[name]["rows"]:
            notes.append(f"rows {ta[name]['rows']} -> {tb[name]['rows']}")
            differs = True
        if only_a.height or only_b.height:
            notes.append(f"{only_a.height} rows only in A, {only_b.height} rows only in B "
                         f"(on the {len(common)} common columns)")
            differs = True
        status = "identical" if not notes else "; ".join(notes)
        print(f"{name}: {ta[name]['rows']} rows, {status}")
        for label, frame in (("A", only_a), ("B", only_b)):
            for row in frame.head(3).iter_rows(named=True):
                print(f"    only in {label}: {row}")
    con.close()
    if differs or (strict and added):
        print("result: the marts differ")
        return 1
    print("result: every common table and column is identical"
          + (" (B adds tables or columns, listed above)" if added else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="build (or read) a warehouse and dump its marts")
    d.add_argument("--out", type=Path, required=True, help="dump directory (created)")
    d.add_argument("--code", type=Path, help="checkout whose .venv builds the warehouse")
    d.add_argument("--warehouse", type=Path, help="an existing DuckDB warehouse to dump")
    d.add_argument("--source", type=Path,
                   help="reuse an earlier dump's generated input (its `input` folder)")
    d.add_argument("--scale", default="medium", choices=("small", "medium", "large"))
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--strict", action="store_true", help="added tables or columns differ too")
    args = parser.parse_args(argv)
    if args.command == "compare":
        return compare(args.a, args.b, args.strict)
    if (args.code is None) == (args.warehouse is None):
        parser.error("dump needs exactly one of --code and --warehouse")
    commit = None
    if args.warehouse is not None:
        dump(args.warehouse, args.out, commit)
        return 0
    code = args.code.resolve()
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or None
    source = args.source.resolve() if args.source else None
    with tempfile.TemporaryDirectory(prefix="compare_marts_") as tmp:
        work = Path(tmp)
        warehouse = _build(code, work, args.scale, source)
        dump(warehouse, args.out, commit)
        if not (args.out / "input").exists():
            shutil.copytree(work / "input.pristine", args.out / "input")
    return 0


if __name__ == "__main__":
    sys.exit(main())
