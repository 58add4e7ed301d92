"""Overview: the headline KPIs against the previous period of equal length, and the revenue
trend. Layout only; numbers come from `dashboards.data`."""

import plotly.graph_objects as go

from dashboards import data, ui

ctx = ui.page("CRM overview")
src, scope, f = ctx.src, ctx.scope, ctx.filters
previous = f.previous_period()

pipe = data.pipeline_totals(src, scope, f)
leads = data.lead_totals(src, scope, f)
leads_before = data.lead_totals(src, scope, data.previous_months(f))
camp = data.campaign_totals(src, scope, f)
camp_before = data.campaign_totals(src, scope, previous)

SNAPSHOT = ("Snapshot at the as-of date for the selected businesses and branches. The "
            "pipeline mart holds no history, so there is no previous period to compare with.")
PERIOD = "Change against the previous period of equal length."

row = ui.st.columns(4)
ui.kpi(row[0], "Open pipeline", ui.money(pipe["open_amount"]),
       help=f"Sum of open deals' amounts ({ui.count(pipe['open_deals'])} deals). {SNAPSHOT}")
ui.kpi(row[1], "Won revenue", ui.money(pipe["won_amount"]),
       help=f"Sum of won deals' amounts ({ui.count(pipe['won_deals'])} deals). {SNAPSHOT}")
ui.kpi(row[2], "Win rate", ui.pct(pipe["win_rate"]),
       help=f"Won deals / (won + lost deals). {SNAPSHOT}")
ui.kpi(row[3], "Lead qualification rate", ui.pct(leads["qualification_rate"]),
       ui.change(leads["qualification_rate"], leads_before["qualification_rate"], rate=True),
       help="Leads that reached qualified / leads, over the lead cohort months the date range "
            "overlaps; change against the same number of months before.")
row = ui.st.columns(4)
ui.kpi(row[0], "Campaign revenue", ui.money(camp["revenue"]),
       ui.change(camp["revenue"], camp_before["revenue"]), help=PERIOD)
ui.kpi(row[1], "Campaign spend", ui.money(camp["spend"]),
       ui.change(camp["spend"], camp_before["spend"]), inverse=True, help=PERIOD)
ui.kpi(row[2], "Campaign ROI", ui.pct(camp["roi"]),
       ui.change(camp["roi"], camp_before["roi"], rate=True),
       help="(revenue − spend) / spend over the range; n/a when there was no spend. " + PERIOD)
ui.kpi(row[3], "Leads", ui.count(leads["leads"]),
       ui.change(leads["leads"], leads_before["leads"]),
       help="Leads created in the cohort months the date range overlaps.")

daily = data.campaign_daily(src, scope, f)
left, right = ui.st.columns([3, 2])
with left:
    if daily.height:
        frame = ui.chart_frame(daily)
        fig = go.Figure([
            go.Bar(x=frame["date"], y=frame["revenue"], name="Revenue", marker_color=ui.REVENUE),
            go.Scatter(x=frame["date"], y=frame["spend"], name="Spend", mode="lines",
                       line={"color": ui.SPEND, "width": 2}),
        ])
        ui.chart("Revenue trend: campaign revenue and spend per day",
                 ui.style(fig, money_axis=True), daily.select("date", "revenue", "spend"),
                 file_name="revenue_trend")
    else:
        ui.empty("No campaign rows in this date range for the selected businesses and "
                 "branches, so there is no revenue trend to draw.")
with right:
    stages = data.pipeline_stages(src, scope, f)
    if stages.height:
        frame = ui.chart_frame(stages)
        fig = go.Figure(go.Bar(x=frame["value"], y=frame["stage"], orientation="h",
                               text=[ui.count(d) for d in frame["deals"]],
                               marker_color=ui.PALETTE[0]))
        fig.layout.yaxis.autorange = "reversed"
        ui.chart("Pipeline value by stage (deal count on the bars)", ui.style(fig),
                 stages.select("stage", "deals", "value"), file_name="pipeline_by_stage")
    else:
        ui.empty("No deals for the selected businesses and branches.")
