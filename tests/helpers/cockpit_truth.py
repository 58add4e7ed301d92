"""The sales cockpit's numbers worked out in plain Python from the generated source rows and
event files (docs/contract.md section 6's definitions), for the dashboard and digest tests.
Shares no SQL with the marts or `dashboards.data`."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from tests.helpers import oracle

Row = dict[str, Any]


def in_scope(business: int | None) -> Any:
    return lambda row: business is None or row["business_id"] == business


def deals(src: dict[str, list[Row]], events: list[Row], as_of: date, tz: str) -> list[Row]:
    """Deals created on or before `as_of`, with state, tenant, created date and, for won
    and lost deals, the date they count on."""
    won_at: dict[int, Any] = {}
    for e in events:
        if e["type"] == "erp.opportunity.won" and e["deal_id"] is not None:
            day = oracle.local_date(e["time"], tz)
            if day is not None and day <= as_of:
                current = won_at.get(e["deal_id"])
                won_at[e["deal_id"]] = e["time"] if current is None else min(current, e["time"])
    out = []
    for d in oracle.deal_states(src):
        created = oracle.local_date(oracle.utc(d["created_at"]), tz)
        if created is None or created > as_of:
            continue
        updated = oracle.local_date(oracle.utc(d["updated_at"]), tz)
        closed = None
        if d["state"] == "won":
            closed = oracle.local_date(won_at[d["id"]], tz) if d["id"] in won_at else updated
        elif d["state"] == "lost":
            closed = updated
        out.append({**d, "created": created, "updated": updated, "closed": closed,
                    "money": oracle.money(d["amount"])})
    return out


def at_risk(all_deals: list[Row], as_of: date, business: int | None = None) -> list[Row]:
    """Open deals that are overdue (close date before A) or stale (> 30 days since update)."""
    out = []
    for d in filter(in_scope(business), all_deals):
        if d["state"] != "open":
            continue
        overdue = d["close_date"] is not None and d["close_date"] < as_of
        stale = (as_of - d["updated"]).days > 30
        if overdue or stale:
            out.append({**d, "is_overdue": overdue, "is_stale": stale})
    return out


def month_of(day: date) -> date:
    return day.replace(day=1)


def bookings(all_deals: list[Row], first_month: date, last_day: date,
             business: int | None = None) -> dict[str, Decimal]:
    """Won amount by won date and new pipeline by created date, months first_month..last_day."""
    won = sum((d["money"] for d in filter(in_scope(business), all_deals)
               if d["state"] == "won" and first_month <= month_of(d["closed"]) <= last_day),
              Decimal(0))
    new = sum((d["money"] for d in filter(in_scope(business), all_deals)
               if first_month <= month_of(d["created"]) <= last_day), Decimal(0))
    return {"won": won, "new": new}


def leaderboard_month(all_deals: list[Row], month: date,
                      business: int | None = None) -> dict[Any, Row]:
    """Per owner, in one month: won deals and amount by won date, lost deals by lost date."""
    out: dict[Any, Row] = defaultdict(lambda: {"won_deals": 0, "won_amount": Decimal(0),
                                               "lost_deals": 0})
    for d in filter(in_scope(business), all_deals):
        if d["closed"] is None or month_of(d["closed"]) != month:
            continue
        row = out[d["owner_id"]]
        if d["state"] == "won":
            row["won_deals"] += 1
            row["won_amount"] += d["money"]
        else:
            row["lost_deals"] += 1
    return dict(out)


def owner_names(src: dict[str, list[Row]]) -> dict[int, str]:
    """Owner names by the rule: "first last" trimmed, else the username (no entry: none)."""
    out = {}
    for u in src["auth_users"]:
        full = f"{(u['first_name'] or '').strip()} {(u['last_name'] or '').strip()}".strip()
        out[u["id"]] = full or (u["username"] or "").strip()
    return {k: v for k, v in out.items() if v}


def owner_label(names: dict[int, str], owner_id: int | None) -> str:
    if owner_id is None:
        return "unassigned"
    return names.get(owner_id, f"Owner {owner_id}")
