"""Generated ERP rows for the sales cockpit marts (docs/contract.md section 6 and the cockpit
marts): a seeded random population of contacts, deals, leads, campaigns and events in the
`raw` layout of `tests/helpers/dbt.py`, plus hand-placed rows for every edge the definitions name,
and the deal states three successive pipeline runs see (so the deal history records versions:
stage moves, wins, losses, close dates moved later and earlier).

`generate(seed)` returns a `CockpitWorld`: the rows of each run and the as-of dates. The values
the marts must hold are computed from these rows by `tests/helpers/cockpit_oracle.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tests.helpers.dbt import BRANCHES, BUSINESSES, STAGES

Row = dict[str, Any]

#: The final run's as-of date, the two earlier runs' dates, and a reporting zone that is not UTC.
AS_OF = date(2026, 3, 31)
RUN_DATES = (date(2026, 1, 15), date(2026, 2, 20), AS_OF)
TZ = "America/New_York"
OPEN_STAGES = (1, 2, 3)
WON_STAGE, LOST_STAGE = 4, 5
OWNERS = (7, 8, 9, None)
TENANTS = ((1, 10), (1, 11), (2, 20))
CAMPAIGN_TYPES = ("erp.campaign.impression", "erp.campaign.click", "erp.campaign.conversion",
                  "erp.campaign.sent")
#: contacts reserved for the hand-placed attribution edges (no random event touches them)
EDGE_CONTACTS = range(901, 906)


def local(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """A UTC instant for a wall-clock time in the reporting zone."""
    wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZoneInfo(TZ))
    return wall.astimezone(UTC)


@dataclass
class CockpitWorld:
    """The rows of each run (run date -> table -> rows); the last run's are the final state."""

    runs: list[tuple[date, dict[str, list[Row]]]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, list[Row]]:
        return self.runs[-1][1]


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _instant(rng: random.Random, start: date, end: date) -> datetime:
    seconds = int((datetime.combine(end, datetime.min.time())
                   - datetime.combine(start, datetime.min.time())).total_seconds())
    return datetime.combine(start, datetime.min.time(), UTC) + timedelta(
        seconds=rng.randrange(seconds))


def _contacts(rng: random.Random) -> list[Row]:
    rows = []
    for contact_id in [*range(1, 41), *EDGE_CONTACTS]:
        business, branch = rng.choice(TENANTS)
        rows.append({"id": contact_id, "contact_id": f"C-{contact_id:04d}",
                     "contact_type": "customers", "business_id": business,
                     "branch_id": branch, "account_type": "individual",
                     # soft-deleted contacts' deals and leads still count
                     "is_deleted": rng.random() < 0.15})
    # a business with one open deal and no history: its stages take the pooled rate
    rows.append({"id": 906, "contact_id": "C-0906", "contact_type": "customers",
                 "business_id": 3, "branch_id": 30, "account_type": "individual",
                 "is_deleted": False})
    return rows


def _deal(rng: random.Random, deal_id: int, lead_ids: list[int]) -> Row:
    created = _instant(rng, date(2025, 9, 1), date(2026, 4, 4))
    roll = rng.random()
    contact = None if roll < 0.05 else 999 if roll < 0.08 else rng.randint(1, 40)
    stage = rng.choice([*OPEN_STAGES, *OPEN_STAGES, None, 99])
    return {
        "id": deal_id, "title": f"Deal {deal_id}", "contact_id": contact,
        "lead_id": rng.choice(lead_ids) if rng.random() < 0.6 else None,
        "stage_id": stage,
        "amount": None if rng.random() < 0.04 else _money(rng, 0, 5000),
        "close_date": None if rng.random() < 0.1 else (
            date(2025, 11, 1) + timedelta(days=rng.randrange(240))),
        "owner_id": rng.choice(OWNERS),
        "created_at": created,
        "updated_at": None if rng.random() < 0.03 else created + timedelta(
            seconds=rng.randrange(max(1, int((datetime(2026, 4, 3, tzinfo=UTC) - created)
                                             .total_seconds())))),
    }


