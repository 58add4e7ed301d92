"""The mart columns a dashboard table takes from the mart's own `.yml`, with how they read.

A mart author marks a column for the dashboards where they already describe it, beside the
model (`dbt_project/models/marts/<area>/<model>.yml`):

    - name: audience_size
      data_type: bigint
      description: ...
      config:
        meta:
          dashboard: {label: Audience size, format: count}

`label` is the column header (default: the name with spaces, capitalised) and `format` one of
`FORMATS` (default: guessed from the type and name, as for every table). A table that takes
a mart's columns this way (the Campaigns page's campaign table takes `campaign_lifetime`'s)
needs no edit in `dashboards/` when a column is added. The file is read once per process,
like the ERP sources file; which marked columns a query selects is decided against the
published warehouse (`dashboards.data`), so a column the last run did not build yet is left
out rather than failing the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from crm_core.errors import CrmError

MARTS_DIR = Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "marts"
#: How a marked column may ask to read: money in the currency, a count with separators, a
#: rate as a percentage, a plain number with one decimal.
FORMATS = ("money", "count", "percent", "number")


@dataclass(frozen=True)
class MartColumn:
    """One column a mart's `.yml` marks for the dashboards."""

    name: str
    label: str | None = None
    format: str | None = None


@cache
def dashboard_columns(model: str) -> tuple[MartColumn, ...]:
    """The columns of mart `model` with `config.meta.dashboard`, in declared order."""
    found = sorted(MARTS_DIR.rglob(f"{model}.yml"))
    if len(found) != 1:
        raise CrmError(f"mart {model!r}: expected one {model}.yml under {MARTS_DIR}, "
                       f"found {len(found)}")
    path = found[0]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    [node] = [m for m in doc.get("models") or [] if m.get("name") == model]
    out = []
    for column in node.get("columns") or []:
        meta = ((column.get("config") or {}).get("meta") or {}).get("dashboard")
        if meta is None:
            continue
        if not isinstance(meta, dict):
            raise CrmError(f"{path.name}: column {column['name']}: meta.dashboard must be a "
                           "mapping (label, format)")
        fmt = meta.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise CrmError(f"{path.name}: column {column['name']}: dashboard format {fmt!r} "
                           f"is not one of {', '.join(FORMATS)}")
        out.append(MartColumn(column["name"], meta.get("label"), fmt))
    return tuple(out)
