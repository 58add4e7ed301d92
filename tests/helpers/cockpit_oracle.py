"""The sales cockpit marts re-implemented in plain Python from raw rows (docs/contract.md
section 6 and the cockpit marts' definitions in docs/metrics-cockpit.md): `Decimal` money,
`zoneinfo` dates, first-landed event copies chosen by sorting. No SQL does any arithmetic
here, so a bug in the dbt models cannot hide in the expected values.

Every function takes the raw tables as written to the warehouse (`tests/helpers/cockpit_fixture.py`
or any rows in the `raw` layout) and returns the mart keyed by its grain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

from tests.helpers.oracle import ZERO, code, local_date, money, rate

Row = dict[str, Any]
Tables = dict[str, list[Row]]
CAMPAIGN_TYPES = {"erp.campaign.impression", "erp.campaign.click", "erp.campaign.conversion",
                  "erp.campaign.sent"}
CENT = Decimal("0.01")


def _stages(tables: Tables) -> dict[int, Row]:
    return {s["id"]: s for s in tables["crm_pipeline_stages"]}


def _state(stage: Row | None) -> str:
    if stage and stage["is_won"]:
        return "won"
    return "lost" if stage and stage["is_lost"] else "open"


def first_landed(events: Iterable[Row]) -> list[Row]:
    """One copy per (source, id): the earliest landing date, then file, then line."""
    chosen: dict[tuple[str, str], Row] = {}
    for event in sorted(events, key=lambda e: (e["landing_date"], e["file_path"],
                                                e["line_number"])):
        chosen.setdefault((event["event_source"], event["event_id"]), event)
    return list(chosen.values())


def per_cent(amount: Decimal, count: int) -> Decimal | None:
    """amount / count rounded half away from zero to the cent; None for no count."""
    if not count:
        return None
    quotient = (amount / count).copy_abs().quantize(CENT, ROUND_HALF_UP)
    return quotient if amount >= 0 else -quotient


def deal_outcomes(tables: Tables, as_of: date, tz: str) -> list[Row]:
    """Each deal created on or before A (or without created_at) with its state, tenant keys
    and the section 6 dates: created, won (first won event dated on or before A, first-landed
    copies, else updated_at's date), lost (updated_at's date), cycle days."""
    stages = _stages(tables)
    contacts = {c["id"]: c for c in tables["contacts"]}
    won_event_dates: dict[int, date] = {}
    for event in first_landed(tables["campaign_events"]):
        when = local_date(event["event_time"], tz)
        if code(event["event_type"]) == "erp.opportunity.won" and event["deal_id"] is not None \
                and when <= as_of:
            deal_id = event["deal_id"]
            won_event_dates[deal_id] = min(when, won_event_dates.get(deal_id, when))
    out = []
    for deal in tables["crm_deals"]:
        created = local_date(deal["created_at"], tz)
        if created is not None and created > as_of:
            continue
        stage = stages.get(deal["stage_id"])
        state = _state(stage)
        updated = local_date(deal["updated_at"], tz)
        won = (won_event_dates.get(deal["id"]) or updated) if state == "won" else None
        cycle = None
        if won is not None:
            cycle = max((won - created).days, 0) if created else 0
        contact = contacts.get(deal["contact_id"])
        out.append({**deal, "state": state, "stage": stage, "created_date": created,
                    "updated_date": updated, "won_date": won,
                    "lost_date": updated if state == "lost" else None, "cycle_days": cycle,
                    "business_id": contact["business_id"] if contact else None,
                    "branch_id": contact["branch_id"] if contact else None})
    return out


def _group(deal: Row) -> tuple:
    return deal["business_id"], deal["branch_id"], deal["owner_id"]


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def activity_by_period(deals: list[Row], period_start: Any) -> dict[tuple, Row]:
    """(business, branch, owner, period) -> new/won/lost counts and sums, cycle_days_sum."""
    out: dict[tuple, Row] = {}

    def row(deal: Row, day: date) -> Row:
        return out.setdefault((*_group(deal), period_start(day)), {
            "new_deals": 0, "new_pipeline": ZERO, "won_deals": 0, "won_amount": ZERO,
            "lost_deals": 0, "lost_amount": ZERO, "cycle_days_sum": 0})

    for deal in deals:
        if deal["created_date"]:
            r = row(deal, deal["created_date"])
            r["new_deals"] += 1
            r["new_pipeline"] += money(deal["amount"])
        if deal["won_date"]:
            r = row(deal, deal["won_date"])
            r["won_deals"] += 1
            r["won_amount"] += money(deal["amount"])
            r["cycle_days_sum"] += deal["cycle_days"]
        if deal["lost_date"]:
            r = row(deal, deal["lost_date"])
            r["lost_deals"] += 1
            r["lost_amount"] += money(deal["amount"])
    for r in out.values():
        r["win_rate"] = rate(r["won_deals"], r["won_deals"] + r["lost_deals"])
    return out


def sales_monthly(deals: list[Row]) -> dict[tuple, Row]:
    rows = activity_by_period(deals, lambda day: day.replace(day=1))
    for r in rows.values():
        del r["cycle_days_sum"]
    return rows


def owner_leaderboard(deals: list[Row]) -> dict[tuple, Row]:
    """(business, branch, owner, period_type, period_start) -> row."""
    out = {}
    for period_type, start in (("month", lambda day: day.replace(day=1)),
                               ("quarter", _quarter_start)):
        for (b, br, o, p), r in activity_by_period(deals, start).items():
            out[(b, br, o, period_type, p)] = {
                **r, "avg_deal_size": per_cent(r["won_amount"], r["won_deals"]),
                "avg_cycle_days": rate(r["cycle_days_sum"], r["won_deals"])}
    return out


def deals_at_risk(tables: Tables, deals: list[Row], as_of: date) -> dict[int, Row]:
    stages = _stages(tables)
    out = {}
    for deal in deals:
        if deal["state"] != "open":
            continue
        overdue = deal["close_date"] is not None and deal["close_date"] < as_of
        since = None if deal["updated_date"] is None else max((as_of - deal["updated_date"])
                                                              .days, 0)
        stale = since is not None and since > 30
        if overdue or stale:
            stage = stages.get(deal["stage_id"])
            out[deal["id"]] = {
                "business_id": deal["business_id"], "branch_id": deal["branch_id"],
                "owner_id": deal["owner_id"], "stage_id": stage["id"] if stage else None,
                "stage_name": stage["name"] if stage else None,
                "amount": None if deal["amount"] is None else money(deal["amount"]),
                "close_date": deal["close_date"], "is_overdue": overdue,
                "days_overdue": (as_of - deal["close_date"]).days if overdue else 0,
                "is_stale": stale, "days_since_update": since}
    return out


def lead_campaigns(tables: Tables, as_of: date, tz: str) -> dict[int, int]:
    """lead_id -> the campaign of its contact's latest touch at or before its created_at and
    at most 720 hours before it (ties: the smaller campaign_id); leads without one absent."""
    touches: dict[int, list[tuple]] = defaultdict(list)
    for event in first_landed(tables["campaign_events"]):
        if code(event["event_type"]) in CAMPAIGN_TYPES and event["contact_id"] is not None \
                and event["campaign_id"] is not None \
                and local_date(event["event_time"], tz) <= as_of:
            touches[event["contact_id"]].append((event["event_time"], event["campaign_id"]))
    out: dict[int, int] = {}
    for lead in tables["crm_leads"]:
        created = lead["created_at"]
        window = [(when, campaign) for when, campaign in touches.get(lead["contact_id"], [])
                  if created - timedelta(hours=720) <= when <= created]
        if window:
            latest = max(when for when, _ in window)
            out[lead["id"]] = min(c for when, c in window if when == latest)
    return out


def campaign_attribution(tables: Tables, deals: list[Row], spend: dict[int, Decimal | None],
                         as_of: date, tz: str) -> dict[int, Row]:
    """campaign_id -> row. `spend` is each campaign's summed daily spend up to A (None when
    undefined), from `tests.oracle.campaign_performance`."""
    lead_campaign = lead_campaigns(tables, as_of, tz)
    out = {}
    contacts = {c["id"]: c for c in tables["contacts"]}
    branches = {b["id"]: b["business_id"] for b in tables["branches"]}
    for campaign in tables["crm_campaigns"]:
        cid = campaign["id"]
        mine = [d for d in deals if lead_campaign.get(d["lead_id"]) == cid]
        won = [d for d in mine if d["state"] == "won"]
        won_amount = sum((money(d["amount"]) for d in won), ZERO)
        leads = sum(1 for c in lead_campaign.values() if c == cid)
        seller = contacts.get(campaign["seller_id"])
        cost = spend.get(cid)
        out[cid] = {
            "business_id": branches.get(campaign["branch_id"],
                                        seller["business_id"] if seller else None),
            "branch_id": campaign["branch_id"], "campaign_name": campaign["name"],
            "campaign_type": code(campaign["campaign_type"]), "attributed_leads": leads,
            "attributed_deals": len(mine), "won_deals": len(won), "won_amount": won_amount,
            "spend": cost, "cost_per_lead": None if cost is None else per_cent(cost, leads),
            "won_roi": None if cost is None else rate(won_amount - cost, cost)}
    return out


# --- history: what the runs recorded --------------------------------------------------------

def deal_versions(runs: list[tuple[date, Tables]]) -> dict[int, list[Row]]:
    """deal_id -> the versions the deal history (crm_deal_versions) records: a new version
    whenever stage_id, amount or close_date differ from the previous recorded one (other
    columns are those seen when the version was recorded)."""
    versions: dict[int, list[Row]] = defaultdict(list)
    for _, tables in runs:
        for deal in tables["crm_deals"]:
            mine = versions[deal["id"]]
            tracked = (deal["stage_id"], money(deal["amount"]) if deal["amount"] is not None
                       else None, deal["close_date"])
            if not mine or mine[-1]["_tracked"] != tracked:
                mine.append({**deal, "_tracked": tracked})
    return versions


def close_date_slippage(tables: Tables, versions: dict[int, list[Row]]) -> dict[int, Row]:
    contacts = {c["id"]: c for c in tables["contacts"]}
    current = {d["id"]: d for d in tables["crm_deals"]}
    out = {}
    for deal_id, mine in versions.items():
        slips = [(b["close_date"] - a["close_date"]).days for a, b in pairwise(mine)
                 if a["close_date"] and b["close_date"] and b["close_date"] > a["close_date"]]
        # the deal's current owner and contact; its latest version's once gone from the ERP
        now = current.get(deal_id, mine[-1])
        contact = contacts.get(now["contact_id"])
        out[deal_id] = {
            "business_id": contact["business_id"] if contact else None,
            "branch_id": contact["branch_id"] if contact else None,
            "owner_id": now["owner_id"], "first_close_date": mine[0]["close_date"],
            "current_close_date": mine[-1]["close_date"], "slip_count": len(slips),
            "slip_days_total": sum(slips), "max_slip_days": max(slips, default=0)}
    return out


def stage_win_probability(tables: Tables, deals: list[Row], versions: dict[int, list[Row]],
                          k: int = 10) -> dict[tuple, Row]:
    """(business_id, stage_id) -> row, for every business with a deal and every open stage."""
    stages = _stages(tables)
    contacts = {c["id"]: c for c in tables["contacts"]}
    open_stages = [s for s in stages.values() if _state(s) == "open"]
    seen: dict[tuple, list[str]] = defaultdict(list)  # (business, stage) -> outcomes
    pooled: dict[int, list[str]] = defaultdict(list)
    for mine in versions.values():
        outcome = _state(stages.get(mine[-1]["stage_id"]))
        if outcome == "open":
            continue
        contact = contacts.get(mine[-1]["contact_id"])
        business = contact["business_id"] if contact else None
        for stage_id in {v["stage_id"] for v in mine
                         if _state(stages.get(v["stage_id"])) == "open"
                         and v["stage_id"] in stages}:
            seen[(business, stage_id)].append(outcome)
            pooled[stage_id].append(outcome)
    out = {}
    for business in {d["business_id"] for d in deals}:
        for stage in open_stages:
            mine = seen.get((business, stage["id"]), [])
            every = pooled.get(stage["id"], [])
            won, pooled_rate = mine.count("won"), rate(every.count("won"), len(every))
            if pooled_rate is None:  # no history of the stage yet: closed deals now
                pooled_rate = rate(sum(d["state"] == "won" for d in deals),
                                   sum(d["state"] != "open" for d in deals))
            out[(business, stage["id"])] = {
                "stage_name": stage["name"], "stage_order": stage["order"],
                "observations": len(mine), "won_observations": won,
                "history_rate": rate(won, len(mine)), "pooled_rate": pooled_rate,
                "probability": None if pooled_rate is None
                else (won + k * pooled_rate) / (len(mine) + k),
                "probability_source": "history" if mine else "pooled"}
    return out


def sales_forecast(deals: list[Row], probabilities: dict[tuple, Row],
                   as_of: date) -> dict[tuple, Row]:
    """(business, branch, owner, month) -> row; weighted_amount is a float (the mart rounds
    the sum to the cent)."""
    start = as_of.replace(day=1)
    first = min((r for r in probabilities.values()), key=lambda r: r["stage_order"],
                default=None)
    out: dict[tuple, Row] = {}

    def row(deal: Row, month: date) -> Row:
        return out.setdefault((*_group(deal), month), {
            "open_deals": 0, "best_case_amount": ZERO, "weighted_amount": 0.0,
            "won_deals": 0, "won_amount": ZERO})

    for deal in deals:
        if deal["state"] == "open":
            close = deal["close_date"]
            r = row(deal, start if close is None or close < start else close.replace(day=1))
            r["open_deals"] += 1
            r["best_case_amount"] += money(deal["amount"])
            if deal["stage"] is None:
                p = first["pooled_rate"] if first else None
            else:
                p = probabilities[(deal["business_id"], deal["stage_id"])]["probability"]
            if p is not None and deal["amount"] is not None:
                r["weighted_amount"] += float(deal["amount"]) * p
        elif deal["state"] == "won" and deal["won_date"] and deal["won_date"] >= start:
            r = row(deal, deal["won_date"].replace(day=1))
            r["won_deals"] += 1
            r["won_amount"] += money(deal["amount"])
    return out


def sales_velocity(deals: list[Row], as_of: date) -> dict[tuple, Row]:
    """(business, branch, owner) -> row over the trailing 365 days."""
    since = as_of - timedelta(days=365)
    out: dict[tuple, Row] = {}
    for deal in deals:
        won = deal["won_date"] is not None and since < deal["won_date"] <= as_of
        lost = deal["lost_date"] is not None and since < deal["lost_date"] <= as_of
        is_open = deal["state"] == "open"
        if not (won or lost or is_open):
            continue
        r = out.setdefault(_group(deal), {
            "open_deals": 0, "open_amount": ZERO, "won_deals": 0, "lost_deals": 0,
            "won_amount": ZERO, "cycle_days_sum": 0})
        r["open_deals"] += is_open
        r["open_amount"] += money(deal["amount"]) if is_open else ZERO
        r["won_deals"] += won
        r["lost_deals"] += lost
        r["won_amount"] += money(deal["amount"]) if won else ZERO
        r["cycle_days_sum"] += deal["cycle_days"] if won else 0
    for r in out.values():
        w, lost, cycle = r["won_deals"], r["lost_deals"], r["cycle_days_sum"]
        r["win_rate"] = rate(w, w + lost)
        r["avg_deal_size"] = per_cent(r["won_amount"], w)
        r["avg_cycle_days"] = rate(cycle, w)
        r["velocity_per_day"] = None if not w or not cycle else (
            Decimal(r["open_deals"]) * r["won_amount"] * w / ((w + lost) * cycle))
    return out