def _move(rng: random.Random, deal: Row, run_date: date) -> Row:
    """What the ERP changed about a deal before the next run: a stage move, a win or loss, a
    close date moved later or earlier (or set, or cleared)."""
    deal = dict(deal)
    stage = deal["stage_id"]
    if stage not in (WON_STAGE, LOST_STAGE):
        roll = rng.random()
        if roll < 0.2:
            deal["stage_id"] = WON_STAGE
        elif roll < 0.35:
            deal["stage_id"] = LOST_STAGE
        elif roll < 0.55:
            deal["stage_id"] = rng.choice(OPEN_STAGES)
    roll = rng.random()
    if roll < 0.3 and deal["close_date"] is not None:
        deal["close_date"] += timedelta(days=rng.randint(1, 45))
    elif roll < 0.4 and deal["close_date"] is not None:
        deal["close_date"] -= timedelta(days=rng.randint(1, 20))
    elif roll < 0.45:
        deal["close_date"] = None if deal["close_date"] else run_date
    if rng.random() < 0.1:
        deal["owner_id"] = rng.choice(OWNERS)
    return deal


def _edge_deals() -> list[Row]:
    """Deals placed on the section 6 edges (ids 9001+; contact 1's tenant; stage 1 unless
    said)."""
    def deal(deal_id: int, **values: Any) -> Row:
        return {"id": deal_id, "title": f"Edge {deal_id}", "contact_id": 1, "lead_id": None,
                "stage_id": 1, "amount": Decimal("100.00"), "close_date": AS_OF,
                "owner_id": 7, "created_at": local(date(2026, 1, 5)),
                "updated_at": local(AS_OF, 9)} | values

    return [
        # created 23:30 on A in New York (04:30 UTC the next day): in
        deal(9001, created_at=local(AS_OF, 23, 30), updated_at=local(AS_OF, 23, 30)),
        # created 00:30 on the day after A: left out of every mart
        deal(9002, created_at=local(AS_OF + timedelta(days=1), 0, 30)),
        # stale by exactly 30 days (not stale) and by 31 (stale), not overdue
        deal(9003, updated_at=local(AS_OF - timedelta(days=30), 23, 59)),
        deal(9004, updated_at=local(AS_OF - timedelta(days=31), 0, 1)),
        # overdue by one day; and a NULL owner
        deal(9005, close_date=AS_OF - timedelta(days=1), owner_id=None),
        # won: events after A are ignored, so the won date is the date of updated_at
        deal(9006, stage_id=WON_STAGE, updated_at=local(date(2026, 2, 27), 22)),
        # won: duplicate deliveries, the first landed copy (a later time) wins
        deal(9007, stage_id=WON_STAGE, updated_at=local(date(2026, 3, 30))),
        # won: the earliest of two events, on 28 February in New York (03:00 UTC on 1 March)
        deal(9008, stage_id=WON_STAGE, updated_at=local(date(2026, 3, 30))),
        # lost after A: counts in April (dates are not clamped)
        deal(9009, stage_id=LOST_STAGE, updated_at=local(date(2026, 4, 2))),
        # an open deal with no stage and an overdue one with no close date
        deal(9010, stage_id=None, close_date=None, updated_at=local(date(2026, 1, 1))),
        # the soft-deleted edge contact's deal, attributed through lead 9003
        deal(9011, contact_id=903, lead_id=9003, stage_id=WON_STAGE,
             amount=Decimal("250.00"), updated_at=local(date(2026, 3, 2))),
        # the only deal of business 3, open in stage 2, closing in May
        deal(9012, contact_id=906, stage_id=2, close_date=date(2026, 5, 20)),
    ]


