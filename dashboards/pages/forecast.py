"""Forecast & risk: the weighted forecast by expected close month (best case, weighted,
already won) and the open deals at risk (overdue, stale, slipped), sortable. Layout only."""

import plotly.graph_objects as go

from dashboards import data, ui

#: The deals-at-risk table lists this many, most overdue first: a list a manager reads (a
#: large business has hundreds of thousands at risk); the CSV download holds all of them.
RISK_TABLE_ROWS = 1000

ctx = ui.page("Forecast & risk", dates=False, owner=True,
              note="open deals as of the as-of date (no date filter)")
src, scope, f = ctx.src, ctx.scope, ctx.filters

forecast = data.forecast_by_month(src, scope, f)
risk = data.risk_totals(src, scope, f)
if not forecast.height and not risk["deals"]:
    ui.empty("No open deals and nothing won from the as-of month on for the selected "
             "businesses, branches and owners.")
    ui.st.stop()

this_month = forecast.head(1).to_dicts()[0] if forecast.height else {}
row = ui.st.columns(5)
ui.money_kpi(row[0], "Weighted forecast", forecast["weighted_amount"].sum(),
             help="Open deals' amounts × their stage's win probability, all months")
ui.money_kpi(row[1], "Best case", forecast["best_case_amount"].sum(),
             help="Every open deal's amount, all months")
ui.money_kpi(row[2], "Won this month", this_month.get("won_amount"),
             help=f"{ui.count(this_month.get('won_deals'))} deals already won in the as-of "
                  "month")
ui.money_kpi(row[3], "At risk", risk["amount"],
             help=f"{ui.count(risk['deals'])} open deals overdue or stale")
ui.kpi(row[4], "Overdue deals", ui.count(risk["overdue_deals"]),
       help=f"Open deals whose close date is past ({ui.money_exact(risk['overdue_amount'])}); "
            f"{ui.count(risk['stale_deals'])} deals are stale (no update in 30 days)")

if forecast.height and ui.is_zero(forecast["weighted_amount"].sum()) \
        and not ui.is_zero(forecast["best_case_amount"].sum()):
    ui.st.caption("The weighted forecast is 0: no open stage has a learned win probability "
                  "yet (the deal history needs runs on several days, or set one in "
                  "stage_probability_overrides.csv).")


def forecast_figure() -> go.Figure:
    frame = ui.chart_frame(forecast)
    months = [ui.month_label(m) for m in forecast["month"].to_list()]
    fig = go.Figure([
        go.Bar(x=months, y=frame["won_amount"], name="Already won", marker_color=ui.REVENUE),
        go.Bar(x=months, y=frame["weighted_amount"], name="Weighted open",
               marker_color=ui.PALETTE[0]),
        go.Scatter(x=months, y=frame["won_amount"] + frame["best_case_amount"],
                   name="Best case (won + every open deal)", mode="lines+markers",
                   line={"color": ui.PALETTE[2], "dash": "dot"}),
    ])
    fig.layout.barmode = "stack"
    return ui.style(fig, money_axis=True, every_tick=True)


if forecast.height:
    ui.chart("Forecast by expected close month: already won, weighted open pipeline and best "
             "case (overdue deals count in the as-of month)",
             ctx.figure("forecast.by_month", forecast_figure), forecast,
             file_name="forecast_by_month")

at_risk = data.deals_at_risk(src, scope, f, limit=RISK_TABLE_ROWS)
if at_risk.height:
    shown_rows = ("" if risk["deals"] <= at_risk.height else
                  f"; the {ui.count(at_risk.height)} most overdue shown, every one in the CSV")
    ui.table(f"Deals at risk ({ui.count(risk['deals'])}{shown_rows}): overdue, stale (no "
             "update in 30 days) or with a close date that slipped; click a column to sort",
             ctx.names.with_names(at_risk), file_name="deals_at_risk",
             csv=lambda: ctx.names.with_names(data.deals_at_risk(src, scope, f)))
else:
    ui.empty("No open deal is overdue or stale for the selected businesses, branches and "
             "owners.")
