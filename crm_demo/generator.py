"""`crm-analytics generate`: a realistic, deterministic synthetic ERP and its event files.

Every table is built column by column with NumPy from one seeded generator, so the same
arguments give byte-identical output, and `large` (1M contacts, 10M events) takes minutes.
The data is shaped like a real business — unequal tenants, a lead funnel, deals across stages,
campaigns with flights and seasonality — and untidy like a real ERP: soft deletes, deals without
a stage, contacts without accounts or with two, odd-case codes, blank lead sources, duplicate,
late and broken event lines.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from crm_core.errors import CrmError
from crm_core.landing import strict_date

if TYPE_CHECKING:
    from rich.progress import Progress

T = TypeVar("T")

SCALES: dict[str, dict[str, int]] = {
    "small": {"contacts": 3_000, "leads": 4_000, "deals": 2_500, "campaigns": 40,
              "events": 40_000},
    "medium": {"contacts": 100_000, "leads": 200_000, "deals": 200_000, "campaigns": 400,
               "events": 1_000_000},
    "large": {"contacts": 1_000_000, "leads": 2_000_000, "deals": 2_000_000, "campaigns": 2_000,
              "events": 10_000_000},
}

BUSINESS_WEIGHTS = np.array([0.42, 0.24, 0.16, 0.10, 0.05, 0.03])
STAGES = [  # id, name, order, is_won, is_lost, share of deals
    (1, "Prospecting", 1, False, False, 0.22),
    (2, "Qualification", 2, False, False, 0.18),
    (3, "Proposal", 3, False, False, 0.14),
    (4, "Negotiation", 4, False, False, 0.10),
    (5, "Closed Won", 5, True, False, 0.20),
    (6, "Closed Lost", 6, False, True, 0.16),
]
# Codes as a real ERP stores them: mostly clean, sometimes odd case or padded.
LEAD_STATUSES = ["new", "contacted", "qualified", "won", "lost",
                 " Won", "QUALIFIED", "Contacted ", "Lost"]
LEAD_STATUS_P = [0.26, 0.22, 0.17, 0.12, 0.15, 0.02, 0.02, 0.02, 0.02]
LEAD_SOURCES = ["Website", "Referral", "Email campaign", "Social", "Trade show", "Cold call",
                "website", " Referral ", "", "  ", None]
LEAD_SOURCE_P = [0.28, 0.16, 0.15, 0.12, 0.07, 0.08, 0.04, 0.03, 0.03, 0.02, 0.02]
CONTACT_TYPES = ["Customers", "Suppliers", "Customers & Suppliers", "customers", "Customers "]
CONTACT_TYPE_P = [0.74, 0.12, 0.08, 0.03, 0.03]
CAMPAIGN_TYPES = ["banner", "email", "social", "sms", "promotional", "seasonal",
                  "product_launch", "loyalty"]
CAMPAIGN_STATUSES = ["active", "completed", "paused", "draft", "cancelled", "Active "]
CAMPAIGN_STATUS_P = [0.45, 0.30, 0.08, 0.05, 0.05, 0.07]
#: Where the generated branches are (their names).
CITIES = ["Lisbon", "Lagos", "Lyon", "Leeds", "Lima", "Lahore", "Linz", "Lund", "Lille",
          "Luanda", "León", "Lucca", "Lublin", "Laval", "Lorca", "Lugo", "Luxor", "Lecce",
          "Lodz", "Limerick", "Lausanne", "Leiden", "Landshut", "Lemgo"]
#: The auth service's users who own leads and deals (owner ids 1-24). Owner 24 has no user
#: row and owner 5 only a username, so both name fallbacks have something to show.
FIRST_NAMES = ["Ana", "Ben", "Chloé", "Dev", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jade",
               "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven",
               "Tariq", "Uma", "Viktor", "Wen"]
LAST_NAMES = ["Silva", "Okafor", "Martin", "Patel", "Cohen", "Haddad", "Novak", "Sato",
              "Petrov", "Nguyen", "Mensah", "Fischer", "García", "Berg", "Aziz", "Sharma",
              "Lee", "Rossi", "Larsen", "Khan", "Iyer", "Kovač", "Zhang"]
EVENT_OFFSETS_MIN = np.array([0, 0, 120, -300, 330, -480])  # Z, Z, +02:00, -05:00, +05:30, -08:00


@dataclass
class GenerateReport:
    """What `generate` wrote."""

    rows: dict[str, int] = field(default_factory=dict)
    event_files: int = 0
    event_lines: int = 0


# ------------------------------------------------------------------------------------------
# Tables


def _pick(rng: np.random.Generator, values: list, p: list[float], n: int) -> pl.Series:
    """n draws from `values` (which may include None) with probabilities `p`, as text."""
    p_arr = np.asarray(p, dtype=float)
    codes = rng.choice(len(values), size=n, p=p_arr / p_arr.sum())
    return pl.Series(values, dtype=pl.String).gather(codes)


def _text_where(mask: np.ndarray, values: np.ndarray) -> pl.Series:
    """`values` where `mask`, NULL elsewhere."""
    return pl.select(pl.when(pl.Series(mask)).then(pl.Series(values.astype(str)))).to_series()


def _money(cents: np.ndarray) -> pl.Series:
    """Cents → exact Decimal(15,2) column (through text, so no float rounding creeps in)."""
    c = pl.Series(np.round(cents).astype(np.int64))
    text = (pl.when(c < 0).then(pl.lit("-")).otherwise(pl.lit(""))
            + (c.abs() // 100).cast(pl.String) + "."
            + (c.abs() % 100).cast(pl.String).str.zfill(2))
    return pl.select(text.cast(pl.Decimal(15, 2))).to_series()


def _ts(start: datetime, seconds: np.ndarray) -> pl.Series:
    base = np.datetime64(start.replace(tzinfo=None), "us")
    return pl.Series(base + (seconds.astype(np.int64) * 1_000_000).astype("timedelta64[us]")) \
        .dt.replace_time_zone("UTC")


def build_tables(scale: str, days: int, seed: int, end_date: date) -> dict[str, pl.DataFrame]:
    """Every ERP table as a DataFrame. Pure function of its arguments."""
    n = SCALES[scale]
    rng = np.random.default_rng(seed)
    start = datetime.combine(end_date - timedelta(days=days - 1), datetime.min.time(), UTC)
    span = days * 86_400

    n_biz = len(BUSINESS_WEIGHTS)
    branches_per_biz = rng.integers(2, 5, size=n_biz)
    branch_biz = np.repeat(np.arange(1, n_biz + 1), branches_per_biz)
    branch_first = np.concatenate([[0], np.cumsum(branches_per_biz)[:-1]])
    t: dict[str, pl.DataFrame] = {}
    t["businesses"] = pl.DataFrame({
        "id": np.arange(1, n_biz + 1),
        "name": [f"{name} Ltd" for name in ["Northwind", "Contoso", "Fabrikam", "Globex",
                                           "Initech", "Umbrella"][:n_biz]]})
    t["branches"] = pl.DataFrame({
        "id": np.arange(1, len(branch_biz) + 1), "business_id": branch_biz,
        "name": [f"{CITIES[i % len(CITIES)]} {'store' if i % 3 else 'outlet'}"
                 for i in range(len(branch_biz))]})
    t["customer_groups"] = pl.DataFrame({
        "id": np.arange(1, 9),
        "group_name": ["Retail", "Wholesale", "VIP", "Staff", "Online", "Partners", "Schools",
                       "Government"],
        "dicount_calculation": ["Percentage", "Fixed", "percentage", "Percentage", "FIXED",
                                "Fixed", "Percentage ", "Fixed"],
        "amount": _money(rng.integers(0, 2_000, 8) * 100.0)})

    # Contacts: tenants of unequal size; a few soft-deleted.
    nc = n["contacts"]
    biz = rng.choice(n_biz, size=nc, p=BUSINESS_WEIGHTS / BUSINESS_WEIGHTS.sum())
    branch = branch_first[biz] + (rng.random(nc) * branches_per_biz[biz]).astype(int) + 1
    contact_ids = np.arange(1, nc + 1)
    is_business = rng.random(nc) < 0.3
    group = rng.integers(1, 9, nc).astype(float)
    group[rng.random(nc) < 0.2] = np.nan
    t["contacts"] = pl.DataFrame({
        "id": contact_ids,
        "contact_id": [f"CO{i:07d}" for i in contact_ids],
        "contact_type": _pick(rng, CONTACT_TYPES, CONTACT_TYPE_P, nc),
        "user_id": rng.integers(1, 500, nc),
        "business_id": biz + 1,
        "branch_id": branch,
        "designation": _pick(rng, ["Mr", "Mrs", "Ms", None], [0.4, 0.3, 0.2, 0.1], nc),
        "customer_group_id": pl.Series(group).cast(pl.Int64, strict=False),
        "account_type": np.where(is_business, "Business", "Individual"),
        "tax_number": _text_where(is_business,
                                  np.char.add("TX", rng.integers(10**8, 10**9, nc).astype(str))),
        "business_name": _text_where(is_business, np.char.add("Company ",
                                                              contact_ids.astype(str))),
        "business_address": None,
        "alternative_contact": None,
        "phone": np.char.add("+1555", rng.integers(10**6, 10**7, nc).astype(str)),
        "credit_limit": _money(rng.integers(0, 50, nc) * 100_000.0),
        "added_on": (pl.Series(_ts(start - timedelta(days=365), rng.integers(0, 365 * 86_400
                                                                              + span, nc)))
                     .dt.date()),
        "is_deleted": rng.random(nc) < 0.03,
        "created_by_id": rng.integers(1, 50, nc),
    }).with_columns(pl.col("business_address", "alternative_contact").cast(pl.String))

    # Accounts: 10% of contacts have none, 5% have two.
    per_contact = rng.choice([0, 1, 2], size=nc, p=[0.10, 0.85, 0.05])
    acc_contact = np.repeat(contact_ids, per_contact)
    na = len(acc_contact)
    t["contact_accounts"] = pl.DataFrame({
        "id": np.arange(1, na + 1), "contact_id": acc_contact,
        "account_balance": _money(rng.normal(50_000, 80_000, na)),
        "advance_balance": _money(rng.exponential(5_000, na) * (rng.random(na) < 0.3)),
        "total_sale_due": _money(rng.exponential(30_000, na)),
        "total_sale_return_due": _money(rng.exponential(2_000, na) * (rng.random(na) < 0.2)),
    })

    # Leads: a funnel; created over the window; a few at 23:30 Los Angeles on a month's end.
    nl = n["leads"]
    lead_contact = rng.integers(1, nc + 1, nl).astype(float)
    lead_contact[rng.random(nl) < 0.01] = np.nan
    lead_created = np.sort(rng.integers(0, span, nl))
    month_ends = [d for d in (start.date() + timedelta(days=i) for i in range(days))
                  if (d + timedelta(days=1)).day == 1]
    for k, d in enumerate(month_ends[: nl // 10]):
        # 23:30 in Los Angeles is the next morning in UTC: a time-zone trap for cohorts.
        local = datetime(d.year, d.month, d.day, 23, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
        lead_created[k] = int((local.astimezone(UTC) - start).total_seconds())
    lead_created = np.clip(lead_created, 0, span - 1)
    t["crm_leads"] = pl.DataFrame({
        "id": np.arange(1, nl + 1),
        "contact_id": pl.Series(lead_contact).cast(pl.Int64, strict=False),
        "source": _pick(rng, LEAD_SOURCES, LEAD_SOURCE_P, nl),
        "status": _pick(rng, LEAD_STATUSES, LEAD_STATUS_P, nl),
        "value": _money(rng.lognormal(11.5, 1.0, nl)),
        "owner_id": rng.integers(1, 25, nl),
        "created_at": _ts(start, lead_created),
        "updated_at": _ts(start, np.minimum(lead_created + rng.integers(0, 20 * 86_400, nl),
                                            span - 1)),
    }).with_columns(pl.col("source").cast(pl.String))

    t["crm_pipeline_stages"] = pl.DataFrame({
        "id": [s[0] for s in STAGES], "name": [s[1] for s in STAGES],
        "order": [s[2] for s in STAGES], "is_won": [s[3] for s in STAGES],
        "is_lost": [s[4] for s in STAGES]})

    # Deals: 60% come from a lead (and its contact); 3% have no stage.
    nd = n["deals"]
    from_lead = rng.random(nd) < 0.6
    deal_lead = np.where(from_lead, rng.integers(1, nl + 1, nd), 0)
    deal_contact = np.where(from_lead, np.nan_to_num(lead_contact[np.maximum(deal_lead - 1, 0)],
                                                     nan=0), rng.integers(1, nc + 1, nd))
    deal_contact[rng.random(nd) < 0.01] = 0
    stage = rng.choice([s[0] for s in STAGES], size=nd, p=[s[5] for s in STAGES]).astype(float)
    stage[rng.random(nd) < 0.03] = np.nan
    deal_created = rng.integers(0, span, nd)
    t["crm_deals"] = pl.DataFrame({
        "id": np.arange(1, nd + 1),
        "title": [f"Opportunity {i}" for i in range(1, nd + 1)],
        "contact_id": pl.Series(deal_contact).cast(pl.Int64).replace(0, None),
        "lead_id": pl.Series(deal_lead).replace(0, None),
        "stage_id": pl.Series(stage).cast(pl.Int64, strict=False),
        "amount": _money(rng.lognormal(13.0, 1.1, nd)),
        "close_date": _ts(start, deal_created + rng.integers(7, 120, nd) * 86_400).dt.date(),
        "owner_id": rng.integers(1, 25, nd),
        "created_at": _ts(start, deal_created),
        "updated_at": _ts(start, np.minimum(deal_created + rng.integers(0, 30 * 86_400, nd),
                                            span - 1)),
    })

    # Campaigns: flights inside (and around) the window, budgets, types.
    nk = n["campaigns"]
    flight_start = rng.integers(-20, days - 5, nk)
    flight_len = rng.integers(7, 60, nk)
    budget = rng.integers(500, 50_000, nk) * 100.0
    t["crm_campaigns"] = pl.DataFrame({
        "id": np.arange(1, nk + 1),
        "name": [f"Campaign {i}" for i in range(1, nk + 1)],
        "campaign_type": _pick(rng, [*CAMPAIGN_TYPES, "Email"], [1.0] * 8 + [0.3], nk),
        "status": _pick(rng, CAMPAIGN_STATUSES, CAMPAIGN_STATUS_P, nk),
        "priority": rng.integers(1, 6, nk),
        "title": [f"Offer {i}" for i in range(1, nk + 1)],
        "description": None, "image": None, "badge": "New",
        "seller_id": rng.integers(1, nc + 1, nk),
        "branch_id": rng.integers(1, len(branch_biz) + 1, nk),
        "start_date": _ts(start, flight_start * 86_400 + 9 * 3600),
        "end_date": _ts(start, (flight_start + flight_len) * 86_400 + 18 * 3600),
        "is_active": rng.random(nk) < 0.8, "is_default": np.zeros(nk, dtype=bool),
        "impressions": 0, "clicks": 0, "conversions": 0,
        "revenue_generated": _money(np.zeros(nk)),
        "budget": _money(budget),
        "max_impressions": None, "max_clicks": None,
        "landing_page_url": [f"https://shop.example/c/{i}" for i in range(1, nk + 1)],
        "cta_text": "Learn More",
        "created_by_id": rng.integers(1, 50, nk),
        "created_at": _ts(start, np.maximum(flight_start - 10, -30) * 86_400 + 40 * 86_400),
        "updated_at": _ts(start, np.maximum(flight_start - 10, -30) * 86_400 + 40 * 86_400),
    }).with_columns(
        pl.col("description", "image").cast(pl.String),
        pl.col("max_impressions", "max_clicks").cast(pl.Int64),
        # Untidy: two campaigns without a budget, one without an end date.
        pl.when(pl.col("id").is_in([1, 2])).then(None).otherwise(pl.col("budget")).alias("budget"),
        pl.when(pl.col("id") == 3).then(None).otherwise(pl.col("end_date")).alias("end_date"),
    )

    t["crm_campaign_performance"] = _campaign_performance(rng, t["crm_campaigns"], start, days)
    t["auth_users"] = _auth_users()
    return t


def _auth_users() -> pl.DataFrame:
    """The owners' user rows; no random draws, so the other tables stay what they were."""
    ids = list(range(1, len(FIRST_NAMES) + 1))
    first = [None if i == 5 else name for i, name in zip(ids, FIRST_NAMES, strict=True)]
    last = [None if i == 5 else name for i, name in zip(ids, LAST_NAMES, strict=True)]
    return pl.DataFrame({
        "id": ids,
        "username": [f"{f.lower()}.{s.lower()}" for f, s in zip(FIRST_NAMES, LAST_NAMES,
                                                              strict=True)],
        "first_name": first, "last_name": last,
        "email": [f"{f.lower()}@shop.example" for f in FIRST_NAMES],
    }, schema={"id": pl.Int64, "username": pl.String, "first_name": pl.String,
               "last_name": pl.String, "email": pl.String})


