"""Overview: the headline KPIs against the previous period of equal length (only when data
covers it), bookings and new pipeline per month, and the pipeline by stage. Layout only;
numbers come from `dashboards.data`."""

import plotly.graph_objects as go

from dashboards import data, ui

ctx = ui.page("CRM overview")
src, scope, f = ctx.src, ctx.scope, ctx.filters
previous = f.previous_period()
months_before = data.previous_months(f)
covered = data.coverage(src, scope)

pipe = data.pipeline_totals(src, scope, f)
leads = data.lead_totals(src, scope, f)
leads_before = data.lead_totals(src, scope, months_before)
camp = data.campaign_totals(src, scope, f)
camp_before = data.campaign_totals(src, scope, previous)
sales = data.sales_totals(src, scope, f)
sales_before = data.sales_totals(src, scope, months_before)

SNAPSHOT = ("Snapshot at the as-of date for the selected businesses and branches. The "
            "pipeline mart holds no history, so there is no previous period to compare with.")
PERIOD = "Change against the previous period of equal length."
MONTHS = ("Over the months the date range overlaps; change against the same number of months "
          "before.")

row = ui.st.columns(4)
ui.money_kpi(row[0], "Open pipeline", pipe["open_amount"],
             help=f"Sum of open deals' amounts ({ui.count(pipe['open_deals'])} deals). "
                  f"{SNAPSHOT}")
ui.money_kpi(row[1], "Bookings", sales["won_amount"],
             ui.compare(sales["won_amount"], sales_before["won_amount"], covered.deals,
                        months_before),
             help=f"Won deals' amounts by won date ({ui.count(sales['won_deals'])} deals). "
                  f"{MONTHS}")
ui.money_kpi(row[2], "New pipeline", sales["new_pipeline"],
             ui.compare(sales["new_pipeline"], sales_before["new_pipeline"], covered.deals,
                        months_before),
             help=f"Amounts of the deals created ({ui.count(sales['new_deals'])} deals). "
                  f"{MONTHS}")
ui.kpi(row[3], "Win rate", ui.pct(pipe["win_rate"]),
       help=f"Won deals / (won + lost deals), all time. {SNAPSHOT}")
row = ui.st.columns(4)
ui.money_kpi(row[0], "Campaign revenue", camp["revenue"],
             ui.compare(camp["revenue"], camp_before["revenue"], covered.campaigns, previous),
             help=PERIOD)
ui.money_kpi(row[1], "Campaign spend", camp["spend"],
             ui.compare(camp["spend"], camp_before["spend"], covered.campaigns, previous),
             inverse=True, help=PERIOD)
ui.kpi(row[2], "Lead qualification rate", ui.pct(leads["qualification_rate"]),
       ui.compare(leads["qualification_rate"], leads_before["qualification_rate"],
                  covered.leads, months_before, rate=True),
       help="Leads that reached qualified / leads, over the lead cohort months the date range "
            "overlaps; change against the same number of months before.")
ui.kpi(row[3], "Leads", ui.count(leads["leads"]),
       ui.compare(leads["leads"], leads_before["leads"], covered.leads, months_before),
       help="Leads created in the cohort months the date range overlaps.")

monthly = data.sales_by_month(src, scope, f)


def bookings_figure() -> go.Figure:
    frame = ui.chart_frame(monthly)
    months = [ui.month_label(m) for m in monthly["month"].to_list()]
    fig = go.Figure([
        go.Bar(x=months, y=frame["won_amount"], name="Bookings (won)",
               marker_color=ui.REVENUE, text=[ui.money(v) for v in frame["won_amount"]],
               textposition="outside", cliponaxis=False),
        go.Bar(x=months, y=frame["new_pipeline"], name="New pipeline",
               marker_color=ui.PALETTE[0],
               text=[ui.money(v) for v in frame["new_pipeline"]],
               textposition="outside", cliponaxis=False),
    ])
    fig.layout.barmode = "group"
    return ui.style(fig, money_axis=True, every_tick=True)


def stages_figure() -> go.Figure:
    frame = ui.chart_frame(stages)
    fig = go.Figure(go.Bar(x=frame["value"], y=frame["stage"], orientation="h",
                           text=[f"{ui.money(v)} · {ui.count(d)} deals"
                                 for v, d in zip(frame["value"], frame["deals"], strict=True)],
                           textposition="auto", marker_color=ui.PALETTE[0]))
    fig.layout.yaxis.autorange = "reversed"
    return ui.style(fig, money_x=True)


left, right = ui.st.columns([3, 2])
with left:
    if monthly.height:
        ui.chart("Bookings and new pipeline per month",
                 ctx.figure("overview.bookings", bookings_figure),
                 monthly.select("month", "won_deals", "won_amount", "new_deals",
                                "new_pipeline", "lost_deals", "lost_amount", "win_rate"),
                 file_name="bookings_by_month")
    else:
        ui.empty("No deal was created, won or lost in the months of this date range for the "
                 "selected businesses and branches.")
with right:
    stages = data.pipeline_stages(src, scope, f)
    if stages.height:
        ui.chart("Pipeline value by stage", ctx.figure("overview.stages", stages_figure),
                 stages.select("stage", "deals", "value"), file_name="pipeline_by_stage")
    else:
        ui.empty("No deals for the selected businesses and branches.")
