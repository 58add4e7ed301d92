"""`crm-analytics`, killed with SIGKILL between a batch's event rows and its manifest.

Run as a script (`python tests/helpers/killed_cli.py run --date …`). The event load and its
manifest are written in one warehouse transaction, and the fault tests must prove it by killing
the process exactly between the two. On PostgreSQL a table lock taken by the test holds the
process there; a DuckDB file has no outside lock, so this wrapper makes the process kill itself
when it appends to `raw.event_files`. Production code holds no fault hook: the wrapper patches
the warehouse writers in this process only (the pipeline runs its steps in process).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from crm_cli.cli import main
from ingestion.warehouse import DuckDBWarehouse, PostgresWarehouse


def _kill_before_manifest(cls: type) -> None:
    append = cls.append

    def killing_append(self: Any, schema: str, table: str, batch: Any) -> None:
        if (schema, table) == ("raw", "event_files"):
            os.kill(os.getpid(), signal.SIGKILL)
        append(self, schema, table, batch)

    cls.append = killing_append


if __name__ == "__main__":
    for warehouse_class in (DuckDBWarehouse, PostgresWarehouse):
        _kill_before_manifest(warehouse_class)
    sys.exit(main(sys.argv[1:]))
