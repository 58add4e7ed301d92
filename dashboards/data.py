"""Every query the dashboards (and the demo's headline) run against the marts.

Pages call these functions and only lay out what they return. Rules kept here, once:

- **Bound parameters only.** User input (filters, ids) travels as parameters; the only thing
  generated is the number of `?` placeholders in an `in (...)` list.
- **Tenant scope in the SQL.** Every mart query gets `_where(...)`, which ANDs the viewer's
  `Scope` with the filters, so a filter can only narrow what the scope allows.
- **Rates from summed parts.** A rate over several rows is `sum(part) / sum(whole)`, never an
  average of the marts' per-row rates; NULL when the denominator is 0.
- **Cached by data version.** Results are cached keyed by the SQL and its parameters (which
  encode the filters and the scope) and by the warehouse's data version (the serving copy's
  versioned file name for DuckDB, the last successful run for PostgreSQL), so a finished
  pipeline run shows up on the next page run without a restart.
- **DuckDB is read from the serving copy** (`crm_core.serving_copy`), never from the file
  the pipeline writes, so pages answer while a run is in progress.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import psycopg
import streamlit as st

from crm_core.errors import CrmError, first_line
from crm_core.serving_copy import ROLLUPS, TOP_CONTACTS_PER_TENANT, serving_path
from crm_core.settings import Settings
from crm_core.sql import pg_placeholders
from dashboards.access import Scope

# --------------------------------------------------------------------------------------------
# Reading the warehouse


def _serving_file(settings: Settings) -> Path:
    """The current versioned serving copy (the link resolved once per call)."""
    target = settings.warehouse
    assert target.duckdb_path is not None
    link = serving_path(target.duckdb_path)
    if not link.exists():
        raise CrmError(f"no published data in {target.describe()} yet: run "
                       "`crm-analytics run` (or `make demo`) first")
    return link.resolve()


_duckdb_lock = threading.Lock()
_duckdb_connections: dict[str, duckdb.DuckDBPyConnection] = {}


def _duckdb_cursor(path: Path) -> duckdb.DuckDBPyConnection:
    """A cursor on a read-only connection to this version of the serving copy.

    Opening a DuckDB file costs milliseconds, so one connection per version file is kept and
    each query gets its own cursor (cursors may be used from different threads). A newly
    published version has a new file name, hence a new connection; connections to older
    versions are dropped (the pipeline deletes those files; open handles keep reading)."""
    key = str(path)
    with _duckdb_lock:
        con = _duckdb_connections.get(key)
        if con is None:
            con = duckdb.connect(key, read_only=True)
            for old in [k for k in _duckdb_connections if k != key]:
                del _duckdb_connections[old]
            _duckdb_connections[key] = con
        return con.cursor()


def query(settings: Settings, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
    """Run one read-only query (`?` placeholders) on the warehouse; a DataFrame back."""
    target = settings.warehouse
    if target.is_duckdb:
        path = _serving_file(settings)
        try:
            cur = _duckdb_cursor(path)
            try:
                return cur.execute(sql, list(params)).pl()
            finally:
                cur.close()
        except duckdb.Error as exc:
            raise CrmError(f"the marts are not readable ({first_line(exc)}): run "
                           "`crm-analytics run` first") from None
    try:
        with psycopg.connect(target.conninfo(), connect_timeout=10) as conn:
            conn.read_only = True
            cur = conn.execute(pg_placeholders(sql), list(params))
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchall()
    except psycopg.Error as exc:
        raise CrmError(f"warehouse {target.describe()} cannot be read: {first_line(exc)}") \
            from None
    return pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)


def data_version(settings: Settings) -> str:
    """Changes whenever a pipeline run publishes new marts: the cache key's last part."""
    if settings.warehouse.is_duckdb:
        return _serving_file(settings).name
    df = query(settings, "select cast(max(finished_at) as varchar) as v, count(*) as n "
                         "from meta.pipeline_runs")
    return f"{df['v'][0]}:{df['n'][0]}"


