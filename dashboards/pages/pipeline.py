"""Pipeline: value and count by stage, the stage-reach funnel, win rates by count and value,
open pipeline by business and branch, by owner and by expected close month. Layout only."""

import plotly.graph_objects as go
import polars as pl

from dashboards import data, ui

ctx = ui.page("Pipeline", dates=False, owner=True,
              note="the pipeline is a snapshot at the as-of date (no date filter)")
src, scope, f = ctx.src, ctx.scope, ctx.filters

totals = data.pipeline_totals(src, scope, f)
if not totals["total_deals"]:
    ui.empty("No deals for the selected businesses and branches: the pipeline summary has "
             "rows only for businesses and branches with at least one deal.")
    ui.st.stop()

row = ui.st.columns(5)
ui.money_kpi(row[0], "Open pipeline", totals["open_amount"],
             help=f"{ui.count(totals['open_deals'])} open deals")
ui.money_kpi(row[1], "Won revenue", totals["won_amount"],
             help=f"{ui.count(totals['won_deals'])} won deals")
ui.money_kpi(row[2], "Lost value", totals["lost_amount"],
             help=f"{ui.count(totals['lost_deals'])} lost deals")
ui.kpi(row[3], "Win rate (count)", ui.pct(totals["win_rate"]),
       help="won deals / (won + lost deals)")
ui.kpi(row[4], "Win rate (value)", ui.pct(totals["value_win_rate"]),
       help="won amount / (won + lost amount)")

stages = data.pipeline_stages(src, scope, f)
reach = stages.filter(~pl.col("is_lost").fill_null(False) & pl.col("stage_order").is_not_null())
by_tenant = data.pipeline_by_tenant(src, scope, f)
labels = [ctx.names.tenant(b, r) for b, r in by_tenant.select("business_id", "branch_id")
          .iter_rows()]
by_owner = data.open_pipeline_by_owner(src, scope, f)
by_month = data.open_pipeline_by_close_month(src, scope, f)


def stages_figure() -> go.Figure:
    frame = ui.chart_frame(stages)
    fig = go.Figure([
        go.Bar(x=frame["stage"], y=frame["value"], name="Value", marker_color=ui.PALETTE[0]),
        go.Scatter(x=frame["stage"], y=frame["deals"], name="Deals", yaxis="y2",
                   mode="lines+markers", line={"color": ui.PALETTE[2]}),
    ])
    fig.layout.yaxis2 = {"overlaying": "y", "side": "right", "showgrid": False,
                         "title": "deals", "tickformat": ",.0f"}
    return ui.style(fig, money_axis=True)


def reach_figure() -> go.Figure:
    rframe = ui.chart_frame(reach)
    return ui.style(go.Figure(go.Funnel(y=rframe["stage"], x=rframe["reached"],
                                        textinfo="value+percent initial",
                                        marker={"color": ui.PALETTE[0]})))


def win_rates_figure() -> go.Figure:
    tframe = ui.chart_frame(by_tenant)
    fig = go.Figure([
        go.Bar(y=labels, x=tframe["win_rate"], name="by count", orientation="h",
               marker_color=ui.PALETTE[0]),
        go.Bar(y=labels, x=tframe["value_win_rate"], name="by value", orientation="h",
               marker_color=ui.PALETTE[1]),
    ])
    fig.layout.xaxis.tickformat = ".0%"
    fig.layout.yaxis.autorange = "reversed"
    return ui.style(fig, height=max(340, 56 * len(labels)))


def open_by_tenant_figure() -> go.Figure:
    tframe = ui.chart_frame(by_tenant)
    fig = go.Figure(go.Bar(y=labels, x=tframe["open_amount"], orientation="h",
                           text=[ui.count(d) for d in tframe["open_deals"]],
                           textposition="auto", marker_color=ui.PALETTE[5]))
    fig.layout.yaxis.autorange = "reversed"
    return ui.style(fig, height=max(340, 28 * len(labels)), money_x=True)


def by_owner_figure() -> go.Figure:
    # Plain lists (not arrays): the figure carries the exact numbers the CSV holds.
    owners = [ctx.names.owner(o) for o in by_owner["owner_id"].to_list()]
    fig = go.Figure(go.Bar(y=owners, x=[float(v) for v in by_owner["open_amount"]],
                           orientation="h", marker_color=ui.PALETTE[0],
                           text=[ui.count(d) for d in by_owner["open_deals"]],
                           textposition="auto"))
    fig.layout.yaxis.update(autorange="reversed", type="category")
    return ui.style(fig, height=max(340, 24 * len(owners)), money_x=True)


def by_month_figure() -> go.Figure:
    months = [ui.month_label(m) for m in by_month["close_month"].to_list()]
    fig = go.Figure(go.Bar(x=months, y=[float(v) for v in by_month["open_amount"]],
                           marker_color=ui.PALETTE[5], textposition="auto",
                           text=[ui.count(d) for d in by_month["open_deals"]]))
    return ui.style(fig, money_axis=True, every_tick=True)


left, right = ui.st.columns(2)
with left:
    ui.chart("Deals now in each stage: value and count",
             ctx.figure("pipeline.stages", stages_figure),
             stages.select("stage", "stage_order", "is_won", "is_lost", "deals", "value"),
             file_name="pipeline_stages")
with right:
    if reach.height:
        ui.chart("Stage reach: deals that got at least this far",
                 ctx.figure("pipeline.reach", reach_figure),
                 reach.select("stage", "stage_order", "reached", "reach_rate"),
                 file_name="stage_reach")
    else:
        ui.empty("No stages defined in the ERP, so there is no funnel to draw.")

left, right = ui.st.columns(2)
with left:
    ui.chart("Win rate by business and branch, by count and by value",
             ctx.figure("pipeline.win_rates", win_rates_figure),
             ctx.names.with_names(by_tenant.select(
                 "business_id", "branch_id", "won_deals", "lost_deals", "won_amount",
                 "lost_amount", "win_rate", "value_win_rate")),
             file_name="win_rates")
with right:
    ui.chart("Open pipeline by business and branch (open deals on the bars)",
             ctx.figure("pipeline.open_by_tenant", open_by_tenant_figure),
             ctx.names.with_names(by_tenant.select("business_id", "branch_id", "open_deals",
                                                   "open_amount")),
             file_name="open_pipeline_by_tenant")

left, right = ui.st.columns(2)
with left:
    if by_owner.height:
        ui.chart("Open pipeline by owner (open deals on the bars)",
                 ctx.figure("pipeline.by_owner", by_owner_figure),
                 ctx.names.with_names(by_owner),
                 file_name="open_pipeline_by_owner")
    else:
        ui.empty("No open deals for the selected businesses, branches and owners.")
with right:
    if by_month.height:
        ui.chart("Open pipeline by expected close month (open deals on the bars)",
                 ctx.figure("pipeline.by_month", by_month_figure), by_month,
                 file_name="open_pipeline_by_close_month")
    else:
        ui.empty("No open deals for the selected businesses, branches and owners.")
