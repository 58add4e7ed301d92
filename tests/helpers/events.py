"""Helpers for tests that write landing files and read what the loader made of them."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm_core.urls import WarehouseTarget, parse_warehouse_url
from ingestion.warehouse import Warehouse, open_warehouse


def event_line(eid: str, *, etype: str = "erp.campaign.click",
               time: str = "2026-03-01T10:00:00Z", source: str = "erp/crm/1",
               **data: Any) -> str:
    """One valid CloudEvents line (campaign 7 unless `data` says otherwise)."""
    data.setdefault("campaign_id", 7)
    return json.dumps({"specversion": "1.0", "id": eid, "source": source, "type": etype,
                       "time": time, "data": data})


def land(events: Path, landing: str, name: str, payload: bytes) -> Path:
    """Write `payload` (gzipped when `name` ends in .gz) as `<events>/<landing>/<name>`."""
    folder = events / landing
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(payload, mtime=0) if name.endswith(".gz") else payload)
    return path


def land_lines(events: Path, landing: str, name: str, lines: list[str]) -> Path:
    return land(events, landing, name, ("\n".join(lines) + "\n").encode())


@contextmanager
def opened(url: str, cwd: Path) -> Iterator[Warehouse]:
    wh = open_warehouse(parse_warehouse_url(url, cwd))
    try:
        yield wh
    finally:
        wh.close()


def rows(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in wh.fetchall(sql)]


def spark_staging(root: Path) -> WarehouseTarget:
    """A Spark warehouse whose staging file is `<root>/staging.duckdb`: the loaders write into
    that file, and the event loader keeps the valid events as Parquet parts beside it."""
    return WarehouseTarget(kind="spark", spark_method="session",
                           duckdb_path=root / "staging.duckdb")
