"""The synthetic ERP and event files behind `crm-analytics generate` and the demo (never part
of a production run)."""
