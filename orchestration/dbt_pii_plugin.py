"""dbt-duckdb plugin: puts the PII key's HMAC pads into every DuckDB session dbt opens.

Listed under `plugins:` of the DuckDB output in `profiles.yml`. DuckDB session variables are
per connection and per cursor, so both hooks set them. The values travel as bound parameters,
never as SQL text, so no query log or dbt artefact can show them (see `orchestration.pii`).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from orchestration.pii import DUCKDB_VARIABLES, pads_from_environment


class Plugin(BasePlugin):
    """Sets `crm_pii_ipad` / `crm_pii_opad`; does nothing when no key is configured."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._pads = pads_from_environment()

    def _set(self, conn: Any) -> None:
        if self._pads is None:
            return
        for name, pad in zip(DUCKDB_VARIABLES, self._pads, strict=True):
            conn.execute(f"set variable {name} = ?", [pad])

    def configure_connection(self, conn: Any) -> None:
        self._set(conn)

    def configure_cursor(self, cursor: Any) -> None:
        self._set(cursor)
