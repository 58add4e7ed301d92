"""The dbt project as it recorded deal history with a dbt snapshot: the reference the
append-only versions model (`crm_deal_versions`) must equal on DuckDB and PostgreSQL, and the
builder of warehouses that hold the snapshot's history for the migration tests.

`legacy_project(folder)` copies today's dbt project into `folder` and puts back the snapshot
`snp_erp__crm_deals` and the `int_crm_deal_versions` that read it (the files beside this module,
verbatim); everything downstream (the history marts) is today's code. `run_dbt(..., project=…)`
builds it with the real dbt CLI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.dbt import REPO_ROOT

LEGACY = Path(__file__).with_name("legacy_deal_history")

#: The relation the snapshot recorded into, and the versions model that replaces it.
SNAPSHOT = "snapshots.snp_erp__crm_deals"
VERSIONS = "snapshots.crm_deal_versions"


def legacy_project(folder: Path) -> Path:
    """A dbt project in `folder` that records deal history with the snapshot; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    project = folder / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", project,
                    ignore=shutil.ignore_patterns("target", "logs"))
    shutil.rmtree(project / "models" / "snapshots")
    # the singular tests and the versions' unit tests name the versions model
    shutil.rmtree(project / "tests")
    (project / "models" / "intermediate" / "int_crm_deal_versions.yml").unlink()
    shutil.copy(LEGACY / "int_crm_deal_versions.sql", project / "models" / "intermediate")
    (project / "snapshots").mkdir()
    shutil.copy(LEGACY / "snp_erp__crm_deals.sql", project / "snapshots")
    config = (REPO_ROOT / "dbt_project.yml").read_text()
    config = config.replace('model-paths:', 'snapshot-paths: ["dbt_project/snapshots"]\n'
                                            'model-paths:', 1)
    config += "\nsnapshots:\n  crm_analytics:\n    +schema: snapshots\n"
    (folder / "dbt_project.yml").write_text(config)
    return folder
