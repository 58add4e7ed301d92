"""Overview: the headline KPIs and where revenue comes from. Layout only; queries live in
`dashboards.data`."""

import plotly.express as px
import streamlit as st

from dashboards import data
from ingestion.errors import CrmError
from orchestration.settings import Settings


def _money(value: object) -> str:
    return f"{float(value):,.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


st.title("CRM overview")
try:
    settings = Settings.from_env()
    kpis = data.headline_kpis(settings)
    as_of = data.data_as_of(settings)
    stages = data.pipeline_by_stage(settings)
    daily = data.campaign_daily(settings)
except CrmError as exc:
    st.warning(f"No data to show: {exc}")
    st.stop()

if as_of:
    st.caption(f"Data as of {as_of['as_of_date']:%Y-%m-%d} · last successful run "
               f"{as_of['finished_at']:%Y-%m-%d %H:%M} UTC")

cols = st.columns(5)
cols[0].metric("Open pipeline", _money(kpis["open_pipeline"]))
cols[1].metric("Won revenue", _money(kpis["won_revenue"]))
cols[2].metric("Win rate", _pct(kpis["win_rate"]))
cols[3].metric("Lead qualification rate", _pct(kpis["qualification_rate"]))
cols[4].metric("Campaign ROI", _pct(kpis["roi"]))

left, right = st.columns(2)
with left:
    st.subheader("Pipeline by stage")
    if stages.height:
        st.plotly_chart(px.bar(stages.to_pandas(), x="stage", y="value", text="deals",
                               labels={"value": "Deal value", "stage": "Stage"}),
                        use_container_width=True)
    else:
        st.info("No deals yet.")
with right:
    st.subheader("Campaign revenue and spend per day")
    if daily.height:
        st.plotly_chart(px.line(daily.to_pandas(), x="date", y=["revenue", "spend"],
                                labels={"value": "Amount", "date": "Date", "variable": ""}),
                        use_container_width=True)
    else:
        st.info("No campaign activity yet.")
