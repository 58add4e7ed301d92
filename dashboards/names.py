"""What a person reads instead of an id: business, branch and owner names.

`dashboards.data.names()` fills a `Names` from the marts `dim_tenants` and `dim_owners`; this
module only decides the labels, including the fallbacks for ids the warehouse has no name for
("Business 3", "Owner 7") and for missing keys ("no business", "unassigned"). No SQL here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

#: id column -> (name column, fallback word, how a missing id reads).
KEYS: dict[str, tuple[str, str, str]] = {
    "business_id": ("business_name", "Business", "no business"),
    "branch_id": ("branch_name", "Branch", "no branch"),
    "owner_id": ("owner_name", "Owner", "unassigned"),
}


@dataclass(frozen=True)
class Names:
    """id -> name maps; any id not in them gets the "<Kind> <id>" fallback."""

    businesses: Mapping[int, str] = field(default_factory=dict)
    branches: Mapping[int, str] = field(default_factory=dict)
    owners: Mapping[int, str] = field(default_factory=dict)

    def business(self, business_id: Any) -> str:
        return _label(self.businesses, business_id, "Business", "no business")

    def branch(self, branch_id: Any) -> str:
        return _label(self.branches, branch_id, "Branch", "no branch")

    def owner(self, owner_id: Any) -> str:
        return _label(self.owners, owner_id, "Owner", "unassigned")

    def tenant(self, business_id: Any, branch_id: Any) -> str:
        return f"{self.business(business_id)} · {self.branch(branch_id)}"

    def label(self, key: str, value: Any) -> str:
        return {"business_id": self.business, "branch_id": self.branch,
                "owner_id": self.owner}[key](value)

    def with_names(self, df: pl.DataFrame) -> pl.DataFrame:
        """`df` with a name column right after each id column it has (business_id ->
        business_name, ...): what tables show and CSV downloads keep, ids beside names."""
        out = df
        maps = {"business_id": self.businesses, "branch_id": self.branches,
                "owner_id": self.owners}
        for key, (name, kind, missing) in KEYS.items():
            if key not in out.columns or name in out.columns:
                continue
            ids = pl.col(key).cast(pl.Int64)
            named = ids.replace_strict(dict(maps[key]), default=None, return_dtype=pl.String)
            label = (pl.when(ids.is_null()).then(pl.lit(missing))
                     .otherwise(pl.coalesce(named, pl.lit(f"{kind} ") + ids.cast(pl.String))))
            out = out.insert_column(out.columns.index(key) + 1,
                                    out.select(label.alias(name)).to_series())
        return out


def _label(names: Mapping[int, str], value: Any, kind: str, missing: str) -> str:
    if value is None:
        return missing
    number = int(value)
    return names.get(number) or f"{kind} {number}"
