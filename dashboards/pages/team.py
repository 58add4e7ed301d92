"""Team: the owner leaderboard for a month or quarter (this one and the previous ones), sales
velocity per owner and close-date slippage. Layout only."""

import plotly.graph_objects as go

from dashboards import data, ui

ctx = ui.page("Team", dates=False, owner=True,
              note="periods by the deals' created, won and lost dates")
src, scope, f = ctx.src, ctx.scope, ctx.filters

left, right = ui.st.columns([2, 3])
with left:
    # The period lives in the URL like the filters (`?period=quarter&at=2026-10-01`).
    wanted = ui.st.query_params.get("period", "month")
    period_type = ui.st.segmented_control(
        "Period", ["month", "quarter"], key="team_period", format_func=str.capitalize,
        default=wanted if wanted in ("month", "quarter") else "month") or "month"
    ui.st.query_params["period"] = period_type
periods = data.leaderboard_periods(src, scope, period_type)
if not periods:
    ui.empty("No deal was created, won or lost for the selected businesses and branches.")
    ui.st.stop()


def _period_label(start: object) -> str:
    if period_type == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"  # type: ignore[attr-defined]
    return f"{start:%b %Y}"


with right:
    at = ui.st.query_params.get("at", "")
    index = next((i for i, p in enumerate(periods) if p.isoformat() == at), 0)
    period = ui.st.selectbox("Which", periods, format_func=_period_label, index=index,
                             key=f"team_{period_type}")
    ui.st.query_params["at"] = period.isoformat()
board = data.leaderboard(src, scope, f, period_type, period)
totals = {k: board[k].sum() for k in ("won_amount", "won_deals", "lost_deals", "new_pipeline")}
row = ui.st.columns(5)
ui.money_kpi(row[0], "Bookings", totals["won_amount"],
             help=f"{ui.count(totals['won_deals'])} deals won in {_period_label(period)}")
ui.kpi(row[1], "Deals won", ui.count(totals["won_deals"]))
ui.kpi(row[2], "Deals lost", ui.count(totals["lost_deals"]))
decided = int(totals["won_deals"] or 0) + int(totals["lost_deals"] or 0)
ui.kpi(row[3], "Win rate", ui.pct(int(totals["won_deals"] or 0) / decided if decided else None),
       help="won / (won + lost) deals in the period")
ui.money_kpi(row[4], "New pipeline", totals["new_pipeline"])

top = board.head(15)


def bookings_figure() -> go.Figure:
    frame = ui.chart_frame(top)
    fig = go.Figure(go.Bar(y=top["owner_name"].to_list(), x=frame["won_amount"],
                           orientation="h", marker_color=ui.REVENUE,
                           text=[ui.money(v) for v in frame["won_amount"]], textposition="auto"))
    fig.layout.yaxis.update(autorange="reversed", type="category")
    return ui.style(fig, height=max(340, 30 * top.height), money_x=True)


left, right = ui.st.columns([2, 3])
with left:
    if top.height:
        ui.chart(f"Bookings by owner, {_period_label(period)} (top 15)",
                 ctx.figure("team.bookings", bookings_figure, period_type, period),
                 ctx.names.with_names(top), file_name="leaderboard_chart")
with right:
    ui.table(f"Leaderboard, {_period_label(period)}", board, file_name="leaderboard")

ui.st.subheader("Velocity and slippage")
ui.st.caption("Velocity: open deals × win rate × average deal size ÷ average cycle days, over "
              "deals won or lost in the 365 days to the as-of date: the revenue an owner's "
              "pipeline brings per day. Slippage: how often a close date moved later, and by "
              "how many days per move.")
velocity = data.velocity_by_owner(src, scope, f)
overall = data.velocity_totals(src, scope, f)
row = ui.st.columns(4)
ui.money_kpi(row[0], "Velocity per day", overall["velocity_per_day"])
ui.money_kpi(row[1], "Avg deal size", overall["avg_deal_size"])
ui.kpi(row[2], "Avg cycle (days)", "–" if overall["avg_cycle_days"] is None
       else f"{overall['avg_cycle_days']:,.1f}", help="won date − created date, won deals")
ui.kpi(row[3], "Win rate (365 days)", ui.pct(overall["win_rate"]))
shown = velocity.filter(velocity["velocity_per_day"].is_not_null()).head(15)


def velocity_figure() -> go.Figure:
    frame = ui.chart_frame(shown)
    fig = go.Figure(go.Bar(y=shown["owner_name"].to_list(), x=frame["velocity_per_day"],
                           orientation="h", marker_color=ui.PALETTE[0],
                           text=[ui.money(v) for v in frame["velocity_per_day"]],
                           textposition="auto"))
    fig.layout.yaxis.update(autorange="reversed", type="category")
    return ui.style(fig, height=max(340, 30 * shown.height), money_x=True)


left, right = ui.st.columns(2)
with left:
    if shown.height:
        ui.chart("Sales velocity per day by owner (top 15)",
                 ctx.figure("team.velocity", velocity_figure),
                 ctx.names.with_names(velocity), file_name="velocity")
    else:
        ui.empty("No owner has won a deal in the last 365 days, so there is no velocity.")
with right:
    ui.table("Close-date slippage by owner", data.slippage_by_owner(src, scope, f),
             file_name="slippage")