def _edge_leads_and_events() -> tuple[list[Row], list[Row]]:
    """Attribution edges: a touch exactly 30 × 24 hours before the lead (counts), one second
    earlier (does not), a tie in time (the smaller campaign_id), a touch after the lead, a
    touch after A, and a duplicate delivery whose first-landed copy names another contact."""
    lead_time = local(date(2026, 3, 10), 15)
    leads = [
        {"id": 9001, "contact_id": 901, "source": "web", "status": "new", "value": None,
         "created_at": lead_time},
        {"id": 9002, "contact_id": 902, "source": "web", "status": "new", "value": None,
         "created_at": lead_time},
        {"id": 9003, "contact_id": 903, "source": "web", "status": "won", "value": None,
         "created_at": lead_time},
        {"id": 9004, "contact_id": 904, "source": "web", "status": "new", "value": None,
         "created_at": local(date(2026, 4, 5))},
        {"id": 9005, "contact_id": 905, "source": "web", "status": "new", "value": None,
         "created_at": lead_time},
    ]
    window = timedelta(hours=720)
    click = "erp.campaign.click"
    events = [
        # lead 9001: exactly 720 h before (campaign 3) beats 720 h + 1 s (campaign 1)
        ("x1", click, lead_time - window, 3, 901, date(2026, 3, 1)),
        ("x2", click, lead_time - window - timedelta(seconds=1), 1, 901, date(2026, 3, 1)),
        # lead 9002: a tie at the same instant: campaign 2 beats 4; a touch after the lead
        ("x3", click, lead_time - timedelta(days=2), 4, 902, date(2026, 3, 9)),
        ("x4", " ERP.Campaign.Sent ", lead_time - timedelta(days=2), 2, 902, date(2026, 3, 9)),
        ("x5", click, lead_time + timedelta(seconds=1), 5, 902, date(2026, 3, 11)),
        # lead 9003 (soft-deleted contact, won deal 9011): the latest touch, campaign 6
        ("x6", click, lead_time - timedelta(days=20), 1, 903, date(2026, 2, 20)),
        ("x7", "erp.campaign.impression", lead_time - timedelta(hours=1), 6, 903,
         date(2026, 3, 11)),
        # a lead event is no touch
        ("x8", "erp.lead.qualified", lead_time - timedelta(minutes=5), 5, 903,
         date(2026, 3, 11)),
        # lead 9004 is after A: its only touch is dated after A, so it has no campaign
        ("x9", click, local(date(2026, 4, 1), 10), 2, 904, date(2026, 4, 1)),
        # lead 9005: the first-landed copy of x10 names contact 905 at campaign 5; a later
        # copy (another contact, campaign 1) loses
        ("x10", click, lead_time - timedelta(days=3), 5, 905, date(2026, 3, 8)),
    ]
    rows = [_event(*e) for e in events]
    rows.append(_event("x10", click, lead_time - timedelta(days=1), 1, 905, date(2026, 3, 9),
                       file_name="z.jsonl"))
    rows.append(_event("x10", click, lead_time - timedelta(days=1), 1, 901, date(2026, 3, 12)))
    return leads, rows


def _event(event_id: str, event_type: str, when: datetime, campaign_id: int | None,
           contact_id: int | None, landing: date, *, deal_id: int | None = None,
           file_name: str = "a.jsonl", line: int = 1, source: str = "erp") -> Row:
    return {"event_source": source, "event_id": event_id, "event_type": event_type,
            "event_time": when, "campaign_id": campaign_id, "contact_id": contact_id,
            "lead_id": None, "deal_id": deal_id, "revenue": None, "business_id": None,
            "branch_id": None, "landing_date": landing, "file_path": f"{landing}/{file_name}",
            "line_number": line, "load_id": f"load-{landing}"}


def _won_events(rng: random.Random, deals: list[Row]) -> list[Row]:
    """Won events for some won deals (some after A, some delivered twice), and the edges."""
    rows = []
    for deal in deals:
        if deal["stage_id"] != WON_STAGE or deal["id"] >= 9000 or rng.random() < 0.5:
            continue
        when = _instant(rng, date(2025, 12, 1), date(2026, 4, 3))
        landing = when.date() + timedelta(days=rng.randint(0, 2))
        rows.append(_event(f"w{deal['id']}", "erp.opportunity.won", when, None, None, landing,
                           deal_id=deal["id"]))
        if rng.random() < 0.3:
            # a later delivery of the same event with an earlier time: it loses
            rows.append(_event(f"w{deal['id']}", "erp.opportunity.won",
                               when - timedelta(days=5), None, None,
                               landing + timedelta(days=1), deal_id=deal["id"]))
    won = "erp.opportunity.won"
    rows += [
        _event("w9006", won, local(date(2026, 4, 1), 1), None, None, date(2026, 4, 1),
               deal_id=9006),
        _event("w9007", won, local(date(2026, 3, 20)), None, None, date(2026, 3, 20),
               deal_id=9007),
        _event("w9007", won, local(date(2026, 3, 5)), None, None, date(2026, 3, 21),
               deal_id=9007),
        _event("w9008a", won, datetime(2026, 3, 1, 3, 0, tzinfo=UTC), None, None,
               date(2026, 3, 1), deal_id=9008),
        _event("w9008b", won, local(date(2026, 3, 15)), None, None, date(2026, 3, 15),
               deal_id=9008),
    ]
    return rows


