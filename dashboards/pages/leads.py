"""Leads & conversion: leads by source and cohort month, qualification and win rates by
source, and the cohort view. Layout only."""

import plotly.graph_objects as go

from dashboards import data, ui

ctx = ui.page("Leads & conversion", lead_source=True,
              note="leads by the month they were created (cohort months the range overlaps)")
src, scope, f = ctx.src, ctx.scope, ctx.filters

totals = data.lead_totals(src, scope, f)
before = data.lead_totals(src, scope, data.previous_months(f))
if not totals["leads"]:
    ui.empty("No leads were created in the cohort months of this date range for the selected "
             "businesses, branches and sources.")
    ui.st.stop()

row = ui.st.columns(5)
first, period = data.coverage(src, scope).leads, data.previous_months(f)
ui.kpi(row[0], "Leads", ui.count(totals["leads"]),
       ui.compare(totals["leads"], before["leads"], first, period))
ui.kpi(row[1], "Contact rate", ui.pct(totals["contact_rate"]),
       ui.compare(totals["contact_rate"], before["contact_rate"], first, period, rate=True),
       help="leads that reached contacted / leads")
ui.kpi(row[2], "Qualification rate", ui.pct(totals["qualification_rate"]),
       ui.compare(totals["qualification_rate"], before["qualification_rate"], first, period,
                  rate=True),
       help="leads that reached qualified / leads")
ui.kpi(row[3], "Lead win rate", ui.pct(totals["lead_win_rate"]),
       ui.compare(totals["lead_win_rate"], before["lead_win_rate"], first, period, rate=True),
       help="won leads / leads")
ui.money_kpi(row[4], "Won lead value", totals["won_value"],
             ui.compare(totals["won_value"], before["won_value"], first, period))

by_month = data.leads_by_source_month(src, scope, f)
by_source = data.leads_by_source(src, scope, f)


def by_month_figure() -> go.Figure:
    fig = go.Figure([go.Bar(x=part["cohort_month"], y=part["leads"], name=source)
                     for source, part in ui.chart_frame(by_month).groupby("source")])
    fig.layout.barmode = "stack"
    fig.layout.xaxis.update(dtick="M1", tickformat="%b %Y", ticklabelmode="period")
    return ui.style(fig)


def rates_figure() -> go.Figure:
    frame = ui.chart_frame(by_source)
    fig = go.Figure([
        go.Bar(x=frame["source"], y=frame["qualification_rate"], name="qualification rate",
               marker_color=ui.PALETTE[0]),
        go.Bar(x=frame["source"], y=frame["lead_win_rate"], name="win rate",
               marker_color=ui.PALETTE[1]),
    ])
    fig.layout.yaxis.tickformat = ".0%"
    return ui.style(fig)


left, right = ui.st.columns(2)
with left:
    ui.chart("Leads by source and cohort month", ctx.figure("leads.by_month", by_month_figure),
             by_month.select("cohort_month", "source", "leads", "reached_qualified",
                             "won_leads"), file_name="leads_by_source_month")
with right:
    ui.chart("Qualification and win rate by source", ctx.figure("leads.rates", rates_figure),
             by_source.select("source", "leads", "reached_qualified", "won_leads",
                              "qualification_rate", "lead_win_rate"),
             file_name="lead_rates_by_source")

cohorts = data.lead_cohorts(src, scope, f)
ui.table("Cohorts: how far each month's leads got", cohorts, file_name="lead_cohorts",
         column_config={
             "cohort_month": ui.st.column_config.DateColumn("Cohort month", format="MMM YYYY"),
         })
