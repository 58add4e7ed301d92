"""An independent re-implementation of the contract marts (docs/contract.md sections 3, 5) in
plain Python: source rows read through SQLAlchemy, event files read from disk, `Decimal` money,
`zoneinfo` dates. No SQL does any of the arithmetic, so a bug in the dbt models cannot hide in
the expected values. Read it beside the contract, one definition at a time.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ingestion.erp.schema import SOURCE_TABLES

Row = dict[str, Any]
EVENT_TYPES = {"erp.campaign.impression", "erp.campaign.click", "erp.campaign.conversion",
               "erp.campaign.sent", "erp.lead.qualified", "erp.opportunity.won"}
ZERO = Decimal("0")


def code(value: str | None) -> str | None:
    """Text codes compare after trimming and lower-casing."""
    return None if value is None else value.strip().lower()


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_date(value: datetime | None, tz: str) -> date | None:
    return None if value is None else utc(value).astimezone(ZoneInfo(tz)).date()


def money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


def read_source(url: str, schema: str | None = None) -> dict[str, list[Row]]:
    """Every ERP table as a list of dicts, straight from the source database."""
    engine = sa.create_engine(url)
    out: dict[str, list[Row]] = {}
    with engine.connect() as conn:
        md = sa.MetaData(schema=schema)
        present = set(sa.inspect(conn).get_table_names(schema=schema))
        for name in (n for n in SOURCE_TABLES if n in present):
            table = sa.Table(name, md, autoload_with=conn)
            out[name] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    engine.dispose()
    return out


# ----------------------------------------------------------------------------------------------
# Events (section 3)


def _valid_event(obj: Any, landing: date) -> Row | None:
    """The event if the line passes every rule of section 3, else None."""
    if not isinstance(obj, dict):
        return None
    if any(obj.get(k) is None for k in ("specversion", "id", "source", "type", "time")):
        return None
    if obj["type"] not in EVENT_TYPES:
        return None
    try:
        when = datetime.fromisoformat(str(obj["time"]).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when >= datetime.combine(landing + timedelta(days=2), datetime.min.time(), UTC):
        return None
    data = obj.get("data") or {}

    def as_int(key: str) -> int | None:
        value = data.get(key)
        try:
            return int(str(value)) if value is not None else None
        except ValueError:
            return None

    etype = obj["type"]
    if etype.startswith("erp.campaign.") and as_int("campaign_id") is None:
        return None
    if etype == "erp.lead.qualified" and as_int("lead_id") is None:
        return None
    if etype == "erp.opportunity.won" and as_int("deal_id") is None:
        return None
    revenue = None
    if data.get("revenue") is not None:
        if isinstance(data["revenue"], bool | dict | list):
            return None
        try:
            revenue = Decimal(str(data["revenue"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
        except InvalidOperation:
            return None
        if revenue < 0:
            return None
    return {"source": str(obj["source"]), "id": str(obj["id"]), "type": etype, "time": when,
            "campaign_id": as_int("campaign_id"), "lead_id": as_int("lead_id"),
            "deal_id": as_int("deal_id"), "contact_id": as_int("contact_id"),
            "revenue": revenue}


def read_events(events_path: Path, as_of: date) -> list[Row]:
    """Valid events, first landed copy per (source, id): landing date, file name, line."""
    seen: dict[tuple[str, str], Row] = {}
    if not events_path.is_dir():
        return []
    for folder in sorted(p for p in events_path.iterdir() if p.is_dir()):
        try:
            landing = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if landing > as_of:
            continue
        for path in sorted(folder.iterdir()):
            if not path.name.endswith((".jsonl", ".jsonl.gz")):
                continue
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode()
            for line in text.split("\n"):
                if not line.strip():
                    continue
                try:
                    event = _valid_event(json.loads(line), landing)
                except json.JSONDecodeError:
                    continue
                if event is not None:
                    seen.setdefault((event["source"], event["id"]), event)
    return list(seen.values())


# ----------------------------------------------------------------------------------------------
# Shared definitions (section 5)


def deal_states(src: dict[str, list[Row]]) -> list[Row]:
    """Deals with state (won/lost/open by their stage's flags; no or unknown stage ⇒ open) and
    their contact's tenant keys."""
    stages = {s["id"]: s for s in src["crm_pipeline_stages"]}
    contacts = {c["id"]: c for c in src["contacts"]}
    out = []
    for d in src["crm_deals"]:
        stage = stages.get(d["stage_id"])
        state = "won" if stage and stage["is_won"] else "lost" if stage and stage["is_lost"] \
            else "open"
        contact = contacts.get(d["contact_id"])
        out.append({**d, "state": state, "stage": stage,
                    "business_id": contact["business_id"] if contact else None,
                    "branch_id": contact["branch_id"] if contact else None})
    return out


def rate(num: Any, den: Any) -> float | None:
    if den is None or den == 0 or num is None:
        return None
    return float(Decimal(str(num)) / Decimal(str(den)))


# ----------------------------------------------------------------------------------------------
# The four marts


def contact_summary(src: dict[str, list[Row]]) -> dict[int, Row]:
    groups = {g["id"]: g["group_name"] for g in src["customer_groups"]}
    accounts: dict[int, list[Row]] = defaultdict(list)
    for a in src["contact_accounts"]:
        accounts[a["contact_id"]].append(a)
    leads: dict[int, int] = defaultdict(int)
    for lead in src["crm_leads"]:
        leads[lead["contact_id"]] += 1
    deals: dict[int, list[Row]] = defaultdict(list)
    for d in deal_states(src):
        deals[d["contact_id"]].append(d)
    out = {}
    for c in src["contacts"]:
        if c["is_deleted"]:
            continue
        mine = deals[c["id"]]
        out[c["id"]] = {
            "contact_code": c["contact_id"], "business_id": c["business_id"],
            "branch_id": c["branch_id"], "contact_type": code(c["contact_type"]),
            "account_type": code(c["account_type"]),
            "customer_group_id": c["customer_group_id"],
            "customer_group_name": groups.get(c["customer_group_id"]),
            "credit_limit": None if c["credit_limit"] is None else money(c["credit_limit"]),
            "added_on": c["added_on"],
            **{k: sum((money(a[k]) for a in accounts[c["id"]]), ZERO)
               for k in ("account_balance", "advance_balance", "total_sale_due",
                         "total_sale_return_due")},
            "lead_count": leads[c["id"]], "deal_count": len(mine),
            "open_deal_count": sum(d["state"] == "open" for d in mine),
            "won_deal_count": sum(d["state"] == "won" for d in mine),
            "lost_deal_count": sum(d["state"] == "lost" for d in mine),
            "open_pipeline_value": sum((money(d["amount"]) for d in mine
                                        if d["state"] == "open"), ZERO),
            "won_revenue": sum((money(d["amount"]) for d in mine if d["state"] == "won"), ZERO),
        }
    return out


def pipeline_summary(src: dict[str, list[Row]]) -> dict[tuple, Row]:
    """Key: (business_id, branch_id, stage_id)."""
    deals = deal_states(src)
    pairs: dict[tuple, list[Row]] = defaultdict(list)
    for d in deals:
        pairs[(d["business_id"], d["branch_id"])].append(d)
    out = {}
    for pair, mine in pairs.items():
        def total(state: str, ds: list[Row] = mine) -> tuple[int, Decimal]:
            chosen = [d for d in ds if d["state"] == state]
            return len(chosen), sum((money(d["amount"]) for d in chosen), ZERO)

        (open_n, open_amt), (won_n, won_amt), (lost_n, lost_amt) = (
            total("open"), total("won"), total("lost"))
        whole = {"total_deals": len(mine), "open_deals": open_n, "open_amount": open_amt,
                 "won_deals": won_n, "won_amount": won_amt, "lost_deals": lost_n,
                 "lost_amount": lost_amt, "win_rate": rate(won_n, won_n + lost_n),
                 "value_win_rate": rate(won_amt, won_amt + lost_amt)}
        for s in src["crm_pipeline_stages"]:
            here = [d for d in mine if d["stage"] is s]
            if s["is_won"] or s["is_lost"]:
                reach = len(here)
            else:
                reach = sum(1 for d in mine if d["state"] == "open" and d["stage"] is not None
                            and (d["stage"]["order"] or 0) >= (s["order"] or 0)) + won_n
            out[(*pair, s["id"])] = {
                "stage_name": s["name"], "stage_order": s["order"],
                "is_won": bool(s["is_won"]), "is_lost": bool(s["is_lost"]),
                "deal_count": len(here), "pipeline_value": sum((money(d["amount"])
                                                                for d in here), ZERO),
                **whole, "stage_reach_count": reach, "stage_reach_rate": rate(reach, len(mine))}
        stageless = [d for d in mine if d["stage"] is None]
        if stageless:
            out[(*pair, None)] = {
                "stage_name": None, "stage_order": None, "is_won": None, "is_lost": None,
                "deal_count": len(stageless),
                "pipeline_value": sum((money(d["amount"]) for d in stageless), ZERO),
                **whole, "stage_reach_count": 0, "stage_reach_rate": rate(0, len(mine))}
    return out


def campaign_performance(src: dict[str, list[Row]], events: list[Row], as_of: date,
                         tz: str) -> dict[tuple, Row]:
    """Key: (campaign_id, date)."""
    branches = {b["id"]: b["business_id"] for b in src["branches"]}
    contacts = {c["id"]: c for c in src["contacts"]}
    ev: dict[tuple, list[Row]] = defaultdict(list)
    for e in events:
        if e["type"].startswith("erp.campaign."):
            ev[(e["campaign_id"], local_date(e["time"], tz))].append(e)
    erp: dict[tuple, list[Row]] = defaultdict(list)
    for p in src["crm_campaign_performance"]:
        erp[(p["campaign_id"], p["date"])].append(p)
    out = {}
    for c in src["crm_campaigns"]:
        start, end = local_date(c["start_date"], tz), local_date(c["end_date"], tz)
        flight = []
        if start and end:
            flight = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        dates = {d for d in flight if d <= as_of}
        dates |= {d for (cid, d) in ev if cid == c["id"]}
        dates |= {d for (cid, d) in erp if cid == c["id"]}
        seller = contacts.get(c["seller_id"])
        business = branches.get(c["branch_id"]) if c["branch_id"] in branches else (
            seller["business_id"] if seller else None)
        for d in dates:
            if (c["id"], d) in ev:
                rows, source = ev[(c["id"], d)], "events"
                counts = {t: sum(e["type"] == f"erp.campaign.{t}" for e in rows)
                          for t in ("impression", "click", "conversion", "sent")}
                imp, clk, conv, sends = (counts["impression"], counts["click"],
                                         counts["conversion"], counts["sent"])
                revenue = sum((e["revenue"] or ZERO for e in rows
                               if e["type"] == "erp.campaign.conversion"), ZERO)
            elif (c["id"], d) in erp:
                rows, source = erp[(c["id"], d)], "erp"
                imp = sum(r["impressions"] or 0 for r in rows)
                clk = sum(r["clicks"] or 0 for r in rows)
                conv = sum(r["conversions"] or 0 for r in rows)
                revenue, sends = sum((money(r["revenue"]) for r in rows), ZERO), 0
            else:
                imp = clk = conv = sends = 0
                revenue, source = ZERO, "none"
            if c["budget"] is None or not flight:
                spend = None
            elif start <= d <= end:
                spend = (money(c["budget"]) / len(flight)).quantize(Decimal("0.000001"),
                                                                     ROUND_HALF_UP)
            else:
                spend = ZERO
            out[(c["id"], d)] = {
                "business_id": business, "branch_id": c["branch_id"],
                "campaign_name": c["name"], "campaign_type": code(c["campaign_type"]),
                "status": code(c["status"]), "impressions": imp, "clicks": clk,
                "conversions": conv, "revenue": revenue, "sends": sends, "spend": spend,
                "ctr": rate(clk, imp), "cvr": rate(conv, clk),
                "roi": None if spend is None else rate(revenue - spend, spend),
                "data_source": source}
    return out


def lead_conversion(src: dict[str, list[Row]], events: list[Row], tz: str) -> dict[tuple, Row]:
    """Key: (business_id, branch_id, source, cohort_month)."""
    contacts = {c["id"]: c for c in src["contacts"]}
    qualified_by_event = {e["lead_id"] for e in events if e["type"] == "erp.lead.qualified"}
    out: dict[tuple, Row] = {}
    for lead in src["crm_leads"]:
        contact = contacts.get(lead["contact_id"])
        source = code(lead["source"]) or "unknown"
        created = local_date(lead["created_at"], tz)
        month = created.replace(day=1) if created else None  # no created_at: no cohort
        key = (contact["business_id"] if contact else None,
               contact["branch_id"] if contact else None, source, month)
        row = out.setdefault(key, {"leads": 0, "reached_contacted": 0, "reached_qualified": 0,
                                   "won_leads": 0, "lost_leads": 0, "lead_value": ZERO,
                                   "won_value": ZERO})
        status = code(lead["status"])
        by_event = lead["id"] in qualified_by_event
        row["leads"] += 1
        row["reached_contacted"] += status in {"contacted", "qualified", "won"} or by_event
        row["reached_qualified"] += status in {"qualified", "won"} or by_event
        row["won_leads"] += status == "won"
        row["lost_leads"] += status == "lost"
        row["lead_value"] += money(lead["value"])
        row["won_value"] += money(lead["value"]) if status == "won" else ZERO
    for row in out.values():
        row["qualification_rate"] = rate(row["reached_qualified"], row["leads"])
        row["lead_win_rate"] = rate(row["won_leads"], row["leads"])
    return out


def campaign_audience(src: dict[str, list[Row]], events: list[Row],
                      campaigns: set[int]) -> dict[tuple, Row]:
    """campaign_lifetime's audience columns. Key: (campaign_id,). The audience is the distinct
    non-NULL contacts of crm_campaigns_target_audience; converted are those a conversion event
    of the same campaign names."""
    audience: dict[int, set[int]] = defaultdict(set)
    for row in src.get("crm_campaigns_target_audience", []):
        if row["contact_id"] is not None:
            audience[row["campaign_id"]].add(row["contact_id"])
    converted = {(e["campaign_id"], e["contact_id"]) for e in events
                 if e["type"] == "erp.campaign.conversion"}
    out = {}
    for campaign in campaigns:
        size = len(audience[campaign])
        hits = sum(1 for contact in audience[campaign] if (campaign, contact) in converted)
        out[(campaign,)] = {"audience_size": size, "audience_converted": hits,
                            "audience_conversion_rate": hits / size if size else None}
    return out


# ----------------------------------------------------------------------------------------------
# The dashboards' marts: the contract marts above rolled up in plain Python


PAIR_TOTALS = ("total_deals", "open_deals", "open_amount", "won_deals", "won_amount",
               "lost_deals", "lost_amount", "win_rate", "value_win_rate")


def pipeline_by_tenant(src: dict[str, list[Row]]) -> dict[tuple, Row]:
    """Key: (business_id, branch_id). Each pair's deal totals and win rates, as computed for
    every stage row of `pipeline_summary()`."""
    return {(business, branch): {k: row[k] for k in PAIR_TOTALS}
            for (business, branch, _stage), row in pipeline_summary(src).items()}


SEGMENT_SUMS = ("won_revenue", "won_deal_count", "open_pipeline_value", "account_balance",
                "advance_balance", "total_sale_due", "total_sale_return_due")


def contact_segments(contacts: dict[int, Row]) -> dict[tuple, Row]:
    """Key: (business_id, branch_id, contact_type, customer_group_name), from
    `contact_summary()`: live contacts counted, their money and won deals summed; credit limits
    summed over the contacts that have one (None when none has)."""
    out: dict[tuple, Row] = {}
    for c in contacts.values():
        key = (c["business_id"], c["branch_id"], c["contact_type"], c["customer_group_name"])
        row = out.setdefault(key, {"contacts": 0, **{k: 0 for k in SEGMENT_SUMS},
                                   "credit_limit": None})
        row["contacts"] += 1
        for k in SEGMENT_SUMS:
            row[k] += c[k]
        if c["credit_limit"] is not None:
            row["credit_limit"] = (row["credit_limit"] or ZERO) + c["credit_limit"]
    return out


def top_contacts(contacts: dict[int, Row], per_tenant: int) -> dict[int, Row]:
    """Key: contact_pk, from `contact_summary()`: per (business_id, branch_id) the
    `per_tenant` contacts with the most won revenue (ties by contact_pk), with their rank."""
    pairs: dict[tuple, list[int]] = defaultdict(list)
    for pk, c in contacts.items():
        if c["won_revenue"] > 0:
            pairs[(c["business_id"], c["branch_id"])].append(pk)
    out = {}
    for pks in pairs.values():
        ranked = sorted(pks, key=lambda pk: (-contacts[pk]["won_revenue"], pk))
        for rank, pk in enumerate(ranked[:per_tenant], start=1):
            c = contacts[pk]
            out[pk] = {k: c[k] for k in ("contact_code", "business_id", "branch_id",
                                         "contact_type", "customer_group_name", "won_revenue",
                                         "won_deal_count", "open_pipeline_value",
                                         "total_sale_due", "account_balance")}
            out[pk]["tenant_rank"] = rank
    return out
