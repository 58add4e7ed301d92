"""Which source columns the dbt staging models read, derived from the staging SQL itself.

The staging models are the one place that says which ERP columns the pipeline depends on, so
the sync reads them from there instead of keeping a second list: when the source drops such a
column, the sync stops with an error naming the table and the column before it writes anything.

Staging models follow one shape (jaffle-shop's `source → renamed → final`): in the `renamed`
CTE every source column is read as `cast(<column> as …)`, `cast({{ adapter.quote('<column>') }}
as …)` or `{{ normalize_code('<column>') }}`. `tests/test_sync_drift.py` checks that this finds
every column of every ERP table the ERD lists, so a staging model written another way fails a
test instead of silently escaping the check.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

STAGING_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging"

_RENAMED = re.compile(r"renamed\s+as\s*\((?P<body>.*?)\bfrom\s+source\b", re.S | re.I)
_COLUMN = re.compile(
    r"cast\(\s*(?:\{\{\s*adapter\.quote\('(?P<quoted>\w+)'\)\s*\}\}|(?P<plain>\w+))\s+as\b"
    r"|normalize_code\('(?P<code>\w+)'\)",
    re.I,
)


@cache
def staging_columns(table: str) -> frozenset[str]:
    """The source columns `stg_erp__<table>` reads (empty when there is no such model)."""
    path = STAGING_DIR / f"stg_erp__{table}.sql"
    if not path.is_file():
        return frozenset()
    text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    match = _RENAMED.search(text)
    if match is None:
        return frozenset()
    return frozenset(m.group("quoted") or m.group("plain") or m.group("code")
                     for m in _COLUMN.finditer(match.group("body")))
