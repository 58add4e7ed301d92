"""Streamlit entry point: `crm-analytics dashboard` serves this file."""

import streamlit as st

st.set_page_config(page_title="CRM analytics", page_icon="📈", layout="wide")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
])
navigation.run()
