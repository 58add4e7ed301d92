"""Campaigns & ROI: activity, revenue and spend over time; CTR, CVR and ROI by campaign and by
type; revenue against spend; a drill-down into one campaign. Layout only."""

import plotly.graph_objects as go
import polars as pl

from dashboards import data, ui

#: Campaigns drawn in the revenue-against-spend scatter (the largest by spend + revenue).
SCATTER_CAMPAIGNS = 200

ctx = ui.page("Campaigns & ROI", campaign_type=True)
src, scope, f = ctx.src, ctx.scope, ctx.filters

totals = data.campaign_totals(src, scope, f)
before = data.campaign_totals(src, scope, f.previous_period())
campaigns = data.campaigns_table(src, scope, f)
if not campaigns.height:
    ui.empty("No campaign rows in this date range for the selected businesses, branches and "
             "campaign types (a campaign has rows for its flight dates and dates with activity).")
    ui.st.stop()

first, period = data.coverage(src, scope).campaigns, f.previous_period()
row = ui.st.columns(6)
ui.money_kpi(row[0], "Revenue", totals["revenue"],
             ui.compare(totals["revenue"], before["revenue"], first, period),
             help="revenue the campaigns report")
ui.money_kpi(row[1], "Spend", totals["spend"],
             ui.compare(totals["spend"], before["spend"], first, period), inverse=True)
ui.kpi(row[2], "ROI", ui.pct(totals["roi"]),
       ui.compare(totals["roi"], before["roi"], first, period, rate=True),
       help="(revenue − spend) / spend; n/a when there was no spend")
ui.kpi(row[3], "CTR", ui.pct(totals["ctr"]),
       ui.compare(totals["ctr"], before["ctr"], first, period, rate=True),
       help="clicks / impressions")
ui.kpi(row[4], "CVR", ui.pct(totals["cvr"]),
       ui.compare(totals["cvr"], before["cvr"], first, period, rate=True),
       help="conversions / clicks")
ui.kpi(row[5], "Conversions", ui.count(totals["conversions"]),
       ui.compare(totals["conversions"], before["conversions"], first, period))

daily = data.campaign_daily(src, scope, f)


def activity_figure() -> go.Figure:
    frame = ui.chart_frame(daily)
    fig = go.Figure([go.Scatter(x=frame["date"], y=frame[c], name=c, mode="lines")
                     for c in ("impressions", "clicks", "conversions")])
    fig.layout.yaxis.update(type="log", dtick=1)
    return ui.style(fig)


def money_figure() -> go.Figure:
    frame = ui.chart_frame(daily)
    fig = go.Figure([
        go.Bar(x=frame["date"], y=frame["revenue"], name="revenue", marker_color=ui.REVENUE),
        go.Scatter(x=frame["date"], y=frame["spend"], name="spend", mode="lines",
                   line={"color": ui.SPEND, "width": 2}),
    ])
    return ui.style(fig, money_axis=True)


left, right = ui.st.columns(2)
with left:
    ui.chart("Impressions, clicks and conversions per day (log scale)",
             ctx.figure("campaigns.activity", activity_figure),
             daily.select("date", "impressions", "clicks", "conversions", "sends"),
             file_name="campaign_activity")
with right:
    ui.chart("Revenue and spend per day", ctx.figure("campaigns.money", money_figure),
             daily.select("date", "revenue", "spend", "roi"), file_name="campaign_money")

by_type = data.campaign_types_table(src, scope, f)


def types_figure() -> go.Figure:
    tframe = ui.chart_frame(by_type)
    # Three small panels side by side, on plain axes (make_subplots builds a heavier figure).
    fig = go.Figure([go.Bar(x=tframe["campaign_type"], y=tframe[metric], name=metric.upper(),
                            xaxis=f"x{i}", yaxis=f"y{i}", marker_color=ui.PALETTE[i - 1])
                     for i, metric in enumerate(("ctr", "cvr", "roi"), start=1)])
    for i in (1, 2, 3):
        left_edge = (i - 1) * 0.36
        fig.layout[f"xaxis{i}"] = {"domain": [left_edge + 0.06 * (i > 1), left_edge + 0.28],
                                   "anchor": f"y{i}"}
        fig.layout[f"yaxis{i}"] = {"anchor": f"x{i}", "tickformat": ".0%"}
    return ui.style(fig)


def scatter_figure() -> go.Figure:
    # Plotting thousands of campaigns costs more than the rest of a cached page run and shows a
    # blur: the scatter draws the largest ones by spend + revenue; the CSV holds all of them.
    size = pl.col("spend").fill_null(0) + pl.col("revenue").fill_null(0)
    largest = campaigns.sort(size, descending=True, maintain_order=True).head(SCATTER_CAMPAIGNS)
    fig = go.Figure([
        go.Scatter(x=[None if v is None else float(v) for v in part["spend"]],
                   y=[None if v is None else float(v) for v in part["revenue"]],
                   mode="markers", name=kind,
                   text=part["campaign_name"].to_list(),
                   hovertemplate="%{text}<br>spend %{x:,.0f}<br>revenue %{y:,.0f}")
        for (kind,), part in largest.partition_by("campaign_type", as_dict=True,
                                                  maintain_order=True).items()])
    top = float(max(largest["spend"].max() or 0, largest["revenue"].max() or 0))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="break-even",
                             line={"dash": "dot", "color": "#94a3b8"}))
    return ui.style(fig, money_axis=True, money_x=True)


