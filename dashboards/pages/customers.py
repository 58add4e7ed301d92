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
left, right = ui.st.columns([3, 2])
with left:
    if top.height:
        frame = ui.chart_frame(top)
        # A label can be shared by two contacts (same business name): the code keeps the
        # bars apart, the tick shows the name.
        fig = go.Figure(go.Bar(y=frame["contact_code"], x=frame["won_revenue"],
                               orientation="h", marker_color=ui.PALETTE[1],
                               text=[ui.money(v) for v in frame["won_revenue"]],
                               textposition="auto"))
        fig.layout.yaxis.update(autorange="reversed", type="category", tickmode="array",
                                tickvals=frame["contact_code"].tolist(),
                                ticktext=frame["contact_label"].tolist())
        ui.chart("Top 20 contacts by won revenue", ui.style(fig, height=560, money_x=True),
                 top, file_name="top_contacts")
    else:
        ui.empty("No contact here has won a deal yet.")
with right:
    balances = data.balances_by_contact_type(src, scope, f)
    measures = ["account_balance", "advance_balance", "total_sale_due",
                "total_sale_return_due"]
    fig = go.Figure([go.Bar(x=[ui.label(m) for m in measures],
                            y=[row[m] for m in measures], name=row["contact_type"])
                     for row in ui.chart_frame(balances).to_dict("records")])
    ui.chart("Balances and dues by contact type", ui.style(fig, height=520, money_axis=True),
             balances, file_name="balances")

groups = data.customer_groups(src, scope, f)
left, right = ui.st.columns([2, 3])
with left:
    gframe = ui.chart_frame(groups)
    fig = go.Figure(go.Pie(labels=gframe["customer_group"], values=gframe["won_revenue"],
                           hole=0.5, sort=False))
    ui.chart("Won revenue by customer group", ui.style(fig), groups,
             file_name="customer_groups_chart")
with right:
    ui.table("Customer groups", groups, file_name="customer_groups")
