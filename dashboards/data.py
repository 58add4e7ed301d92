"""Every query the dashboards (and the demo's headline) run against the marts.

Pages call these functions and only lay out what they return. Rules kept here, once:

- **Bound parameters only.** User input (filters, ids) travels as parameters; the only thing
  generated is the number of `?` placeholders in an `in (...)` list.
- **Tenant scope in the SQL.** Every mart query gets `_where(...)`, which ANDs the viewer's
  `Scope` with the filters, so a filter can only narrow what the scope allows.
- **Metrics live in dbt.** Pages read marts only (`marts.*`): every aggregate that does not
  depend on the viewer's filters is a dbt model. What is left here is summing mart rows over
  the rows a viewer selects.
- **Rates from summed parts, in one place.** A rate over several rows is
  `sum(part) / sum(whole)`, never an average of the marts' per-row rates; NULL when the
  denominator is 0. `RATES` names each rate's parts and `_with_rates` adds them to a query of
  sums: the only place rate SQL is composed, with the formula of dbt's `safe_ratio` macro.
- **Cached by data version, once per process.** Results are cached keyed by the SQL and its
  parameters (which encode the filters and the scope) and by the warehouse's data version (the
  serving copy's versioned file name for DuckDB, the last successful run for PostgreSQL), so a
  finished pipeline run shows up on the next page run without a restart. One cache serves
  every session of the process, without copying or pickling (a hit is a dictionary lookup and
  a shallow `clone()`), and what pages build from results — names, Plotly figures — is kept
  in the same cache through `Source.memo`, keyed by the data version plus what it depends on
  (always the scope), so a hundred sessions on the same view build it once.
- **DuckDB is read from the serving copy** (`crm_core.serving_copy`), never from the file
  the pipeline writes, so pages answer while a run is in progress. So is Spark: its serving
  copy is a DuckDB file built from Spark's marts after each successful build.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import psycopg

from crm_core.errors import CrmError, first_line
from crm_core.serving_copy import serving_path
from crm_core.settings import Settings
from crm_core.sql import pg_placeholders, quote_ident
from dashboards.access import Scope
from dashboards.formats import pct
from dashboards.mart_columns import MartColumn, dashboard_columns
from dashboards.names import Names

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
    if target.has_serving_copy:
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
    if settings.warehouse.has_serving_copy:
        return _serving_file(settings).name
    df = query(settings, "select cast(max(finished_at) as varchar) as v, count(*) as n "
                         "from meta.pipeline_runs")
    return f"{df['v'][0]}:{df['n'][0]}"


T = TypeVar("T")


class SharedCache:
    """What one process has read or built, keyed by warehouse, data version and the rest of
    the key, shared by every session and thread.

    Why not `st.cache_data`: it pickles each result into the cache and unpickles a copy on
    every hit, and hashes every argument through Streamlit's hasher; a cached page run paid
    that for each of its ~15 queries. Here a hit is a lookup. Each key is built once: a
    session that asks while another builds it waits for that result instead of building it
    again (the morning's 50 sessions opening the same view run its queries once). Entries of
    an older data version of the same warehouse are dropped as soon as a newer one is asked
    for; at most `max_entries` are kept, least recently used first out."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._versions: dict[str, str] = {}
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get_or_build(self, warehouse: str, version: str, key: Hashable,
                     build: Callable[[], T]) -> T:
        full = (warehouse, version, key)
        with self._lock:
            if self._versions.get(warehouse) != version:
                self._drop_warehouse(warehouse)
                self._versions[warehouse] = version
            if full in self._entries:
                self._entries.move_to_end(full)
                return self._entries[full]
            building = self._building.setdefault(full, threading.Lock())
        with building:
            with self._lock:
                if full in self._entries:
                    return self._entries[full]
            try:
                value = build()
            finally:
                with self._lock:
                    self._building.pop(full, None)
            with self._lock:
                if self._versions.get(warehouse) == version:
                    self._entries[full] = value
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            return value

    def _drop_warehouse(self, warehouse: str) -> None:
        for old in [k for k in self._entries if k[0] == warehouse]:
            del self._entries[old]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._versions.clear()


#: The one cache of this process (query results and what pages build from them).
CACHE = SharedCache()


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
        """The query's result, from the process cache when this version already answered it
        (a shallow clone: a caller that changes its frame in place changes only its own)."""
        if not self.cached:
            return query(self.settings, sql, params)
        key = ("sql", sql, tuple(params))
        return CACHE.get_or_build(self.settings.warehouse_url, self.version, key,
                                  lambda: query(self.settings, sql, params)).clone()

    def memo(self, key: tuple[Hashable, ...], build: Callable[[], T]) -> T:
        """`build()` once per data version and `key` in this process; every session gets the
        same object back, so it must be read-only (a Plotly figure, a names table). The key
        must hold everything the result depends on besides the data: the scope, the
        filters, the currency."""
        if not self.cached:
            return build()
        return CACHE.get_or_build(self.settings.warehouse_url, self.version, ("memo", *key),
                                  build)


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
        if (self.start - date.min).days < days:  # the calendar has no such period before
            return replace(self, start=date.max, end=date.min)
        return replace(self, start=shift_days(self.start, -days),
                       end=shift_days(self.start, -1))


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
    if index < date.min.year * 12:  # the months before would start before year 1
        return replace(filters, start=date.max, end=date.min)
    prev_first = date(index // 12, index % 12 + 1, 1)
    return replace(filters, start=prev_first, end=shift_days(first, -1))


def shift_days(day: date, days: int) -> date:
    """`day` moved by `days`, held at `date.min` / `date.max` instead of raising: any date a
    warehouse holds (year 1, year 9999) keeps every page's date arithmetic total."""
    limit = (date.max - day).days if days > 0 else (day - date.min).days
    if abs(days) > limit:
        return date.max if days > 0 else date.min
    return day + timedelta(days=days)


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


#: Each rate a page shows over several mart rows: (numerator, denominator) over the summed
#: parts, the same definitions as the marts' per-row rates.
RATES: dict[str, tuple[str, str]] = {
    "win_rate": ("won_deals", "won_deals + lost_deals"),
    "value_win_rate": ("won_amount", "won_amount + lost_amount"),
    "reach_rate": ("reached", "total_deals"),
    "contact_rate": ("reached_contacted", "leads"),
    "qualification_rate": ("reached_qualified", "leads"),
    "lead_win_rate": ("won_leads", "leads"),
    "ctr": ("clicks", "impressions"),
    "cvr": ("conversions", "clicks"),
    "roi": ("revenue - spend", "spend"),
}


def safe_ratio(numerator: str, denominator: str) -> str:
    """SQL for numerator / denominator in double precision, NULL when the denominator is 0 or
    NULL: dbt's `safe_ratio` macro (dbt_project/macros/ratios.sql), written the same way so a
    rate over summed parts equals the marts' rate over the same rows."""
    return (f"cast({numerator} as double precision) / "
            f"nullif(cast({denominator} as double precision), 0)")


def _sums(parts: Sequence[str], *, zero: bool = False) -> str:
    """`sum(part) as part, ...` (each sum 0 instead of NULL over no rows when `zero`)."""
    return ", ".join(f"coalesce(sum({p}), 0) as {p}" if zero else f"sum({p}) as {p}"
                     for p in parts)


def _with_rates(summed: str, rates: Sequence[str], *, columns: str = "*",
                order_by: str = "") -> str:
    """`summed` (a query whose columns include each rate's summed parts) with `rates` added."""
    added = ", ".join(f"{safe_ratio(*RATES[r])} as {r}" for r in rates)
    return f"select {columns}, {added} from ({summed}) as summed {order_by}"


# --------------------------------------------------------------------------------------------
# As-of line and filter options


def data_as_of(src: Source) -> dict[str, Any] | None:
    """The as-of date and finish time (UTC) of the last successful pipeline run, if any."""
    df = src.run("select as_of_date, finished_at from meta.pipeline_runs "
                 "order by finished_at desc limit 1")
    return df.row(0, named=True) if df.height else None


def tenants(src: Source, scope: Scope) -> pl.DataFrame:
    """The (business_id, branch_id) pairs the viewer may see, for the filter lists. Contacts'
    pairs come from their segment summary, so no sidebar reads one row per contact."""
    where, params = _where(scope, Filters())
    return src.run(f"""
        select distinct business_id, branch_id from (
            select business_id, branch_id from marts.v_crm_pipeline_summary
            union all select business_id, branch_id from marts.v_crm_lead_conversion
            union all select business_id, branch_id from marts.v_crm_campaign_performance
            union all select business_id, branch_id from marts.contact_segment_summary
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
# Pipeline (pipeline_by_tenant: totals per business and branch; v_crm_pipeline_summary: per
# stage; both snapshots, no dates)

#: The per-pair parts of the pipeline totals; all sum over pairs.
PIPELINE_PARTS = ("total_deals", "open_deals", "open_amount", "won_deals", "won_amount",
                  "lost_deals", "lost_amount")


def pipeline_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Open pipeline, won/lost deals and amounts, win rates by count and value, over the
    selected pairs."""
    where, params = _where(scope, filters)
    return src.run(_with_rates(
        f"select {_sums(PIPELINE_PARTS, zero=True)} from marts.pipeline_by_tenant {where}",
        ("win_rate", "value_win_rate")), params).row(0, named=True)


def pipeline_stages(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per stage: deals and value now in it, and the stage-reach count and rate (reach summed
    over tenants, divided by their summed total deals)."""
    where, params = _where(scope, filters)
    return src.run(_with_rates(f"""
        with stages as (
            select stage_id, coalesce(stage_name, '(no stage)') as stage,
                   min(stage_order) as stage_order, bool_or(is_won) as is_won,
                   bool_or(is_lost) as is_lost, sum(deal_count) as deals,
                   sum(pipeline_value) as value, sum(stage_reach_count) as reached
            from marts.v_crm_pipeline_summary {where}
            group by stage_id, coalesce(stage_name, '(no stage)')
        ),
        totals as (
            select sum(total_deals) as total_deals from marts.pipeline_by_tenant {where}
        )
        select stages.*, totals.total_deals from stages cross join totals""",
        ("reach_rate",),
        columns="stage, stage_order, is_won, is_lost, deals, value, reached",
        order_by="order by stage_id is null, stage_order, stage"), params * 2)


def pipeline_by_tenant(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per business and branch: open pipeline, won and lost, win rates by count and value."""
    where, params = _where(scope, filters)
    return src.run(f"""
        select business_id, branch_id, {", ".join(PIPELINE_PARTS)}, win_rate, value_win_rate
        from marts.pipeline_by_tenant {where}
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

#: The lead cohorts' parts (all sum) and the rates recomputed from their sums.
LEAD_PARTS = ("leads", "reached_contacted", "reached_qualified", "won_leads", "lost_leads",
              "lead_value", "won_value")
LEAD_RATES = ("contact_rate", "qualification_rate", "lead_win_rate")


def _lead_where(scope: Scope, filters: Filters) -> tuple[str, list[Any]]:
    return _where(scope, filters, month_column="cohort_month", source=True)


def lead_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Leads of the cohort months overlapping the date range, and their rates."""
    where, params = _lead_where(scope, filters)
    return src.run(_with_rates(
        f"select {_sums(LEAD_PARTS)} from marts.v_crm_lead_conversion {where}", LEAD_RATES),
        params).row(0, named=True)


def leads_by_source_month(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(_with_rates(f"""
        select cohort_month, source, {_sums(LEAD_PARTS)}
        from marts.v_crm_lead_conversion {where}
        group by cohort_month, source""", LEAD_RATES, order_by="order by cohort_month, source"),
        params)


def leads_by_source(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(_with_rates(f"""
        select source, {_sums(LEAD_PARTS)}
        from marts.v_crm_lead_conversion {where}
        group by source""", LEAD_RATES, order_by="order by leads desc, source"), params)


def lead_cohorts(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _lead_where(scope, filters)
    return src.run(_with_rates(f"""
        select cohort_month, {_sums(LEAD_PARTS)}
        from marts.v_crm_lead_conversion {where}
        group by cohort_month""", LEAD_RATES, order_by="order by cohort_month"), params)


# --------------------------------------------------------------------------------------------
# Campaigns (v_crm_campaign_performance: by campaign and date)

#: The campaign days' parts (all sum) and the rates recomputed from their sums.
CAMPAIGN_PARTS = ("impressions", "clicks", "conversions", "sends", "revenue", "spend")
CAMPAIGN_RATES = ("ctr", "cvr", "roi")


def _campaign_where(scope: Scope, filters: Filters,
                    campaign_id: int | None = None) -> tuple[str, list[Any]]:
    where, params = _where(scope, filters, date_column=DATE, campaign_type=True)
    if campaign_id is not None:
        where = (where + " and" if where else "where") + " campaign_id = ?"
        params = [*params, campaign_id]
    return where, params


def campaign_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _campaign_where(scope, filters)
    return src.run(_with_rates(
        f"select {_sums(CAMPAIGN_PARTS)} from marts.v_crm_campaign_performance {where}",
        CAMPAIGN_RATES), params).row(0, named=True)


def campaign_daily(src: Source, scope: Scope, filters: Filters,
                   campaign_id: int | None = None) -> pl.DataFrame:
    """Per date: impressions, clicks, conversions, revenue, spend and the rates."""
    where, params = _campaign_where(scope, filters, campaign_id)
    return src.run(_with_rates(f"""
        select {DATE} as {DATE}, {_sums(CAMPAIGN_PARTS)}
        from marts.v_crm_campaign_performance {where}
        group by {DATE}""", CAMPAIGN_RATES, order_by=f"order by {DATE}"), params)


#: The campaign table's columns over the date range; a lifetime column of the same name
#: (revenue, roi, ...) is not added beside them.
CAMPAIGN_TABLE_RANGE = ("campaign_id", "campaign_name", "campaign_type", "status",
                        "business_id", "branch_id", *CAMPAIGN_PARTS, *CAMPAIGN_RATES)


def lifetime_columns(src: Source) -> tuple[MartColumn, ...]:
    """The columns of `campaign_lifetime` its `.yml` marks for the dashboards
    (`dashboards.mart_columns`) that the published warehouse has, in declared order."""
    df = src.run("select column_name from information_schema.columns "
                 "where table_schema = ? and table_name = ?", ["marts", "campaign_lifetime"])
    published = set(df["column_name"].to_list()) - set(CAMPAIGN_TABLE_RANGE)
    return tuple(c for c in dashboard_columns("campaign_lifetime") if c.name in published)


def campaigns_table(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per campaign over the range: totals, CTR, CVR, ROI (from summed parts); then its
    lifetime figures from campaign_lifetime, every column `lifetime_columns` names (such as
    its target audience and the share of it that converted)."""
    where, params = _campaign_where(scope, filters)
    in_range = _with_rates(f"""
        select campaign_id, min(campaign_name) as campaign_name,
               min(coalesce(campaign_type, 'unknown')) as campaign_type,
               min(status) as status, min(business_id) as business_id,
               min(branch_id) as branch_id, {_sums(CAMPAIGN_PARTS)}
        from marts.v_crm_campaign_performance {where}
        group by campaign_id""", CAMPAIGN_RATES)
    lifetime = "".join(f", lifetime.{quote_ident(c.name)}" for c in lifetime_columns(src))
    return src.run(f"""
        select in_range.*{lifetime}
        from ({in_range}) as in_range
        left join marts.campaign_lifetime as lifetime
            on lifetime.campaign_id = in_range.campaign_id
        order by in_range.revenue desc nulls last, in_range.campaign_id""", params)


def campaign_types_table(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _campaign_where(scope, filters)
    return src.run(_with_rates(f"""
        select coalesce(campaign_type, 'unknown') as campaign_type,
               count(distinct campaign_id) as campaigns, {_sums(CAMPAIGN_PARTS)}
        from marts.v_crm_campaign_performance {where}
        group by coalesce(campaign_type, 'unknown')""", CAMPAIGN_RATES,
        order_by="order by campaign_type"), params)


# --------------------------------------------------------------------------------------------
# Customers (v_crm_contact_summary: one row per live contact, a snapshot). Read through its
# small roll-ups, contact_segment_summary and top_contacts, so a page's cost follows
# aggregated rows. Sums of the segments' sums are the sums over contacts.

#: How many contacts per (business, branch) marts.top_contacts keeps (its `tenant_rank`).
TOP_CONTACTS_PER_TENANT = 20


def top_contacts(src: Source, scope: Scope, filters: Filters, limit: int = 20) -> pl.DataFrame:
    if limit > TOP_CONTACTS_PER_TENANT:
        raise ValueError(f"at most {TOP_CONTACTS_PER_TENANT} top contacts are kept per tenant")
    where, params = _where(scope, filters)
    return src.run(f"""
        select contact_pk, contact_code, business_id, branch_id, contact_type,
               customer_group_name, won_revenue, won_deal_count, open_pipeline_value,
               total_sale_due, account_balance
        from marts.top_contacts {where}
        order by won_revenue desc, contact_pk limit ?""", [*params, limit])


def balances_by_contact_type(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(contact_type, 'unknown') as contact_type, sum(contacts) as contacts,
               sum(account_balance) as account_balance, sum(advance_balance) as advance_balance,
               sum(total_sale_due) as total_sale_due,
               sum(total_sale_return_due) as total_sale_return_due,
               sum(credit_limit) as credit_limit
        from marts.contact_segment_summary {where}
        group by coalesce(contact_type, 'unknown') order by 1""", params)


def customer_groups(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(customer_group_name, '(no group)') as customer_group,
               sum(contacts) as contacts, sum(won_revenue) as won_revenue,
               sum(open_pipeline_value) as open_pipeline_value,
               sum(total_sale_due) as total_sale_due, sum(won_deal_count) as won_deals
        from marts.contact_segment_summary {where}
        group by coalesce(customer_group_name, '(no group)')
        order by sum(won_revenue) desc nulls last, 1""", params)


def contact_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _where(scope, filters)
    return src.run(f"""
        select coalesce(sum(contacts), 0) as contacts,
               coalesce(sum(won_revenue), 0) as won_revenue,
               coalesce(sum(total_sale_due), 0) as total_sale_due,
               coalesce(sum(account_balance), 0) as account_balance
        from marts.contact_segment_summary {where}""", params).row(0, named=True)


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


# --------------------------------------------------------------------------------------------
# Names (dim_tenants, dim_owners): what people read instead of ids


def names(src: Source, scope: Scope) -> Names:
    """Business and branch names of the viewer's tenants, and every owner's name (built once
    per data version and scope)."""
    return src.memo(("names", scope), lambda: _names(src, scope))


def _names(src: Source, scope: Scope) -> Names:
    where, params = _where(scope, Filters())
    tenants_df = src.run(f"select business_id, business_name, branch_id, branch_name "
                         f"from marts.dim_tenants {where}", params)
    owners_df = src.run("select owner_id, owner_name from marts.dim_owners")
    businesses = {b: n for b, n in tenants_df.select("business_id", "business_name").unique()
                  .iter_rows() if b is not None and n is not None}
    branches = {b: n for b, n in tenants_df.select("branch_id", "branch_name").unique()
                .iter_rows() if b is not None and n is not None}
    owners = dict(owners_df.iter_rows())
    return Names(businesses, branches, owners)


# --------------------------------------------------------------------------------------------
# Coverage: where the data starts, so a delta is only shown against a covered period


@dataclass(frozen=True)
class Coverage:
    """First day with data in the viewer's scope, per kind of figure (None: no data)."""

    campaigns: date | None
    leads: date | None
    deals: date | None

    @staticmethod
    def covers(first: date | None, previous: Filters) -> bool:
        """True when the previous period lies wholly on or after the first day of data."""
        return (first is not None and previous.start is not None
                and previous.end is not None and previous.start <= previous.end
                and previous.start >= first)


def coverage(src: Source, scope: Scope) -> Coverage:
    where, params = _where(scope, Filters())
    row = src.run(f"""
        select (select min({DATE}) from marts.v_crm_campaign_performance {where}) as campaigns,
               (select min(cohort_month) from marts.v_crm_lead_conversion {where}) as leads,
               (select min(month) from marts.sales_monthly {where}) as deals""",
                  params * 3).row(0, named=True)
    return Coverage(row["campaigns"], row["leads"], row["deals"])


# --------------------------------------------------------------------------------------------
# Bookings (sales_monthly: by tenant, owner and month)

SALES_SUMS = """
    coalesce(sum(new_deals), 0) as new_deals, coalesce(sum(new_pipeline), 0) as new_pipeline,
    coalesce(sum(won_deals), 0) as won_deals, coalesce(sum(won_amount), 0) as won_amount,
    coalesce(sum(lost_deals), 0) as lost_deals, coalesce(sum(lost_amount), 0) as lost_amount,
    """ + safe_ratio("sum(won_deals)", "sum(won_deals) + sum(lost_deals)") + " as win_rate"


def sales_by_month(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per month the date range overlaps: new deals and pipeline, bookings (won), lost."""
    where, params = _where(scope, filters, month_column="month", owner=True)
    return src.run(f"""
        select month, {SALES_SUMS} from marts.sales_monthly {where}
        group by month order by month""", params)


def sales_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """Bookings and new pipeline over the months the date range overlaps."""
    where, params = _where(scope, filters, month_column="month", owner=True)
    return src.run(f"select {SALES_SUMS} from marts.sales_monthly {where}",
                   params).row(0, named=True)


# --------------------------------------------------------------------------------------------
# Forecast and deals at risk (sales_forecast, deals_at_risk, deal_close_date_slippage)


def forecast_by_month(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per month from the as-of month on: open deals, best case (every open deal's amount),
    weighted (amount x stage probability) and already won."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        select month, coalesce(sum(open_deals), 0) as open_deals,
               coalesce(sum(best_case_amount), 0) as best_case_amount,
               coalesce(sum(weighted_amount), 0) as weighted_amount,
               coalesce(sum(won_deals), 0) as won_deals,
               coalesce(sum(won_amount), 0) as won_amount
        from marts.sales_forecast {where}
        group by month order by month""", params)


def deals_at_risk(src: Source, scope: Scope, filters: Filters,
                  limit: int | None = None) -> pl.DataFrame:
    """Open deals that are overdue or stale, with the owner's name and whether (and how far)
    the close date has slipped; most overdue first. With `limit`, only the first rows in that
    order: a page shows a readable list while the CSV carries every deal (at `large` there
    are ~700,000), and the names and slippage are joined to those rows only."""
    where, params = _where(scope, filters, owner=True)
    top = ""
    if limit is not None:
        top = "order by days_overdue desc, days_since_update desc, deal_id limit ?"
        params = [*params, limit]
    return src.run(f"""
        select r.deal_id, r.business_id, r.branch_id, r.owner_id,
               coalesce(o.owner_name, case when r.owner_id is null then 'unassigned'
                        else 'Owner ' || cast(r.owner_id as varchar) end) as owner_name,
               r.stage_name, r.amount, r.close_date, r.is_overdue, r.days_overdue,
               r.is_stale, r.days_since_update,
               coalesce(s.slip_count, 0) > 0 as is_slipped,
               coalesce(s.slip_count, 0) as slip_count,
               coalesce(s.slip_days_total, 0) as slip_days_total
        from (select * from marts.deals_at_risk {where} {top}) as r
        left join marts.dim_owners as o on o.owner_id = r.owner_id
        left join marts.deal_close_date_slippage as s on s.deal_id = r.deal_id
        order by r.days_overdue desc, r.days_since_update desc, r.deal_id""", params)


def risk_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    """How many deals at risk, overdue and stale, and their amount."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        select count(*) as deals, coalesce(sum(amount), 0) as amount,
               coalesce(sum(case when is_overdue then 1 else 0 end), 0) as overdue_deals,
               coalesce(sum(case when is_overdue then amount else 0 end), 0) as overdue_amount,
               coalesce(sum(case when is_stale then 1 else 0 end), 0) as stale_deals
        from marts.deals_at_risk {where}""", params).row(0, named=True)


# --------------------------------------------------------------------------------------------
# Team (owner_leaderboard, sales_velocity, deal_close_date_slippage), summed over tenants

LEADER_SUMS = """
    sum(new_deals) as new_deals, sum(new_pipeline) as new_pipeline,
    sum(won_deals) as won_deals, sum(won_amount) as won_amount,
    sum(lost_deals) as lost_deals, sum(lost_amount) as lost_amount,
    """ + safe_ratio("sum(won_deals)", "sum(won_deals) + sum(lost_deals)") + """ as win_rate,
    """ + safe_ratio("sum(won_amount)", "sum(won_deals)") + """ as avg_deal_size,
    """ + safe_ratio("sum(cycle_days_sum)", "sum(won_deals)") + " as avg_cycle_days"


def leaderboard_periods(src: Source, scope: Scope, period_type: str) -> list[date]:
    """The periods ('month' or 'quarter') with activity in the scope, latest first."""
    where, params = _where(scope, Filters())
    df = src.run(f"""
        select distinct period_start from marts.owner_leaderboard {where}
        {'and' if where else 'where'} period_type = ? order by period_start desc""",
                 [*params, period_type])
    return df["period_start"].to_list()


def leaderboard(src: Source, scope: Scope, filters: Filters, period_type: str,
                period_start: date) -> pl.DataFrame:
    """Per owner in one period: bookings, won and lost, win rate, average deal size and
    cycle days (rates from summed parts over the owner's tenants); top bookings first."""
    where, params = _where(scope, filters, owner=True)
    where = (where + " and" if where else "where") + " period_type = ? and period_start = ?"
    return src.run(f"""
        select l.owner_id, coalesce(min(o.owner_name), 'unassigned') as owner_name,
               {LEADER_SUMS}
        from (select * from marts.owner_leaderboard {where}) as l
        left join marts.dim_owners as o on o.owner_id = l.owner_id
        group by l.owner_id
        order by sum(won_amount) desc, sum(won_deals) desc, l.owner_id nulls last""",
                   [*params, period_type, period_start])


VELOCITY_PARTS = """
    sum(open_deals) as open_deals, sum(open_amount) as open_amount,
    sum(won_deals) as won_deals, sum(lost_deals) as lost_deals,
    sum(won_amount) as won_amount, sum(cycle_days_sum) as cycle_days_sum"""


def _velocity(parts: str) -> str:
    """Velocity from summed parts: open deals x win rate x average deal size / cycle days,
    NULL when a part is missing or the cycle is 0 (the mart's own definition)."""
    win_rate = safe_ratio("won_deals", "won_deals + lost_deals")
    deal_size = safe_ratio("won_amount", "won_deals")
    cycle = safe_ratio("cycle_days_sum", "won_deals")
    return f"""
        select {parts} {win_rate} as win_rate, {deal_size} as avg_deal_size,
               {cycle} as avg_cycle_days,
               {safe_ratio(f"open_deals * {win_rate} * {deal_size}", cycle)} as velocity_per_day"""


def velocity_by_owner(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per owner, over the trailing 365 days to the as-of date: the velocity and its parts."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        with parts as (
            select v.owner_id, coalesce(min(o.owner_name), 'unassigned') as owner_name,
                   {VELOCITY_PARTS}
            from (select * from marts.sales_velocity {where}) as v
            left join marts.dim_owners as o on o.owner_id = v.owner_id
            group by v.owner_id
        )
        {_velocity("owner_id, owner_name, open_deals, open_amount, won_deals, lost_deals, "
                   "won_amount, cycle_days_sum,")}
        from parts order by velocity_per_day desc nulls last, owner_id nulls last""", params)


def velocity_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        with parts as (select {VELOCITY_PARTS} from marts.sales_velocity {where})
        {_velocity("open_deals, open_amount, won_deals, lost_deals, won_amount,")}
        from parts""", params).row(0, named=True)


def slippage_by_owner(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per owner: how often close dates moved later (deals slipped / deals with history) and
    how far (days moved later per slip)."""
    where, params = _where(scope, filters, owner=True)
    return src.run(f"""
        select s.owner_id, coalesce(min(o.owner_name), 'unassigned') as owner_name,
               count(*) as deals,
               sum(case when s.slip_count > 0 then 1 else 0 end) as slipped_deals,
               sum(s.slip_count) as slips, sum(s.slip_days_total) as slip_days,
               {safe_ratio("sum(case when s.slip_count > 0 then 1 else 0 end)", "count(*)")}
                   as slipped_share,
               {safe_ratio("sum(s.slip_days_total)", "sum(s.slip_count)")} as days_per_slip
        from (select * from marts.deal_close_date_slippage {where}) as s
        left join marts.dim_owners as o on o.owner_id = s.owner_id
        group by s.owner_id
        order by slipped_share desc nulls last, s.owner_id nulls last""", params)


# --------------------------------------------------------------------------------------------
# Campaign attribution (campaign_attribution: one row per campaign, lifetime to the as-of
# date, so the date range does not narrow it)


def campaign_attribution(src: Source, scope: Scope, filters: Filters) -> pl.DataFrame:
    """Per campaign: leads and deals it brought, won revenue, spend, cost per lead and ROI on
    won deals, beside the ROI the campaign reports (revenue_generated over its lifetime)."""
    where, params = _where(scope, replace(filters, start=None, end=None), campaign_type=True)
    return src.run(f"""
        select a.campaign_id, a.campaign_name, coalesce(a.campaign_type, 'unknown')
                   as campaign_type, a.business_id, a.branch_id, a.attributed_leads,
               a.attributed_deals, a.won_deals, a.won_amount, a.spend, a.cost_per_lead,
               a.won_roi, p.revenue as reported_revenue,
               {safe_ratio("p.revenue - p.spend", "p.spend")} as reported_roi
        from (select * from marts.campaign_attribution {where}) as a
        left join (select campaign_id, sum(revenue) as revenue, sum(spend) as spend
                   from marts.v_crm_campaign_performance group by campaign_id) as p
            on p.campaign_id = a.campaign_id
        order by a.won_amount desc, a.attributed_leads desc, a.campaign_id""", params)


def attribution_totals(src: Source, scope: Scope, filters: Filters) -> dict[str, Any]:
    where, params = _where(scope, replace(filters, start=None, end=None), campaign_type=True)
    return src.run(f"""
        select coalesce(sum(attributed_leads), 0) as attributed_leads,
               coalesce(sum(attributed_deals), 0) as attributed_deals,
               coalesce(sum(won_deals), 0) as won_deals,
               coalesce(sum(won_amount), 0) as won_amount, sum(spend) as spend,
               {safe_ratio("sum(spend)",
                           "sum(case when spend is not null then attributed_leads end)")}
                   as cost_per_lead,
               {safe_ratio("sum(case when spend is not null then won_amount end) - sum(spend)",
                      "sum(spend)")} as won_roi
        from marts.campaign_attribution {where}""", params).row(0, named=True)


def contact_labels(src: Source, scope: Scope, contact_pks: Sequence[int]) -> dict[int, str]:
    """The label of each listed contact the viewer may see: business name, else code."""
    if not contact_pks:
        return {}
    where, params = _where(scope, Filters())
    by_pk, pk_params = _in("contact_pk", sorted(set(contact_pks)))
    where = (where + " and " if where else "where ") + by_pk
    df = src.run(f"select contact_pk, contact_label from marts.dim_contacts {where}",
                 [*params, *pk_params])
    return dict(df.iter_rows())


def campaign_alerts(src: Source, scope: Scope) -> pl.DataFrame:
    """Active campaigns (lifetime to the as-of date) losing money or over budget: what the
    daily digest alerts on."""
    where, params = _where(scope, Filters())
    where = (where + " and" if where else "where") + \
        " status = 'active' and (roi < 0 or round(spend, 2) > budget)"
    return src.run(f"""
        select campaign_id, campaign_name, business_id, branch_id, revenue, spend, budget,
               roi, budget_used, round(spend, 2) > budget as over_budget
        from marts.campaign_lifetime {where}
        order by campaign_id""", params)