left, right = ui.st.columns(2)
with left:
    ui.chart("CTR, CVR and ROI by campaign type", ctx.figure("campaigns.types", types_figure),
             by_type, file_name="campaign_types")
with right:
    shown = (f"the {SCATTER_CAMPAIGNS} largest by spend + revenue of {campaigns.height:,}; "
             "all in the CSV" if campaigns.height > SCATTER_CAMPAIGNS else "per campaign")
    ui.chart(f"Revenue against spend ({shown}; above the line pays off)",
             ctx.figure("campaigns.scatter", scatter_figure),
             campaigns.select("campaign_id", "campaign_name", "campaign_type", "spend",
                              "revenue", "roi"), file_name="revenue_vs_spend")

ui.table("CTR, CVR and ROI by campaign", ctx.names.with_names(campaigns),
         file_name="campaigns", columns=data.lifetime_columns(src))

ui.st.subheader("Attribution: what the campaigns brought")
ui.st.caption("Leads attributed to the campaign that last touched their contact within 30 "
              "days before the lead, and those leads' deals; lifetime up to the as-of date "
              "(the date range does not apply). ROI on won deals = (won revenue − spend) / "
              "spend, beside the ROI the campaign reports.")
attribution = data.campaign_attribution(src, scope, f)
brought = data.attribution_totals(src, scope, f)
row = ui.st.columns(5)
ui.kpi(row[0], "Leads brought", ui.count(brought["attributed_leads"]))
ui.kpi(row[1], "Deals brought", ui.count(brought["attributed_deals"]),
       help=f"{ui.count(brought['won_deals'])} of them won")
ui.money_kpi(row[2], "Won revenue brought", brought["won_amount"])
ui.money_kpi(row[3], "Cost per lead", brought["cost_per_lead"],
             help="spend / leads brought, over campaigns with a known spend")
ui.kpi(row[4], "ROI on won deals", ui.pct(brought["won_roi"]),
       help="(won revenue brought − spend) / spend, over campaigns with a known spend")
top_attributed = attribution.head(15)


def attribution_figure() -> go.Figure:
    names_shown = [f"{n} (#{c})" for c, n in top_attributed.select("campaign_id",
                                                                    "campaign_name").iter_rows()]
    aframe = ui.chart_frame(top_attributed)
    fig = go.Figure([
        go.Bar(y=names_shown, x=aframe["won_roi"], name="ROI on won deals", orientation="h",
               marker_color=ui.PALETTE[1]),
        go.Bar(y=names_shown, x=aframe["reported_roi"], name="reported ROI",
               orientation="h", marker_color=ui.PALETTE[8]),
    ])
    fig.layout.xaxis.tickformat = ".0%"
    fig.layout.yaxis.update(autorange="reversed", type="category")
    return ui.style(fig, height=max(340, 44 * top_attributed.height))


if attribution.height:
    left, right = ui.st.columns([2, 3])
    with left:
        ui.chart("ROI on won deals against reported ROI (top 15 by won revenue brought)",
                 ctx.figure("campaigns.attribution", attribution_figure),
                 top_attributed.select("campaign_id", "campaign_name", "won_amount",
                                       "spend", "won_roi", "reported_revenue",
                                       "reported_roi"),
                 file_name="attribution_roi")
    with right:
        ui.table("Attribution by campaign", ctx.names.with_names(attribution),
                 file_name="campaign_attribution")
else:
    ui.empty("No campaigns for the selected businesses, branches and campaign types.")

ui.st.subheader("Campaign drill-down")
names = dict(zip(campaigns["campaign_id"].to_list(), campaigns["campaign_name"].to_list(),
                 strict=True))
# Streamlit formats a remembered (or forged) pick before resetting one that is not among the
# viewer's campaigns, so the label must not fail for an id outside `names`.
picked = ui.st.selectbox("Campaign", list(names),
                         format_func=lambda c: f"{names.get(c, '?')} (#{c})",
                         key="drill_campaign")
one = campaigns.filter(pl.col("campaign_id") == picked).row(0, named=True)
row = ui.st.columns(5)
ui.money_kpi(row[0], "Revenue", one["revenue"])
ui.money_kpi(row[1], "Spend", one["spend"],
             help="budget spread evenly over the flight days; n/a without a budget or flight")
ui.kpi(row[2], "ROI", ui.pct(one["roi"]), help="n/a when there was no spend")
ui.kpi(row[3], "CTR", ui.pct(one["ctr"]))
ui.kpi(row[4], "CVR", ui.pct(one["cvr"]))
detail = data.campaign_daily(src, scope, f, campaign_id=picked)


def detail_figure() -> go.Figure:
    dframe = ui.chart_frame(detail)
    fig = go.Figure([
        go.Bar(x=dframe["date"], y=dframe["revenue"], name="revenue",
               marker_color=ui.REVENUE),
        go.Scatter(x=dframe["date"], y=dframe["spend"], name="spend", mode="lines",
                   line={"color": ui.SPEND}),
        go.Scatter(x=dframe["date"], y=dframe["clicks"], name="clicks", mode="lines",
                   yaxis="y2", line={"color": ui.PALETTE[0], "dash": "dot"}),
    ])
    fig.layout.yaxis2 = {"overlaying": "y", "side": "right", "showgrid": False,
                         "title": "clicks", "tickformat": ",.0f"}
    return ui.style(fig, money_axis=True)


ui.chart(f"{names[picked]}: day by day", ctx.figure("campaigns.detail", detail_figure, picked),
         detail, file_name=f"campaign_{picked}")
