"""The Spark dispatches leave DuckDB's and PostgreSQL's SQL byte for byte as it was.

The project spells the few things Spark writes differently through macros
(`string_type()`, `float_type()`, `timestamptz_type()`, `decimal_sign()`, `to_decimal()`,
`{% if target.type == 'spark' %}` blocks; in YAML, where project macros are not available,
`{{ 'x' if target.type == 'spark' else 'y' }}`, e.g. in the SQL of a unit test's input). The
reference here is the project with those spellings written out as the DuckDB and PostgreSQL
text they stand for (`REFERENCE_TEXT`, `YAML_SPARK_CHOICE`): both copies are compiled by the
real dbt for each of the two warehouses, and every compiled file (models, tests, unit tests
with their inputs) must be identical. A default dispatch that drifted (`text` for `varchar`),
or a Spark block that leaks a blank line, fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import dbt_postgres_env

#: Macro spelling (a pattern) -> the text DuckDB and PostgreSQL had before it.
REFERENCE_TEXT = {
    r"\{\{ string_type\(\) \}\}": "varchar",
    r"'\s*~ string_type\(\) ~ '": "varchar",  # inside a macro argument
    r"\{\{ float_type\(\) \}\}": "double precision",
    r"\{\{ timestamptz_type\(\) \}\}": "timestamp with time zone",
    r"\{\{ decimal_sign\(numerator\) \}\}": "sign({{ numerator }})",
    r"\{\{ pairs \}\}": "touched_pairs",
    r"\{\{ to_decimal\('(\w+)', (\d+), (\d+)\) \}\}": r"cast(\1 as decimal(\2, \3))",
}
#: What must be gone from the reference's models and call sites once it is written out.
SPARK_SPELLINGS = ("string_type(", "float_type(", "timestamptz_type(", "decimal_sign(numerator",
                   "{{ pairs }}", "target.type == 'spark' %", "to_decimal(")
#: A Spark-only block, with the whitespace control it must use to vanish without a trace.
SPARK_BLOCK = re.compile(r"\{%- if target\.type == 'spark' %\}.*?\{% endif %\}", re.S)
#: A YAML value chosen by warehouse; the reference keeps the text after `else`.
YAML_SPARK_CHOICE = re.compile(r"\{\{ '[^']*' if target\.type == 'spark' else '([^']*)' \}\}")


def _copy_project(dest: Path, *, reference: bool) -> Path:
    dest.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(REPO_ROOT / name, dest / name)
    shutil.copytree(REPO_ROOT / "dbt_project", dest / "dbt_project")
    if reference:
        for path in (dest / "dbt_project").rglob("*.sql"):
            text = path.read_text(encoding="utf-8")
            new = SPARK_BLOCK.sub("", text)
            for pattern, literal in REFERENCE_TEXT.items():
                new = re.sub(pattern, lambda m, text=literal: m.expand(text), new)
            if new != text:
                path.write_text(new, encoding="utf-8")
        for path in (dest / "dbt_project").rglob("*.yml"):
            text = path.read_text(encoding="utf-8")
            new = YAML_SPARK_CHOICE.sub(lambda m: m.group(1), text)
            if new != text:
                path.write_text(new, encoding="utf-8")
    return dest


def _compile(project: Path, env: dict[str, str]) -> dict[str, bytes]:
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [str(dbt), "compile", "--quiet", "--profiles-dir", str(project),
         "--project-dir", str(project), "--vars",
         '{"as_of_date": "2026-03-31", "reporting_tz": "America/New_York"}'],
        cwd=project, capture_output=True, text=True, check=False, timeout=900,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
             "DBT_LOG_PATH": str(project / "logs"), **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    compiled = project / "target" / "compiled"
    return {str(p.relative_to(compiled)): p.read_bytes()
            for p in sorted(compiled.rglob("*.sql"))}


def _assert_identical(tmp_path: Path, env_for: Callable[[str], dict[str, str]]) -> None:
    ours = _compile(_copy_project(tmp_path / "ours", reference=False), env_for("ours"))
    reference = _compile(_copy_project(tmp_path / "reference", reference=True),
                         env_for("reference"))
    assert len(ours) > 100  # models, tests and unit tests: the comparison covers the project
    assert sorted(ours) == sorted(reference)
    differing = [name for name in ours if ours[name] != reference[name]]
    assert not differing, f"{len(differing)} compiled files differ, e.g. {differing[:5]}"


def test_reference_copy_has_no_spark_spelling_left(tmp_path: Path) -> None:
    """The reference is what it claims: no macro spelling and no Spark block survives in it
    (else the comparison below would compare the new code with itself)."""
    reference = _copy_project(tmp_path / "reference", reference=True)
    sources = [*(reference / "dbt_project" / "models").rglob("*.sql"),
               reference / "dbt_project" / "macros" / "divide_decimal.sql",
               reference / "dbt_project" / "macros" / "ratios.sql"]
    leftovers = [f"{p.name}: {s}" for p in sources for s in SPARK_SPELLINGS
                 if s in p.read_text(encoding="utf-8")]
    leftovers += [p.name for p in (reference / "dbt_project").rglob("*.yml")
                  if "target.type" in p.read_text(encoding="utf-8")]
    assert not leftovers
    ours = _copy_project(tmp_path / "ours", reference=False)
    assert any("{{ string_type() }}" in p.read_text(encoding="utf-8")
               for p in (ours / "dbt_project" / "models").rglob("*.sql"))
    assert any(YAML_SPARK_CHOICE.search(p.read_text(encoding="utf-8"))
               for p in (ours / "dbt_project" / "models").rglob("*.yml"))


def test_duckdb_sql_is_unchanged(tmp_path: Path) -> None:
    # the same file name for both: DuckDB names the database (in every relation) after it
    _assert_identical(tmp_path, lambda name: {
        "CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(tmp_path / name / "wh.duckdb")})


@pytest.mark.postgres
def test_postgres_sql_is_unchanged(tmp_path: Path, pg_database: str) -> None:
    _assert_identical(tmp_path, lambda name: dbt_postgres_env(pg_database))
