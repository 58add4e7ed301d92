"""Dagster orchestration of the CRM pipeline, and the `crm-analytics` command line."""