def _campaigns() -> tuple[list[Row], list[Row]]:
    """Campaigns 1..7 (one without budget, one without flight, one with budget 0), and a few
    days of ERP performance."""
    def campaign(cid: int, branch: int | None, budget: str | None, start: date | None,
                 end: date | None, ctype: str = "email") -> Row:
        return {"id": cid, "name": f"Campaign {cid}", "campaign_type": ctype,
                "status": "active", "seller_id": 1, "branch_id": branch,
                "start_date": local(start, 9) if start else None,
                "end_date": local(end, 18) if end else None,
                "budget": None if budget is None else Decimal(budget)}

    campaigns = [
        campaign(1, 10, "3000.00", date(2026, 1, 1), date(2026, 3, 31)),
        campaign(2, 11, "1000.00", date(2026, 2, 1), date(2026, 4, 30), " SMS "),
        campaign(3, 20, None, date(2026, 2, 1), date(2026, 2, 28)),
        campaign(4, 20, "500.00", None, None, "banner"),
        campaign(5, None, "0.00", date(2026, 3, 1), date(2026, 3, 10)),
        campaign(6, 10, "700.00", date(2026, 3, 1), date(2026, 3, 31)),
        # never touched: nothing attributed, yet spending (won_roi -1, cost_per_lead NULL)
        campaign(7, 10, "100.00", date(2026, 3, 22), date(2026, 4, 10)),
    ]
    performance = [
        {"id": 1, "campaign_id": 4, "date": date(2026, 3, 15), "impressions": 100,
         "clicks": 3, "conversions": 0, "revenue": Decimal("0.00")},
        {"id": 2, "campaign_id": 1, "date": date(2026, 2, 2), "impressions": 50,
         "clicks": 5, "conversions": 1, "revenue": Decimal("20.00")},
    ]
    return campaigns, performance


def generate(seed: int = 14) -> CockpitWorld:
    """Three runs' worth of ERP rows: the same contacts, leads, campaigns and events, and the
    deals as each run saw them (the last run's are the final state)."""
    rng = random.Random(seed)
    contacts = _contacts(rng)
    contacts[-3]["is_deleted"] = True  # contact 903, whose lead and deal still count
    leads = [{"id": i, "contact_id": None if rng.random() < 0.05 else rng.randint(1, 40),
              "source": "web", "status": "new", "value": None,
              "created_at": _instant(rng, date(2025, 12, 1), date(2026, 4, 5))}
             for i in range(1, 121)]
    edge_leads, edge_events = _edge_leads_and_events()
    leads += edge_leads
    campaigns, performance = _campaigns()

    touches = []
    for number in range(1, 401):
        when = _instant(rng, date(2025, 11, 15), date(2026, 4, 3))
        landing = when.date() + timedelta(days=rng.randint(0, 2))
        contact = None if rng.random() < 0.1 else rng.randint(1, 40)
        campaign = 42 if rng.random() < 0.03 else rng.randint(1, 6)
        touches.append(_event(f"t{number}", rng.choice(CAMPAIGN_TYPES), when, campaign,
                              contact, landing, line=number))
        if rng.random() < 0.05:
            # a duplicate delivery, landed later, naming another contact: it loses
            touches.append(_event(f"t{number}", rng.choice(CAMPAIGN_TYPES), when, campaign,
                                  rng.randint(1, 40), landing + timedelta(days=1),
                                  line=number))

    lead_ids = [lead["id"] for lead in leads if lead["id"] < 9000]
    deals = [_deal(rng, i, lead_ids) for i in range(1, 181)]
    states = [deals]
    for run_date in RUN_DATES[1:]:
        states.append([_move(rng, d, run_date) for d in states[-1]])
    # the edge deals exist from the second run on, in their final state
    states[1] += _edge_deals()
    states[2] += _edge_deals()
    events = touches + edge_events + _won_events(rng, states[-1])

    # an open stage no deal has been in: its probability comes from the closed deals now
    stages = [*STAGES, {"id": 6, "name": "Parked", "order": 6, "is_won": False,
                        "is_lost": False}]
    world = CockpitWorld()
    for run_date, run_deals in zip(RUN_DATES, states, strict=True):
        world.runs.append((run_date, {
            "businesses": BUSINESSES, "branches": BRANCHES, "contacts": contacts,
            "crm_pipeline_stages": stages, "crm_deals": run_deals, "crm_leads": leads,
            "crm_campaigns": campaigns, "crm_campaign_performance": performance,
            "campaign_events": events, "customer_groups": [], "contact_accounts": [],
            "event_files": [],
        }))
    return world
