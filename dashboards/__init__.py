"""Streamlit dashboards over the marts. `data.py` owns every query; pages only lay out."""
