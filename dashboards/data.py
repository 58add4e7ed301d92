"""Every query the dashboards (and the demo's headline) run against the marts.

Pages call these functions and only lay out what they return. Queries use bound parameters
only: no user input is ever formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl
import psycopg

from ingestion.errors import CrmError, first_line
from orchestration.settings import Settings


def query(settings: Settings, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
    """Run one read-only query (`?` placeholders) on the warehouse; a DataFrame back."""
    target = settings.warehouse
    if target.is_duckdb:
        if target.duckdb_path is None or not target.duckdb_path.exists():
            raise CrmError(f"warehouse {target.describe()} does not exist yet: run "
                           "`crm-analytics run` (or `make demo`) first")
        try:
            con = duckdb.connect(str(target.duckdb_path), read_only=True)
        except duckdb.Error as exc:
            raise CrmError(f"warehouse {target.describe()} cannot be read: {first_line(exc)}") \
                from None
        try:
            return con.execute(sql, list(params)).pl()
        except duckdb.Error as exc:
            raise CrmError(f"the marts are not readable yet ({first_line(exc)}): run "
                           "`crm-analytics run` first") from None
        finally:
            con.close()
    try:
        with psycopg.connect(target.conninfo(), connect_timeout=10) as conn:
            cur = conn.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchall()
    except psycopg.Error as exc:
        raise CrmError(f"warehouse {target.describe()} cannot be read: {first_line(exc)}") \
            from None
    return pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)


HEADLINE_SQL = """
with pairs as (
    select business_id, branch_id,
           max(open_amount) as open_amount, max(won_amount) as won_amount,
           max(won_deals) as won_deals, max(lost_deals) as lost_deals
    from marts.v_crm_pipeline_summary
    group by business_id, branch_id
),
pipeline as (
    select sum(open_amount) as open_pipeline, sum(won_amount) as won_revenue,
           sum(won_deals) as won_deals, sum(won_deals) + sum(lost_deals) as decided_deals
    from pairs
),
leads as (
    select sum(leads) as leads, sum(reached_qualified) as qualified
    from marts.v_crm_lead_conversion
),
campaigns as (
    select sum(revenue) as campaign_revenue, sum(spend) as spend
    from marts.v_crm_campaign_performance
)
select * from pipeline, leads, campaigns
"""


def headline_kpis(settings: Settings) -> dict[str, Any]:
    """Open pipeline, won revenue, win rate, lead qualification rate, campaign revenue, spend
    and ROI over the whole warehouse. Rates are recomputed from summed parts, never averaged."""
    row = query(settings, HEADLINE_SQL).row(0, named=True)
    return {
        "open_pipeline": row["open_pipeline"] or Decimal(0),
        "won_revenue": row["won_revenue"] or Decimal(0),
        "win_rate": _ratio(row["won_deals"], row["decided_deals"]),
        "qualification_rate": _ratio(row["qualified"], row["leads"]),
        "campaign_revenue": row["campaign_revenue"] or Decimal(0),
        "spend": row["spend"] or Decimal(0),
        "roi": _ratio((row["campaign_revenue"] or 0) - (row["spend"] or 0), row["spend"]),
    }


def headline_numbers(settings: Settings) -> list[tuple[str, str]]:
    """The headline KPIs as printable (label, value) pairs for `crm-analytics demo`."""
    k = headline_kpis(settings)
    return [
        ("Open pipeline", f"{k['open_pipeline']:,.2f}"),
        ("Won revenue", f"{k['won_revenue']:,.2f}"),
        ("Win rate (count)", _pct(k["win_rate"])),
        ("Lead qualification rate", _pct(k["qualification_rate"])),
        ("Campaign revenue", f"{k['campaign_revenue']:,.2f}"),
        ("Campaign spend", f"{k['spend']:,.2f}"),
        ("Campaign ROI", _pct(k["roi"])),
    ]


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def pipeline_by_stage(settings: Settings) -> pl.DataFrame:
    """Deal count and value per stage over every tenant, in stage order (NULL stage last)."""
    return query(settings, """
        select coalesce(stage_name, '(no stage)') as stage, min(stage_order) as stage_order,
               sum(deal_count) as deals, sum(pipeline_value) as value
        from marts.v_crm_pipeline_summary
        group by coalesce(stage_name, '(no stage)')
        order by min(stage_order) nulls last, stage
    """)


def campaign_daily(settings: Settings) -> pl.DataFrame:
    """Campaign revenue and spend per day over every campaign."""
    return query(settings, """
        select date, sum(revenue) as revenue, sum(coalesce(spend, 0)) as spend
        from marts.v_crm_campaign_performance
        group by date
        order by date
    """)


def data_as_of(settings: Settings) -> dict[str, Any] | None:
    """The as-of date and finish time of the last successful pipeline run, if any."""
    df = query(settings, """
        select as_of_date, finished_at from meta.pipeline_runs
        order by finished_at desc limit 1
    """)
    return df.row(0, named=True) if df.height else None
