"""The ERP's operational tables, landed in the warehouse schema `raw` (group `ingestion`)."""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.


from collections.abc import Iterator

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from ingestion.erp.schema import SOURCE_TABLES
from ingestion.erp.sync import sync_configured
from orchestration.resources import CrmSettingsResource

ERP_ASSET_KEYS = [AssetKey(["raw", name]) for name in SOURCE_TABLES]


@multi_asset(
    name="erp_tables",
    specs=[
        AssetSpec(key, group_name="ingestion", kinds={"sql"},
                  description=f"ERP table `{key.path[-1]}` copied from CRM_SOURCE_URL.")
        for key in ERP_ASSET_KEYS
    ],
    pool="crm_warehouse",
)
def erp_tables(context: AssetExecutionContext, crm: CrmSettingsResource
               ) -> Iterator[MaterializeResult]:
    """All tables are synced together in one warehouse transaction, so they are one step."""
    with crm.warehouse() as wh:
        report = sync_configured(crm.settings(), wh)
    context.log.info(f"synced {sum(report.rows.values())} rows in {report.seconds:.1f}s")
    for name, rows in report.rows.items():
        yield MaterializeResult(asset_key=AssetKey(["raw", name]),
                                metadata={"rows": rows,
                                          "absent_in_source": name in report.absent_optional})
