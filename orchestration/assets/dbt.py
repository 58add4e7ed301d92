"""The dbt models (staging → intermediate → marts) as Dagster assets; dbt tests become checks."""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.


import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from crm_core.errors import CrmError
from crm_core.serving_copy import publish_serving_copy
from crm_core.settings import Settings
from orchestration import progress
from orchestration.dbt_failures import describe_failures
from orchestration.dbt_project import crm_dbt_project, dbt_environment, ensure_manifest
from orchestration.dbt_targets import prune_target_folders
from orchestration.pii import dbt_secret_environment, environment_while
from orchestration.progress import plural
from orchestration.resources import CrmSettingsResource
from orchestration.run_config import AsOfConfig
from orchestration.run_log import record_successful_run
from orchestration.spark_steps import publish_lake_raw, publish_spark_serving_copy
from orchestration.step_lines import dbt_counts, dbt_line

#: The dbt selector (selectors.yml) of what a Spark warehouse builds.
SPARK_SELECTOR = "spark"


class CrmDbtTranslator(DagsterDbtTranslator):
    """Sources are the `raw/<table>` assets the ingestion writes; models are keyed by their
    schema (`marts/v_crm_contact_summary`) and grouped by layer (the models/ sub-folder)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema")
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return AssetKey([schema, name]) if schema else AssetKey([name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


@dbt_assets(
    manifest=ensure_manifest(),
    project=crm_dbt_project,
    dagster_dbt_translator=CrmDbtTranslator(),
    pool="crm_warehouse",
)
def crm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource,
                   crm: CrmSettingsResource, config: AsOfConfig) -> Iterator[Any]:
    """`dbt build` with the run's as-of date and reporting zone as dbt vars, without the unit
    tests: they check the models' SQL on fixed rows, which the data cannot change, so they run
    where the SQL changes (`make test`, `dbt build` by hand), as dbt Labs advises
    (docs.getdbt.com/docs/build/unit-tests, "When to run unit tests"), not in every daily run.

    On Spark the build is framed by two steps in child processes (`orchestration.spark_steps`):
    the staging file's `raw` is published to the lake first, and after a successful build the
    dashboards' serving copy is read out of Spark's marts; dbt builds the `spark` selector."""
    settings = crm.settings()
    as_of = config.resolve(settings)
    spark = settings.warehouse.is_spark
    if spark:
        _publish_lake(context, settings)
    # dbt runs as a subprocess that inherits this environment (see profiles.yml).
    os.environ.update(dbt_environment(settings.warehouse, settings.reporting_tz,
                                      settings.lake_path))
    dbt_vars = {"as_of_date": as_of.isoformat(), "reporting_tz": settings.reporting_tz}
    # The PII key reaches only the dbt process, never SQL or dbt vars (orchestration/pii.py);
    # it leaves this process's environment as soon as dbt has started.
    secrets = dbt_secret_environment(settings.pii_key,
                                     postgres=settings.warehouse.kind == "postgres",
                                     spark=settings.warehouse.is_spark)
    reporter = progress.current()
    reporter.start("dbt", "dbt build: models and tests", total=_build_nodes(context))
    with environment_while(secrets):
        # `--selector` wins over the `--select` dagster-dbt adds for the whole graph
        selector = ["--selector", SPARK_SELECTOR] if spark else []
        invocation = dbt.cli(["build", *selector, "--exclude-resource-type", "unit_test",
                              "--vars", json.dumps(dbt_vars)],
                             context=context, raise_on_error=False)
    try:
        for done, event in enumerate(invocation.stream(), start=1):
            reporter.update("dbt", done)
            yield event
    finally:
        prune_target_folders(invocation.target_path)
    if not invocation.is_successful():
        raise CrmError(f"dbt build failed: {_failed_nodes(invocation)}")
    reporter.done("dbt", dbt_line(dbt_counts(_run_results(invocation))))
    with crm.warehouse() as wh:
        record_successful_run(wh, as_of=as_of, run_id=context.run_id)
    # The connection above is closed: the file is quiescent, publish the dashboards' copy.
    if spark:
        reporter.start("serve", "serving copy: marts from Spark")
        publish_spark_serving_copy(settings)
        reporter.done("serve", "Spark's marts copied for the dashboards")
    else:
        publish_serving_copy(settings.warehouse)


def _publish_lake(context: AssetExecutionContext, settings: Settings) -> None:
    """Spark: publish `raw` from the staging file to the lake before dbt reads it. The whole
    `spark` selector is built (its marts are what the serving copy is made of), so a subset of
    the models is refused rather than half-served."""
    if context.is_subset:
        raise CrmError("on a Spark warehouse the dbt step builds all its models (selector "
                       f"`{SPARK_SELECTOR}`): materialize the whole dbt step")
    reporter = progress.current()
    reporter.start("lake", "lake: publish raw to Spark")
    published = publish_lake_raw(settings)
    reporter.done("lake", f"{plural(published, 'raw table')} published to {settings.lake_path}")


def _build_nodes(context: AssetExecutionContext) -> int:
    """About how many events the build streams, the display's total: one per model, seed and
    data test (the Dagster assets and their checks); after a failure the rest stream nothing."""
    return len(context.selected_asset_keys) + len(context.selected_asset_check_keys)


def _run_results(invocation: Any) -> list[Mapping[str, Any]]:
    try:
        return invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artefact: nothing to count
        return []


def _failed_nodes(invocation: Any) -> str:
    """'test unique_stg_erp__crm_deals_deal_id: crm_deals has 5 duplicated ids …' for each
    failed node, from run_results and the manifest."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artefact: dbt failed before running anything
        return "see the dbt log in target/ (dbt did not run any node)"
    failures = describe_failures(results, invocation.manifest)
    if not failures:
        return "see the dbt log in target/"
    more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
    return "; ".join(failures[:3]) + more
