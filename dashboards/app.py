"""Streamlit entry point: `crm-analytics dashboard` serves this file."""

import streamlit as st

st.set_page_config(page_title="CRM analytics", page_icon=":material/monitoring:", layout="wide")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/filter_alt:"),
    st.Page("pages/forecast.py", title="Forecast & risk", icon=":material/trending_up:"),
    st.Page("pages/team.py", title="Team", icon=":material/leaderboard:"),
    st.Page("pages/leads.py", title="Leads & conversion", icon=":material/person_add:"),
    st.Page("pages/campaigns.py", title="Campaigns & ROI", icon=":material/campaign:"),
    st.Page("pages/customers.py", title="Customers", icon=":material/groups:"),
])
navigation.run()
