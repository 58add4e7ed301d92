"""A Spark warehouse's campaign events, kept as Parquet parts beside its staging file.

On DuckDB and PostgreSQL the event loader inserts the valid lines into `raw.campaign_events`.
A Spark warehouse reads `raw` from the lake as Parquet, so inserting them into the staging file
first would write every event twice: into DuckDB's own storage, then, at publish, read back
and written again as Parquet (BENCHMARKS.md, "The lake at `large`"). Here each parsed batch's
valid lines are written once, as one Parquet part in `event_parts_folder(<staging file>)`
(crm_core/spark.py), and the lake's version of the table links those files
(ingestion/spark_lake.py).

What keeps the loader's rules:

- **Exactly once, never half-written.** A part is written under a hidden name and renamed when
  whole, and counts only once it is listed in `raw.campaign_event_parts`, which changes in the
  load's one transaction, with the manifest. A load that fails leaves files nobody lists; the
  next load deletes them (`sweep`), as it deletes the parts a replaced landing file superseded.
- **Still a table to query.** `raw.campaign_events` in the staging file is a view over the listed
  parts, made again in the same transaction, so the loader's SQL, the tests and anyone looking
  at the staging file read it as before.
- **A replaced landing file** drops its rows by writing each part that held them again without
  them, under a new name (parts never change once listed).
- **A staging file from before the parts** (its `raw.campaign_events` a table) has its rows moved
  into one part the first time it is loaded again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crm_core.errors import CrmError, first_line
from crm_core.sql import quote_ident, quote_literal
from ingestion.warehouse import duckdb_type

#: The list of parts that make up `raw.campaign_events` (the part's file name and rows).
PARTS_TABLE = "campaign_event_parts"
EVENTS_VIEW = "campaign_events"
#: How the parts are read: as the files they are, never with columns made up from
#: `key=value` folder names somewhere in their path (DuckDB's Hive partitioning guess).
PLAIN = "hive_partitioning = false"


class EventParts:
    """The parts folder of one staging file, used through the staging file's connection `con`
    inside the load's transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, schema: str,
                 events: pa.Schema) -> None:
        self.con = con
        self.folder = folder
        self.schema = schema
        self.events = events

    @property
    def _parts(self) -> str:
        return f"{quote_ident(self.schema)}.{PARTS_TABLE}"

    @property
    def _view(self) -> str:
        return f"{quote_ident(self.schema)}.{EVENTS_VIEW}"

    def ensure(self) -> None:
        """The parts list and the view exist, the view reading this folder (the staging file
        and its folder may have moved together); a `campaign_events` table of an older
        staging file becomes the first part."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CrmError(f"event parts folder {self.folder} cannot be created: "
                           f"{first_line(exc)}") from None
        self.con.execute(f"create schema if not exists {quote_ident(self.schema)}")
        self.con.execute(f"create table if not exists {self._parts} "
                         "(part varchar not null, rows bigint not null)")
        kind = self.con.execute(
            "select table_type from information_schema.tables "
            "where table_schema = ? and table_name = ?", [self.schema, EVENTS_VIEW]).fetchall()
        if kind and kind[0][0] == "BASE TABLE":
            # one part per load, as the loads that come after: replacing a landing file then
            # rewrites its load's part, not the whole history
            loads = self.con.execute(f"select load_id, count(*) from {self._view} "
                                     "group by load_id order by load_id").fetchall()
            for n, (load, rows) in enumerate(loads):
                self._write(f"select * from {self._view} where load_id is not distinct from ?",
                            [load], f"moved-{uuid.uuid4().hex[:12]}-{n:05d}", rows)
            self.con.execute(f"drop table {self._view}")
        self.refresh_view()

    def add(self, select: str, params: Sequence[Any], load_id: str, batch: int,
            rows: int) -> None:
        """The rows of `select` (the batch's valid lines) as a new part."""
        if rows:
            self._write(select, params, f"{load_id}-{batch:05d}", rows)

    def drop_files(self, file_paths: Sequence[str], load_id: str) -> None:
        """Remove every row of the landing files `file_paths` (replaced by a new version)."""
        if not file_paths or not self.listed():
            return
        hits = self.con.execute(
            f"select parse_filename(filename), count(*) from read_parquet({self._files()}, "
            f"filename = true, {PLAIN}) where list_contains(?, file_path) group by all",
            [list(file_paths)]).fetchall()
        for n, (part, _) in enumerate(sorted(hits)):
            keep = self.con.execute(
                f"select count(*) from read_parquet(?, {PLAIN}) "
                "where not list_contains(?, file_path)",
                [str(self.folder / part), list(file_paths)]).fetchone()[0]
            self.con.execute(f"delete from {self._parts} where part = ?", [part])
            if keep:
                self._write(f"select * from read_parquet(?, {PLAIN}) "
                            "where not list_contains(?, file_path)",
                            [str(self.folder / part), list(file_paths)],
                            f"{load_id}-kept{n:05d}", keep)

    def listed(self) -> list[str]:
        """The parts that make up the table, by name (row order carries no meaning: dbt
        orders events by landing date, file and line)."""
        return [r[0] for r in self.con.execute(
            f"select part from {self._parts} order by part").fetchall()]

    def refresh_view(self) -> None:
        """`raw.campaign_events` as the union of the listed parts (an empty table with the
        loader's columns while there are none)."""
        listed = self.listed()
        missing = [part for part in listed if not (self.folder / part).is_file()]
        if missing:
            raise CrmError(f"{len(missing)} campaign event part(s) listed in the staging file "
                           f"are missing from {self.folder} (first: {missing[0]}): the staging "
                           "file and its parts folder belong together")
        if listed:
            body = f"select * from read_parquet({self._files()}, {PLAIN})"
        else:
            body = "select " + ", ".join(
                f"cast(null as {duckdb_type(f.type)}) as {quote_ident(f.name)}"
                for f in self.events) + " where false"
        self.con.execute(f"create or replace view {self._view} as {body}")

    def sync(self) -> None:
        """Make the parts' names durable before the list that holds them commits (DuckDB syncs
        each file it writes; a rename lives in the folder)."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sweep(self) -> None:
        """Delete the files of the folder that the list does not hold: what a failed load
        left, at the start of a load, and the parts a replacement superseded, once it has
        committed. Nothing else writes the folder meanwhile: the run's write lock keeps other
        loads out."""
        listed = set(self.listed())
        try:
            for path in self.folder.iterdir():
                if path.is_file() and path.name not in listed:
                    path.unlink()
        except OSError as exc:
            raise CrmError(f"event parts folder {self.folder} cannot be cleaned: "
                           f"{first_line(exc)}") from None

    def _files(self) -> str:
        return "[" + ", ".join(quote_literal(str(self.folder / p)) for p in self.listed()) + "]"

    def _write(self, select: str, params: Sequence[Any], stem: str, rows: int) -> None:
        name = f"{stem}.parquet"
        partial = self.folder / f".{name}.partial"
        self.con.execute(f"copy ({select}) to {quote_literal(str(partial))} "
                         "(format parquet, compression zstd)", list(params))
        os.replace(partial, self.folder / name)
        self.con.execute(f"insert into {self._parts} values (?, ?)", [name, rows])
