"""Run-level configuration every step shares: the as-of date."""

from __future__ import annotations

from datetime import date

from dagster import Config

from crm_core.errors import CrmError
from crm_core.settings import Settings


class AsOfConfig(Config):
    """`as_of_date` (YYYY-MM-DD): the day the run reports on. Empty means today in
    `CRM_REPORTING_TZ`. Event folders dated after it are not loaded."""

    as_of_date: str = ""

    def resolve(self, settings: Settings) -> date:
        if not self.as_of_date:
            return settings.today()
        try:
            return date.fromisoformat(self.as_of_date)
        except ValueError:
            raise CrmError(f"as-of date {self.as_of_date!r} is not YYYY-MM-DD") from None
