"""Customers: top contacts by won revenue, balances and dues, customer groups. Layout only."""

import plotly.graph_objects as go
import polars as pl

from dashboards import data, ui

ctx = ui.page("Customers", dates=False,
              note="balances and lifetime revenue of live contacts (no date filter)")
src, scope, f = ctx.src, ctx.scope, ctx.filters

totals = data.contact_totals(src, scope, f)
if not totals["contacts"]:
    ui.empty("No contacts for the selected businesses and branches (soft-deleted contacts are "
             "left out).")
    ui.st.stop()

row = ui.st.columns(4)
ui.kpi(row[0], "Contacts", ui.count(totals["contacts"]))
ui.money_kpi(row[1], "Won revenue", totals["won_revenue"])
ui.money_kpi(row[2], "Sales due", totals["total_sale_due"])
ui.money_kpi(row[3], "Account balance", totals["account_balance"])

top = data.top_contacts(src, scope, f)
labels = data.contact_labels(src, scope, top["contact_pk"].to_list())
top = ctx.names.with_names(top.insert_column(
    2, pl.Series("contact_label", [labels.get(pk, code) for pk, code in
                                      top.select("contact_pk", "contact_code").iter_rows()],
                    dtype=pl.String)))
balances = data.balances_by_contact_type(src, scope, f)
groups = data.customer_groups(src, scope, f)
MEASURES = ["account_balance", "advance_balance", "total_sale_due", "total_sale_return_due"]


def top_figure() -> go.Figure:
    frame = ui.chart_frame(top)
    # A label can be shared by two contacts (same business name): the code keeps the bars
    # apart, the tick shows the name.
    fig = go.Figure(go.Bar(y=frame["contact_code"], x=frame["won_revenue"], orientation="h",
                           marker_color=ui.PALETTE[1],
                           text=[ui.money(v) for v in frame["won_revenue"]],
                           textposition="auto"))
    fig.layout.yaxis.update(autorange="reversed", type="category", tickmode="array",
                            tickvals=frame["contact_code"].tolist(),
                            ticktext=frame["contact_label"].tolist())
    return ui.style(fig, height=560, money_x=True)


def balances_figure() -> go.Figure:
    fig = go.Figure([go.Bar(x=[ui.label(m) for m in MEASURES], y=[row[m] for m in MEASURES],
                            name=row["contact_type"])
                     for row in ui.chart_frame(balances).to_dict("records")])
    return ui.style(fig, height=520, money_axis=True)


def groups_figure() -> go.Figure:
    frame = ui.chart_frame(groups)
    return ui.style(go.Figure(go.Pie(labels=frame["customer_group"], values=frame["won_revenue"],
                                     hole=0.5, sort=False)))


left, right = ui.st.columns([3, 2])
with left:
    if top.height:
        ui.chart("Top 20 contacts by won revenue", ctx.figure("customers.top", top_figure),
                 top, file_name="top_contacts")
    else:
        ui.empty("No contact here has won a deal yet.")
with right:
    ui.chart("Balances and dues by contact type",
             ctx.figure("customers.balances", balances_figure), balances,
             file_name="balances")

left, right = ui.st.columns([2, 3])
with left:
    ui.chart("Won revenue by customer group", ctx.figure("customers.groups", groups_figure),
             groups, file_name="customer_groups_chart")
with right:
    ui.table("Customer groups", groups, file_name="customer_groups")
