"""Streamlit entry point: `crm-analytics dashboard` serves this file."""

import streamlit as st

st.set_page_config(page_title="CRM analytics", page_icon="📈", layout="wide")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
    st.Page("pages/pipeline.py", title="Pipeline", icon="🧭"),
    st.Page("pages/leads.py", title="Leads & conversion", icon="🎯"),
    st.Page("pages/campaigns.py", title="Campaigns & ROI", icon="📣"),
    st.Page("pages/customers.py", title="Customers", icon="👥"),
])
navigation.run()
