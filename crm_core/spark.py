"""How a Spark warehouse is laid out in the lake, and how an in-process Spark is started.

One lake (`CRM_LAKE_PATH`) holds everything a Spark warehouse keeps: the `raw` tables'
Parquet files (`<lake>/raw/<table>/<version>/`), Spark's managed tables (`<lake>/warehouse`,
the dbt models) and, for `spark+session://`, the catalog (an embedded Derby metastore in
`<lake>/metastore`). A Thrift server (`spark://`) brings its own catalog and warehouse folder;
the lake then only holds `raw`, and may be a bucket the cluster reads, mounted on this machine
(`Lake`).

Both the dbt process and the ingestion start Spark with `session_submit_args`, one after the
other (the embedded metastore admits one process at a time). Stdlib only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from crm_core.errors import CrmError

#: The variable that hands an HTTPS endpoint's access token (`spark+http://`) to dbt's profile
#: and to the pipeline's Spark jobs: dbt scrubs `DBT_ENV_SECRET_*` values from its logs, and
#: the jobs read it from their environment, never from their command line.
SPARK_TOKEN_ENV = "DBT_ENV_SECRET_CRM_SPARK_TOKEN"

#: Spark's own settings every session needs: timestamps are instants shown in UTC, so that a
#: date or month in the reporting zone comes only from `to_reporting_timestamp`.
SESSION_SQL_CONF = {"spark.sql.session.timeZone": "UTC"}

#: Settings of the in-process Spark (`spark+session://`): two local cores and few shuffle
#: partitions, the size of the data one machine handles; no web UI. The JVM's heap is 4 GB, not
#: Spark's default 1 GB: Spark plans a join from a table's Parquet size and broadcasts tables
#: that are small on disk and many times larger in memory, which at `large` (millions of deal
#: stage rows) fails the build with "Not enough memory to build and broadcast the table".
LOCAL_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


#: A URL's scheme and colon (`s3a://`, `dbfs:/`, `file:/`), as Hadoop's paths spell them.
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_local_lake(lake: str) -> bool:
    """A folder on this machine (a path, or a `file:` URL)."""
    return not URL_SCHEME.match(lake) or lake.startswith("file:")


def local_folder(lake: str) -> Path:
    """The folder of a local lake (`file:///x` and `file:/x` are `/x`)."""
    if lake.startswith("file:"):
        return Path("/" + lake.removeprefix("file:").lstrip("/"))
    return Path(lake)


@dataclass(frozen=True)
class Lake:
    """The lake under its two names: `url`, the name Spark knows it by (the catalog's table
    locations, the folders a Thrift server writes), and `folder`, where this machine reads and
    writes the same files.

    A local lake has one name. A lake on object storage (`s3a://bucket/crm`) is written here
    through a mount of the same storage (`CRM_LAKE_MOUNT`: s3fs, gcsfuse, blobfuse2): the
    Python side writes files into the folder, Spark's executors read them from the bucket.
    `folder` is None where this machine reaches no such folder."""

    url: str
    folder: Path | None
    #: `folder` is a mount: it must exist (a mount that is down must not fill the local disk).
    mounted: bool = False

    @classmethod
    def of(cls, lake: str | Lake, mount: str | Path | None = None) -> Lake:
        """`lake` as a Lake: a folder or `file:` URL names itself; another URL is reached
        through `mount`, if any."""
        if isinstance(lake, Lake):
            return lake
        url = lake.rstrip("/") or "/"
        if mount:
            return cls(url, Path(mount), mounted=True)
        return cls(url, local_folder(url) if is_local_lake(url) else None)

    def local(self) -> Path:
        """The folder this machine writes, or `CrmError` naming what to set."""
        if self.folder is None:
            raise CrmError(f"CRM_LAKE_PATH {self.url} is not a folder on this machine: mount "
                           "the same storage here and set CRM_LAKE_MOUNT to that folder "
                           "(docs/spark.md)")
        if self.mounted and not self.folder.is_dir():
            raise CrmError(f"CRM_LAKE_MOUNT {self.folder} is not a folder: mount {self.url} "
                           "there first")
        return self.folder

    def url_of(self, path: Path) -> str:
        """Spark's name of `path`, a file or folder under `folder`."""
        return f"{self.url.rstrip('/')}/{path.relative_to(self.local()).as_posix()}"


def event_parts_folder(staging: Path) -> Path:
    """Where the staging file `staging` keeps the campaign events as Parquet parts: beside it,
    so that the lake's versions, on the same disk by default, link the parts instead of
    copying them (ingestion/events/parts.py)."""
    return staging.with_name(f"{staging.name}.events")


def session_conf(lake: str) -> dict[str, str]:
    """Every setting of an in-process Spark on this lake."""
    conf = {**LOCAL_CONF, **SESSION_SQL_CONF,
            "spark.sql.warehouse.dir": f"{lake.rstrip('/')}/warehouse"}
    if is_local_lake(lake):
        metastore = local_folder(lake) / "metastore"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={metastore};create=true")
        conf["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={local_folder(lake)}"
    return conf


def session_submit_args(lake: str) -> str:
    """`PYSPARK_SUBMIT_ARGS` that start pyspark's JVM with `session_conf` (read by pyspark in
    whichever process creates the first session: dbt's, or the ingestion's)."""
    args = []
    for key, value in session_conf(lake).items():
        args += ["--conf", f"{key}={value}"]
    return shlex.join([*args, "pyspark-shell"])