@st.cache_data(max_entries=4096, show_spinner=False)
def _cached_query(_settings: Settings, warehouse_url: str, version: str, sql: str,
                  params: tuple[Any, ...]) -> pl.DataFrame:
    """`query()` memoised by (warehouse, data version, SQL, parameters)."""
    return query(_settings, sql, params)


@dataclass(frozen=True)
class Source:
    """The warehouse as one page run sees it: settings plus the data version read once at the
    top of the run, so every query of the run is cached against the same version."""

    settings: Settings
    version: str
    #: False for one-off readers (the demo's headline) that need no Streamlit cache.
    cached: bool = True

    @classmethod
    def open(cls, settings: Settings) -> Source:
        return cls(settings, data_version(settings))

    def run(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        if not self.cached:
            return query(self.settings, sql, params)
        return _cached_query(self.settings, self.settings.warehouse_url, self.version, sql,
                             tuple(params))


# --------------------------------------------------------------------------------------------
# Filters and scope -> a WHERE clause with bound parameters


@dataclass(frozen=True)
class Filters:
    """What the viewer narrowed the page to. Empty tuples mean "all I may see"."""

    business_ids: tuple[int, ...] = ()
    branch_ids: tuple[int, ...] = ()
    start: date | None = None
    end: date | None = None
    campaign_types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    #: Deal owners (Pipeline page); only marts with an owner_id column are narrowed by it.
    owner_ids: tuple[int, ...] = ()

    def previous_period(self) -> Filters:
        """The period of equal length just before this one (same other filters); an empty
        period when the range is open-ended, so nothing is compared."""
        if self.start is None or self.end is None:
            return replace(self, start=date.max, end=date.min)
        days = (self.end - self.start).days + 1
        return replace(self, start=self.start - timedelta(days=days),
                       end=self.start - timedelta(days=1))


#: The campaign mart's `date` column (a reserved word on PostgreSQL, so always quoted).
DATE = '"date"'


def previous_months(filters: Filters) -> Filters:
    """For the monthly lead cohorts: the same number of whole months just before the months
    the range overlaps (cohorts cannot be split into days)."""
    if filters.start is None or filters.end is None:
        return replace(filters, start=date.max, end=date.min)
    first = filters.start.replace(day=1)
    months = (filters.end.year - first.year) * 12 + filters.end.month - first.month + 1
    index = first.year * 12 + first.month - 1 - months
    prev_first = date(index // 12, index % 12 + 1, 1)
    return replace(filters, start=prev_first, end=first - timedelta(days=1))


def _in(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    if not values:
        return "false", []
    return f"{column} in ({', '.join('?' for _ in values)})", list(values)


def _where(scope: Scope, filters: Filters, *, date_column: str | None = None,
           month_column: str | None = None, campaign_type: bool = False,
           source: bool = False, owner: bool = False) -> tuple[str, list[Any]]:
    """`where <scope> and <filters>` and its parameters, for a mart with business_id and
    branch_id columns. The scope comes first and is always present."""
    parts: list[str] = []
    params: list[Any] = []

    def add(sql: str, values: Sequence[Any] = ()) -> None:
        parts.append(sql)
        params.extend(values)

    if not scope.everything:
        by_business, p1 = _in("business_id", sorted(scope.business_ids))
        by_branch, p2 = _in("branch_id", sorted(scope.branch_ids))
        add(f"({by_business} or {by_branch})", p1 + p2)
    if filters.business_ids:
        add(*_in("business_id", filters.business_ids))
    if filters.branch_ids:
        add(*_in("branch_id", filters.branch_ids))
    if date_column and filters.start:
        add(f"{date_column} >= ?", [filters.start])
    if date_column and filters.end:
        add(f"{date_column} <= ?", [filters.end])
    if month_column and filters.start:
        add(f"{month_column} >= ?", [filters.start.replace(day=1)])
    if month_column and filters.end:
        add(f"{month_column} <= ?", [filters.end])
    if campaign_type and filters.campaign_types:
        add(*_in("coalesce(campaign_type, 'unknown')", filters.campaign_types))
    if source and filters.sources:
        add(*_in("source", filters.sources))
    if owner and filters.owner_ids:
        add(*_in("owner_id", filters.owner_ids))
    return ("where " + " and ".join(parts)) if parts else "", params


def _rate(numerator: str, denominator: str) -> str:
    """SQL for a rate from summed parts; NULL when the denominator is 0 or NULL."""
    return (f"cast({numerator} as double precision) / "
            f"nullif(cast({denominator} as double precision), 0)")


# --------------------------------------------------------------------------------------------
# As-of line and filter options


def data_as_of(src: Source) -> dict[str, Any] | None:
    """The as-of date and finish time (UTC) of the last successful pipeline run, if any."""
    df = src.run("select as_of_date, finished_at from meta.pipeline_runs "
                 "order by finished_at desc limit 1")
    return df.row(0, named=True) if df.height else None


def _rollup(src: Source, name: str) -> str:
    """A roll-up of the contact summary (crm_core.serving_copy.ROLLUPS) to select from:
    its table in the DuckDB serving copy, its SQL inline over PostgreSQL."""
    if src.settings.warehouse.is_duckdb:
        return f"rollups.{name}"
    return f"({ROLLUPS[name]}) as {name}"


def tenants(src: Source, scope: Scope) -> pl.DataFrame:
    """The (business_id, branch_id) pairs the viewer may see, for the filter lists. Contacts'
    pairs come from their roll-up, so no page reads one row per contact for its sidebar."""
    where, params = _where(scope, Filters())
    return src.run(f"""
        select distinct business_id, branch_id from (
            select business_id, branch_id from marts.v_crm_pipeline_summary
            union all select business_id, branch_id from marts.v_crm_lead_conversion
            union all select business_id, branch_id from marts.v_crm_campaign_performance
            union all select business_id, branch_id from {_rollup(src, "contact_rollup")}
        ) as pairs {where}
        order by business_id nulls last, branch_id nulls last""", params)


def campaign_types(src: Source, scope: Scope) -> list[str]:
    where, params = _where(scope, Filters())
    df = src.run("select distinct coalesce(campaign_type, 'unknown') as t "
                 f"from marts.v_crm_campaign_performance {where} order by 1", params)
    return df["t"].to_list()


def lead_sources(src: Source, scope: Scope) -> list[str]:
    where, params = _where(scope, Filters())
    df = src.run(f"select distinct source from marts.v_crm_lead_conversion {where} order by 1",
                 params)
    return df["source"].to_list()


def activity_dates(src: Source, scope: Scope) -> tuple[date | None, date | None]:
    """First and last date with campaign rows or lead cohorts: the date picker's bounds."""
    where, params = _where(scope, Filters())
    df = src.run(f"""
        select min(d) as first, max(d) as last from (
            select min({DATE}) as d from marts.v_crm_campaign_performance {where}
            union all select max({DATE}) from marts.v_crm_campaign_performance {where}
            union all select min(cohort_month) from marts.v_crm_lead_conversion {where}
        ) as bounds""", params * 3)
    return df["first"][0], df["last"][0]


# --------------------------------------------------------------------------------------------
# Pipeline (v_crm_pipeline_summary: a snapshot, no dates)

PAIR_TOTALS = """
    select business_id, branch_id,
           max(total_deals) as total_deals, max(open_deals) as open_deals,
           max(open_amount) as open_amount, max(won_deals) as won_deals,
           max(won_amount) as won_amount, max(lost_deals) as lost_deals,
           max(lost_amount) as lost_amount
    from marts.v_crm_pipeline_summary {where}
    group by business_id, branch_id
"""


def pipeline_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Open pipeline, won/lost deals and amounts, win rates by count and value. The per-pair
    totals repeat on every stage row of the mart, so they are taken once per pair, then
    summed."""
    where, params = _where(scope, filters)
    row = src.run(f"""
        select coalesce(sum(total_deals), 0) as total_deals,
               coalesce(sum(open_deals), 0) as open_deals,
               coalesce(sum(open_amount), 0) as open_amount,
               coalesce(sum(won_deals), 0) as won_deals,
               coalesce(sum(won_amount), 0) as won_amount,
               coalesce(sum(lost_deals), 0) as lost_deals,
               coalesce(sum(lost_amount), 0) as lost_amount,
               {_rate('sum(won_deals)', 'sum(won_deals) + sum(lost_deals)')} as win_rate,
               {_rate('sum(won_amount)', 'sum(won_amount) + sum(lost_amount)')}
                   as value_win_rate
        from ({PAIR_TOTALS.format(where=where)}) as pairs""", params).row(0, named=True)
    return row


def pipeline_stages(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per stage: deals and value now in it, and the stage-reach count and rate (reach summed
    over tenants, divided by their summed total deals)."""
    where, params = _where(scope, filters)
    return src.run(f"""
        with stages as (
            select stage_id, coalesce(stage_name, '(no stage)') as stage,
                   min(stage_order) as stage_order, bool_or(is_won) as is_won,
                   bool_or(is_lost) as is_lost, sum(deal_count) as deals,
                   sum(pipeline_value) as value, sum(stage_reach_count) as reached
            from marts.v_crm_pipeline_summary {where}
            group by stage_id, coalesce(stage_name, '(no stage)')
        ),
        totals as (
            select sum(total_deals) as total_deals
            from ({PAIR_TOTALS.format(where=where)}) as pairs
        )
        select stage, stage_order, is_won, is_lost, deals, value, reached,
               {_rate('reached', 'totals.total_deals')} as reach_rate
        from stages cross join totals
        order by stage_id is null, stage_order, stage""", params * 2)


def pipeline_by_tenant(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per business and branch: open pipeline, won and lost, win rates by count and value."""
    where, params = _where(scope, filters)
    return src.run(f"""
        select business_id, branch_id, total_deals, open_deals, open_amount, won_deals,
               won_amount, lost_deals, lost_amount,
               {_rate('won_deals', 'won_deals + lost_deals')} as win_rate,
               {_rate('won_amount', 'won_amount + lost_amount')} as value_win_rate
        from ({PAIR_TOTALS.format(where=where)}) as pairs
        order by open_amount desc, business_id, branch_id""", params)


# --------------------------------------------------------------------------------------------
# Open pipeline by owner and expected close month (open_pipeline_by_owner_month: open deals
# only, by business, branch, owner, close month and stage)


def deal_owners(src: Source, scope: Scope) -> list[int]:
    """Owners with open deals the viewer may see: the owner filter's options."""
    where, params = _where(scope, Filters())
    df = src.run("select distinct owner_id from marts.open_pipeline_by_owner_month "
                 f"{where} {'and' if where else 'where'} owner_id is not null order by 1",
                 params)
    return df["owner_id"].to_list()


def open_pipeline_by_owner(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per owner (NULL: unassigned): open deals and open amount, largest first."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        select owner_id, sum(open_deals) as open_deals, sum(open_amount) as open_amount
        from marts.open_pipeline_by_owner_month {where}
        group by owner_id order by open_amount desc, owner_id nulls last""", params)


def open_pipeline_by_close_month(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per expected close month (NULL: no close date, last): open deals and amount."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        select close_month, sum(open_deals) as open_deals, sum(open_amount) as open_amount
        from marts.open_pipeline_by_owner_month {where}
        group by close_month order by close_month nulls last""", params)


# --------------------------------------------------------------------------------------------
# Leads (v_crm_lead_conversion: by cohort month)

LEAD_SUMS = """
    sum(leads) as leads, sum(reached_contacted) as reached_contacted,
    sum(reached_qualified) as reached_qualified, sum(won_leads) as won_leads,
    sum(lost_leads) as lost_leads, sum(lead_value) as lead_value, sum(won_value) as won_value,
    """ + _rate("sum(reached_contacted)", "sum(leads)") + """ as contact_rate,
    """ + _rate("sum(reached_qualified)", "sum(leads)") + """ as qualification_rate,
    """ + _rate("sum(won_leads)", "sum(leads)") + " as lead_win_rate"


def _lead_where(scope: Scope, filters: Filters) -> tuple[str, list[Any]]:
    return _where(scope, filters, month_column="cohort_month", source=True)


def lead_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Leads of the cohort months overlapping the date range, and their rates."""
    where, params = _lead_where(scope, filters)
    return src.run(f"select {LEAD_SUMS} from marts.v_crm_lead_conversion {where}",
                   params).row(0, named=True)


def leads_by_source_month(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(f"""
        select cohort_month, source, {LEAD_SUMS}
        from marts.v_crm_lead_conversion {where}
        group by cohort_month, source order by cohort_month, source""", params)


def leads_by_source(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(f"""
        select source, {LEAD_SUMS}
        from marts.v_crm_lead_conversion {where}
        group by source order by sum(leads) desc, source""", params)


def lead_cohorts(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(f"""
        select cohort_month, {LEAD_SUMS}
        from marts.v_crm_lead_conversion {where}
        group by cohort_month order by cohort_month""", params)


# --------------------------------------------------------------------------------------------
# Campaigns (v_crm_campaign_performance: by campaign and date)

CAMPAIGN_SUMS = """
    sum(impressions) as impressions, sum(clicks) as clicks, sum(conversions) as conversions,
    sum(sends) as sends, sum(revenue) as revenue, sum(spend) as spend,
    """ + _rate("sum(clicks)", "sum(impressions)") + """ as ctr,
    """ + _rate("sum(conversions)", "sum(clicks)") + """ as cvr,
    """ + _rate("sum(revenue) - sum(spend)", "sum(spend)") + " as roi"


def _campaign_where(scope: Scope, filters: Filters,
                    campaign_id: int | None = None) -> tuple[str, list[Any]]:
    where, params = _where(scope, filters, date_column=DATE, campaign_type=True)
    if campaign_id is not None:
        where = (where + " and" if where else "where") + " campaign_id = ?"
        params = [*params, campaign_id]
    return where, params


def campaign_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _campaign_where(scope, filters)
    return src.run(f"select {CAMPAIGN_SUMS} from marts.v_crm_campaign_performance {where}",
                   params).row(0, named=True)


def campaign_daily(src: Source, scope: Scope, filters: Filters,
                   campaign_id: int | None = None) -> pl.DataFrame:
    """Per date: impressions, clicks, conversions, revenue, spend and the rates."""
    where, params = _campaign_where(scope, filters, campaign_id)
    return src.run(f"""
        select {DATE} as date, {CAMPAIGN_SUMS}
        from marts.v_crm_campaign_performance {where}
        group by {DATE} order by {DATE}""", params)


def campaigns_table(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per campaign over the range: totals, CTR, CVR, ROI (from summed parts); and its target
    audience with the share of it that converted (lifetime, from campaign_lifetime)."""
    where, params = _campaign_where(scope, filters)
    return src.run(f"""
        select in_range.*, lifetime.audience_size, lifetime.audience_conversion_rate
        from (
            select campaign_id, min(campaign_name) as campaign_name,
                   min(coalesce(campaign_type, 'unknown')) as campaign_type,
                   min(status) as status, min(business_id) as business_id,
                   min(branch_id) as branch_id, {CAMPAIGN_SUMS}
            from marts.v_crm_campaign_performance {where}
            group by campaign_id
        ) as in_range
        left join marts.campaign_lifetime as lifetime
            on lifetime.campaign_id = in_range.campaign_id
        order by in_range.revenue desc nulls last, in_range.campaign_id""", params)


def campaign_types_table(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _campaign_where(scope, filters)
    return src.run(f"""
        select coalesce(campaign_type, 'unknown') as campaign_type,
               count(distinct campaign_id) as campaigns, {CAMPAIGN_SUMS}
        from marts.v_crm_campaign_performance {where}
        group by coalesce(campaign_type, 'unknown') order by 1""", params)


# --------------------------------------------------------------------------------------------
# Customers (v_crm_contact_summary: one row per live contact, a snapshot). Read through its
# small roll-ups (crm_core.serving_copy.ROLLUPS): tables in the DuckDB serving copy, the
# same SQL inline over PostgreSQL. Sums of the roll-up's sums are the sums over contacts.


def top_contacts(src: Source, scope: Scope, filters: Filters, limit: int = 20) -> pl.DataFrame:
    if limit > TOP_CONTACTS_PER_TENANT:
        raise ValueError(f"at most {TOP_CONTACTS_PER_TENANT} top contacts are kept per tenant")
    where, params = _where(scope, filters)
    return src.run(f"""
        select contact_pk, contact_code, business_id, branch_id, contact_type,
               customer_group_name, won_revenue, won_deal_count, open_pipeline_value,
               total_sale_due, account_balance
        from {_rollup(src, "top_contacts")} {where}
        order by won_revenue desc, contact_pk limit ?""", [*params, limit])


def balances_by_contact_type(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(contact_type, 'unknown') as contact_type, sum(contacts) as contacts,
               sum(account_balance) as account_balance, sum(advance_balance) as advance_balance,
               sum(total_sale_due) as total_sale_due,
               sum(total_sale_return_due) as total_sale_return_due,
               sum(credit_limit) as credit_limit
        from {_rollup(src, "contact_rollup")} {where}
        group by coalesce(contact_type, 'unknown') order by 1""", params)


def customer_groups(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(customer_group_name, '(no group)') as customer_group,
               sum(contacts) as contacts, sum(won_revenue) as won_revenue,
               sum(open_pipeline_value) as open_pipeline_value,
               sum(total_sale_due) as total_sale_due, sum(won_deal_count) as won_deals
        from {_rollup(src, "contact_rollup")} {where}
        group by coalesce(customer_group_name, '(no group)')
        order by sum(won_revenue) desc nulls last, 1""", params)


def contact_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(sum(contacts), 0) as contacts,
               coalesce(sum(won_revenue), 0) as won_revenue,
               coalesce(sum(total_sale_due), 0) as total_sale_due,
               coalesce(sum(account_balance), 0) as account_balance
        from {_rollup(src, "contact_rollup")} {where}""", params).row(0, named=True)


# --------------------------------------------------------------------------------------------
# The demo's headline (whole warehouse, uncached: printed once by `crm-analytics demo`)


def headline_kpis(settings: Settings) -> dict[str, Any]:
    """Open pipeline, won revenue, win rate, lead qualification rate, campaign revenue, spend
    and ROI over the whole warehouse. Rates are recomputed from summed parts, never averaged."""
    from dashboards.access import EVERYTHING

    src = Source(settings, version="", cached=False)
    pipe = pipeline_totals(src, EVERYTHING, Filters())
    leads = lead_totals(src, EVERYTHING, Filters())
    camp = campaign_totals(src, EVERYTHING, Filters())
    return {
        "open_pipeline": pipe["open_amount"],
        "won_revenue": pipe["won_amount"],
        "win_rate": pipe["win_rate"],
        "qualification_rate": leads["qualification_rate"],
        "campaign_revenue": camp["revenue"] or Decimal(0),
        "spend": camp["spend"] or Decimal(0),
        "roi": camp["roi"],
    }


def headline_numbers(settings: Settings) -> list[tuple[str, str]]:
    """The headline KPIs as printable (label, value) pairs for `crm-analytics demo`."""
    k = headline_kpis(settings)
    return [
        ("Open pipeline", f"{k['open_pipeline']:,.2f}"),
        ("Won revenue", f"{k['won_revenue']:,.2f}"),
        ("Win rate (count)", pct(k["win_rate"])),
        ("Lead qualification rate", pct(k["qualification_rate"])),
        ("Campaign revenue", f"{k['campaign_revenue']:,.2f}"),
        ("Campaign spend", f"{k['spend']:,.2f}"),
        ("Campaign ROI", pct(k["roi"])),
    ]


def pct(value: float | None) -> str:
    """A rate as a percentage with one decimal; "n/a" when it is undefined."""
    return "n/a" if value is None else f"{value:.1%}"
