"""Asset definitions, one module per layer: ERP tables, event files, dbt models."""
