"""The ERP sync: the source tables into the warehouse schema `raw`, full or incremental."""
