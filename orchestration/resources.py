"""Dagster resources. Each reads the typed `Settings` when a run starts, never at import, so
the definitions load anywhere and no secret ends up in Dagster's run config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource

from crm_core.settings import Settings
from ingestion.warehouse import Warehouse, open_warehouse


class CrmSettingsResource(ConfigurableResource):
    """The pipeline's configuration (docs/contract.md section 1), resolved from the environment."""

    def settings(self) -> Settings:
        return Settings.from_env()

    @contextmanager
    def warehouse(self) -> Iterator[Warehouse]:
        """A warehouse connection for one step; closed before dbt opens the same file."""
        wh = open_warehouse(self.settings().warehouse)
        try:
            yield wh
        finally:
            wh.close()
