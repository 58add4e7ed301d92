"""Dagster orchestration of the CRM pipeline: assets, jobs, schedules, sensors, checks."""