def _campaign_performance(rng: np.random.Generator, campaigns: pl.DataFrame, start: datetime,
                          days: int) -> pl.DataFrame:
    """Daily rows per campaign over its flight inside the window: weekday/weekend seasonality,
    a slow trend, and a few duplicate (campaign, date) rows as a real ERP has."""
    last = start.date() + timedelta(days=days - 1)
    window = pl.DataFrame({"date": pl.date_range(start.date(), last, eager=True)})
    flights = campaigns.select(
        pl.col("id").alias("campaign_id"),
        pl.col("start_date").dt.date().alias("start"),
        pl.col("end_date").dt.date().fill_null(last).alias("end"),
    )
    rows = flights.join(window, how="cross").filter(
        (pl.col("date") >= pl.col("start")) & (pl.col("date") <= pl.col("end"))
    ).sort("campaign_id", "date")
    m = rows.height
    weekday = rows["date"].dt.weekday().to_numpy()
    season = np.where(weekday >= 6, 0.6, 1.0) * (1 + 0.3 * np.sin(np.arange(m) / 11))
    impressions = rng.poisson(2_000 * season)
    clicks = rng.binomial(impressions, 0.03)
    conversions = rng.binomial(clicks, 0.08)
    revenue = conversions * rng.lognormal(10.3, 0.5, m)
    perf = rows.select("campaign_id", "date").with_columns(
        impressions=impressions, clicks=clicks, conversions=conversions,
        revenue=_money(revenue),
    )
    dupes = perf.gather(rng.choice(m, size=max(1, m // 200), replace=False)) if m else perf
    perf = pl.concat([perf, dupes]).sort("campaign_id", "date")
    return perf.with_columns(
        id=pl.int_range(1, perf.height + 1, dtype=pl.Int64),
        created_at=(pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=23))
        .dt.replace_time_zone("UTC"),
    ).select("id", "campaign_id", "date", "impressions", "clicks", "conversions", "revenue",
             "created_at")


# ------------------------------------------------------------------------------------------
# Campaign event files


def build_events(tables: dict[str, pl.DataFrame], scale: str, seed: int,
                 end_date: date) -> pl.DataFrame:
    """Every event with its landing date, duplicates included; pure function of its inputs."""
    rng = np.random.default_rng(seed + 1)
    target = SCALES[scale]["events"]
    campaigns = tables["crm_campaigns"]
    branches = tables["branches"]
    perf = tables["crm_campaign_performance"].unique(["campaign_id", "date"]).sort(
        "campaign_id", "date")
    # Half of the campaigns report through events, from a third of the way into the window.
    with_events = campaigns.filter(pl.col("id") % 2 == 0).select(
        pl.col("id").alias("campaign_id"), "branch_id")
    first_day = perf["date"].min() + timedelta(days=30) if perf.height else end_date
    days = perf.join(with_events, on="campaign_id").filter(pl.col("date") >= first_day)
    days = days.join(branches.select(pl.col("id").alias("branch_id"), "business_id"),
                     on="branch_id", how="left")
    parts = []
    shares = {"erp.campaign.impression": 0.80, "erp.campaign.click": 0.06,
              "erp.campaign.conversion": 0.01, "erp.campaign.sent": 0.08}
    per_day = (target * 0.95) / max(days.height, 1)
    for event_type, share in shares.items():
        counts = rng.poisson(per_day * share, days.height)
        rows = days.select("campaign_id", "date", "branch_id", "business_id").gather(
            np.repeat(np.arange(days.height), counts))
        parts.append(rows.with_columns(type=pl.lit(event_type)))
    camp = pl.concat(parts)
    camp = camp.with_columns(
        time=(pl.col("date").cast(pl.Datetime("us")) + pl.duration(
            seconds=pl.Series(rng.integers(0, 86_400, camp.height)))).dt.replace_time_zone("UTC"),
        contact_id=pl.Series(rng.integers(1, SCALES[scale]["contacts"] + 1, camp.height)),
        revenue=pl.when(pl.col("type") == "erp.campaign.conversion").then(
            _money(rng.lognormal(10.3, 0.6, camp.height)).cast(pl.String)),
        lead_id=pl.lit(None, pl.Int64), deal_id=pl.lit(None, pl.Int64),
    ).drop("date")

    leads = tables["crm_leads"].join(
        tables["contacts"].select(pl.col("id").alias("contact_id"), "business_id", "branch_id"),
        on="contact_id", how="left")
    status = leads["status"].str.strip_chars().str.to_lowercase()
    qualified = leads.filter(
        (status.is_in(["qualified", "won"]) & pl.Series(rng.random(leads.height) < 0.7))
        | (status.is_in(["new", "contacted"]) & pl.Series(rng.random(leads.height) < 0.02)))
    lead_events = qualified.select(
        pl.lit(None, pl.Int64).alias("campaign_id"), "branch_id", "business_id",
        type=pl.lit("erp.lead.qualified"),
        time=pl.col("created_at") + pl.duration(hours=pl.Series(
            rng.integers(1, 72, qualified.height))),
        contact_id="contact_id", revenue=pl.lit(None, pl.String),
        lead_id="id", deal_id=pl.lit(None, pl.Int64))
    won = tables["crm_deals"].filter(pl.col("stage_id") == 5).join(
        tables["contacts"].select(pl.col("id").alias("contact_id"), "business_id", "branch_id"),
        on="contact_id", how="left")
    won_events = won.select(
        pl.lit(None, pl.Int64).alias("campaign_id"), "branch_id", "business_id",
        type=pl.lit("erp.opportunity.won"), time="updated_at", contact_id="contact_id",
        revenue=pl.lit(None, pl.String), lead_id=pl.lit(None, pl.Int64), deal_id="id")

    events = pl.concat([camp, lead_events, won_events], how="diagonal_relaxed").sort("time")
    n = events.height
    lag = rng.choice([0, 1, 2, 3, 5, 7], size=n, p=[0.80, 0.18, 0.006, 0.006, 0.004, 0.004])
    events = events.with_columns(
        id=pl.format("evt-{}", pl.int_range(1, n + 1).cast(pl.String).str.zfill(9)),
        source=pl.format("erp/crm/{}", pl.col("business_id").fill_null(0)),
        landing_date=pl.col("time").dt.date() + pl.duration(days=pl.Series(lag)),
        offset=pl.Series(EVENT_OFFSETS_MIN[rng.integers(0, len(EVENT_OFFSETS_MIN), n)]),
    ).filter(pl.col("landing_date") <= end_date)

    # Duplicate deliveries: the same (source, id) again, the same day or up to 3 days later;
    # one of them with a conflicting payload (the first landed copy must win).
    dupes = events.gather(rng.choice(events.height, size=max(3, events.height // 300),
                                     replace=False))
    dupes = dupes.with_columns(landing_date=pl.min_horizontal(
        pl.col("landing_date") + pl.duration(days=pl.Series(rng.integers(0, 4, dupes.height))),
        pl.lit(end_date)))
    dupes = dupes.with_columns(
        revenue=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("999999.99"))
        .otherwise(pl.col("revenue")))
    return pl.concat([events, dupes])


def build_target_audience(tables: dict[str, pl.DataFrame], events: pl.DataFrame,
                          scale: str, seed: int) -> pl.DataFrame:
    """`crm_campaigns_target_audience`: per campaign, half of the contacts its conversion
    events name plus up to 60 random contacts, and a few duplicate rows (the ERP's junction
    table has no unique constraint). Its own random stream: the other tables do not move."""
    rng = np.random.default_rng(seed + 2)
    converted = events.filter((pl.col("type") == "erp.campaign.conversion")
                              & pl.col("campaign_id").is_not_null()
                              & pl.col("contact_id").is_not_null()
                              ).select("campaign_id", "contact_id").unique().sort(
                                  "campaign_id", "contact_id")
    converted = converted.filter(pl.Series(rng.random(converted.height) < 0.5))
    campaign_ids = tables["crm_campaigns"]["id"].to_numpy()
    sizes = rng.integers(0, 61, campaign_ids.size)
    others = pl.DataFrame({
        "campaign_id": np.repeat(campaign_ids, sizes),
        "contact_id": rng.integers(1, SCALES[scale]["contacts"] + 1, int(sizes.sum())),
    })
    audience = pl.concat([converted.cast(pl.Int64), others.cast(pl.Int64)])
    dupes = audience.gather(rng.choice(audience.height, size=min(3, audience.height),
                                       replace=False))
    audience = pl.concat([audience, dupes]).sort("campaign_id", "contact_id")
    return audience.select(pl.int_range(1, audience.height + 1).alias("id"),
                           "campaign_id", "contact_id")


def _rfc3339(events: pl.DataFrame) -> pl.Expr:
    """`time` as RFC 3339 text in the event's own offset (Z, +02:00, -05:00 …)."""
    local = pl.col("time").dt.replace_time_zone(None) + pl.duration(minutes=pl.col("offset"))
    sign = pl.when(pl.col("offset") < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    hh = (pl.col("offset").abs() // 60).cast(pl.String).str.zfill(2)
    mm = (pl.col("offset").abs() % 60).cast(pl.String).str.zfill(2)
    suffix = pl.when(pl.col("offset") == 0).then(pl.lit("Z")).otherwise(sign + hh + ":" + mm)
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S") + suffix


BAD_LINES = [
    '{"specversion": "1.0", "id": "broken-json", "source": "erp/crm/1"',
    '["not", "an", "object"]',
    '{"specversion": "1.0", "id": "bad-type", "source": "erp/crm/1", "type": "erp.campaign.like",'
    ' "time": "2026-01-01T00:00:00Z", "data": {"campaign_id": 2}}',
    '{"specversion": "1.0", "id": "no-campaign", "source": "erp/crm/1", "type": '
    '"erp.campaign.click", "time": "2026-01-01T00:00:00Z", "data": {}}',
    '{"specversion": "1.0", "id": "bad-time", "source": "erp/crm/1", "type": '
    '"erp.campaign.click", "time": "yesterday", "data": {"campaign_id": 2}}',
    '{"specversion": "1.0", "id": "neg-revenue", "source": "erp/crm/1", "type": '
    '"erp.campaign.conversion", "time": "2026-01-01T00:00:00Z", '
    '"data": {"campaign_id": 2, "revenue": "-5.00"}}',
    '{"specversion": "1.0", "id": "nan-revenue", "source": "erp/crm/1", "type": '
    '"erp.campaign.conversion", "time": "2026-01-01T00:00:00Z", '
    '"data": {"campaign_id": 2, "revenue": "lots"}}',
]


def create_event_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrmError(f"cannot create the event folder {path}: "
                       f"{exc.strerror or exc}") from None


def write_event_files(events: pl.DataFrame, events_path: Path,
                      progress: Progress | None = None) -> tuple[int, int]:
    """One landing folder per day, two files a day (every fifth day gzipped), a `_SUCCESS`
    marker, and a few broken lines. Returns (files, lines)."""
    create_event_folder(events_path)
    lines_df = events.select(
        "landing_date",
        pl.struct(
            specversion=pl.lit("1.0"), id="id", source="source", type="type",
            time=_rfc3339(events),
            data=pl.struct("campaign_id", "contact_id", "lead_id", "deal_id", "revenue",
                           "business_id", "branch_id"),
        ).struct.json_encode().alias("line"),
    )
    files = lines_total = 0
    days = lines_df.partition_by("landing_date", as_dict=True, maintain_order=True)
    for (landing,), day in _track(progress, days.items(), "event files (days)", len(days)):
        folder = events_path / landing.isoformat()
        folder.mkdir()
        half = day.height // 2
        chunks = [day["line"][:half].to_list(), day["line"][half:].to_list()]
        if landing.toordinal() % 7 == 0:
            chunks[0].append(BAD_LINES[(landing.toordinal() // 7) % len(BAD_LINES)])
        for k, chunk in enumerate(chunks, start=1):
            payload = ("\n".join(chunk) + "\n").encode()
            if landing.toordinal() % 5 == 0:
                (folder / f"events-{k:04d}.jsonl.gz").write_bytes(gzip.compress(payload, mtime=0))
            else:
                (folder / f"events-{k:04d}.jsonl").write_bytes(payload)
            files += 1
            lines_total += len(chunk)
        (folder / "_SUCCESS").write_bytes(b"")
    return files, lines_total


# ------------------------------------------------------------------------------------------
# Writing


def _as_sql_text(df: pl.DataFrame) -> pl.DataFrame:
    """Columns in the text forms SQLAlchemy itself stores in SQLite (and COPY accepts)."""
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            col = col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
        elif dtype == pl.Date or isinstance(dtype, pl.Decimal):
            col = col.cast(pl.String)
        elif dtype == pl.Boolean:
            col = col.cast(pl.Int8)
        exprs.append(col.alias(name))
    return df.select(exprs)


def write_tables(source_url: str, schema: str | None, tables: dict[str, pl.DataFrame],
                 progress: Progress | None = None) -> None:
    """(Re)create the ERP tables and bulk-load them: COPY on PostgreSQL, executemany on SQLite."""
    import sqlalchemy as sa

    from crm_core.urls import redact_url
    from ingestion.erp.schema import build_metadata, erd_indexes

    try:
        url = sa.make_url(source_url)
    except sa.exc.ArgumentError:
        raise CrmError(f"CRM_SOURCE_URL: malformed URL {redact_url(source_url)!r}") from None
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise CrmError(f"generate writes SQLite or PostgreSQL, not {backend}")
    if backend == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    pg_schema = (schema or "public") if backend == "postgresql" else None
    md = build_metadata(pg_schema)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if pg_schema:
                conn.execute(sa.text(f'create schema if not exists "{pg_schema}"'))
            md.drop_all(conn)
            md.create_all(conn)
            for name, df in _track(progress, tables.items(), "ERP tables", len(tables)):
                table = md.tables[f"{pg_schema}.{name}" if pg_schema else name]
                data = _as_sql_text(df.select([c.name for c in table.columns]))
                if backend == "postgresql":
                    _copy_postgres(conn, table, data)
                else:
                    conn.exec_driver_sql(
                        f'insert into "{name}" values ({", ".join("?" * data.width)})',
                        list(data.iter_rows()))
            for index in erd_indexes(md):
                index.create(conn)
    except sa.exc.OperationalError as exc:
        raise CrmError(f"cannot write the demo ERP to {redact_url(source_url)}: "
                       f"{str(exc.orig).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()


def _copy_postgres(conn, table, data: pl.DataFrame) -> None:  # noqa: ANN001 (SQLAlchemy)
    """COPY FROM STDIN as CSV written by Polars in chunks: no Python object per row."""
    raw = conn.connection.driver_connection
    cols = ", ".join(f'"{c}"' for c in data.columns)
    target = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    with raw.cursor() as cur, cur.copy(f"copy {target} ({cols}) from stdin (format csv)") as cp:
        for offset in range(0, data.height, 200_000):
            cp.write(data.slice(offset, 200_000).write_csv(include_header=False,
                                                           quote_style="non_numeric"))


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A `rich` progress display on stderr (stdout keeps the one summary line) when that is a
    terminal, else None (no bars in logs)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    from crm_core.progress_display import progress_display

    with progress_display(console) as bar:
        yield bar


@contextmanager
def _phase(bar: Progress | None, description: str) -> Iterator[None]:
    """A step without countable parts (a spinner and its elapsed time)."""
    task = bar.add_task(description, total=None) if bar is not None else None
    yield
    if bar is not None and task is not None:
        bar.update(task, total=1, completed=1)


def _track(bar: Progress | None, items: Iterable[T], description: str, total: int
           ) -> Iterable[T]:
    return items if bar is None else bar.track(items, total=total, description=description)


def generate(source_url: str, events_path: Path, *, scale: str = "small", days: int = 90,
             seed: int = 42, end_date: date | None = None, schema: str | None = None,
             progress: bool = True) -> GenerateReport:
    """Write the synthetic ERP to `source_url` and its event files under `events_path`."""
    if scale not in SCALES:
        raise CrmError(f"unknown scale {scale!r} (small, medium or large)")
    end = end_date or datetime.now(UTC).date()
    events_path = Path(events_path)
    sqlite_file = _sqlite_file(source_url)
    if sqlite_file is not None:
        sqlite_file = sqlite_file.resolve()  # a symlinked ERP file: replace what it points at
    # Written beside their targets and moved in at the end: an interrupted generate leaves the
    # previous data as it was (or none), never a half-written ERP `demo` would take as its own.
    # The events are staged inside the landing folder (a hidden folder the loader skips), so
    # moving them in is a rename on one file system, even when the landing folder is a mount.
    staged_events = events_path / ".generating"
    created_events_path = not events_path.exists()
    staged_sqlite = sqlite_file.with_name(sqlite_file.name + ".generating") if sqlite_file \
        else None
    try:
        create_event_folder(events_path)  # before the work: a folder it cannot make fails now
        with _progress(progress) as bar:
            with _phase(bar, f"building the ERP tables ({scale})"):
                tables = build_tables(scale, days, seed, end)
            with _phase(bar, f"building the events ({scale})"):
                events = build_events(tables, scale, seed, end)
            with _phase(bar, "building the campaigns' target audiences"):
                tables["crm_campaigns_target_audience"] = build_target_audience(
                    tables, events, scale, seed)
            if staged_sqlite is not None and sqlite_file is not None:
                _start_staged_sqlite(sqlite_file, staged_sqlite)
                write_tables(_with_database(source_url, staged_sqlite), None, tables, bar)
            else:
                write_tables(source_url, schema, tables, bar)
            shutil.rmtree(staged_events, ignore_errors=True)
            files, lines = write_event_files(events, staged_events, bar)
        _move_event_folders(staged_events, events_path)
        if staged_sqlite is not None and sqlite_file is not None:
            staged_sqlite.replace(sqlite_file)
    finally:
        shutil.rmtree(staged_events, ignore_errors=True)
        if created_events_path:
            with contextlib.suppress(OSError):
                events_path.rmdir()  # only if nothing landed in it
        if staged_sqlite is not None:
            staged_sqlite.unlink(missing_ok=True)
    return GenerateReport(rows={k: v.height for k, v in tables.items()}, event_files=files,
                          event_lines=lines)


def _start_staged_sqlite(sqlite_file: Path, staged: Path) -> None:
    """An empty staging file, or a copy of the ERP file when that holds tables of its own
    beside the ERP's (they must survive the swap); either way with the file's permissions."""
    import sqlite3

    from ingestion.erp.schema import SOURCE_TABLES

    staged.unlink(missing_ok=True)
    if not sqlite_file.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(sqlite_file.as_uri() + "?mode=ro",
                                                uri=True)) as conn:
            names = {name for (name,) in conn.execute(
                "select name from sqlite_master where type = 'table' "
                "and name not like 'sqlite_%'")}
    except sqlite3.DatabaseError as exc:
        raise CrmError(f"{sqlite_file} cannot be read as a SQLite database: {exc}") from None
    if names - set(SOURCE_TABLES):
        shutil.copy2(sqlite_file, staged)
    else:
        staged.touch()
        shutil.copymode(sqlite_file, staged)


def _with_database(source_url: str, path: Path) -> str:
    """`source_url` pointing at another SQLite file (its query options kept)."""
    import sqlalchemy as sa

    return sa.make_url(source_url).set(database=str(path)).render_as_string(hide_password=False)


def _sqlite_file(source_url: str) -> Path | None:
    """The file of a SQLite source URL (None for any other database)."""
    import sqlalchemy as sa

    try:
        url = sa.make_url(source_url)
    except sa.exc.ArgumentError:
        return None  # write_tables names the problem
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _move_event_folders(staged: Path, events_path: Path) -> None:
    """Replace every YYYY-MM-DD folder of the landing folder by the generated ones. The old
    ones are moved aside inside the same folder first, so every step is a rename (an instant,
    not a copy); a failure midway puts them back and leaves the new ones staged."""
    aside = events_path / ".replaced"
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for old in sorted(events_path.iterdir()):
            if old.is_dir() and strict_date(old.name) is not None:
                old.rename(aside / old.name)
                moved_aside.append(old.name)
        for folder in sorted(staged.iterdir()):
            folder.rename(events_path / folder.name)
            moved_in.append(folder.name)
    except OSError as exc:
        for name in moved_in:
            with contextlib.suppress(OSError):
                (events_path / name).rename(staged / name)
        for name in moved_aside:
            with contextlib.suppress(OSError):
                (aside / name).rename(events_path / name)
        with contextlib.suppress(OSError):
            aside.rmdir()  # only when everything went back
        raise CrmError(f"CRM_EVENTS_PATH {events_path}: cannot write the event folders: "
                       f"{exc.strerror or exc}") from None
    # The swap is done; what cannot be removed of the old days stays hidden, never loaded.
    shutil.rmtree(aside, ignore_errors=True)
