"""Rates are defined once. The dashboards recompute a rate over the rows a viewer selects from
summed parts (`dashboards.data.RATES`, composed by `safe_ratio`); the marts compute the same
rate per row with dbt's `safe_ratio` macro. These tests fail when the two drift apart: the
formula's text, and each rate's parts checked row by row on a warehouse the pipeline built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm_core.settings import Settings
from dashboards import data
from tests.helpers.dashboard import DashboardWarehouse
from tests.helpers.paths import REPO_ROOT


def _squash(sql: str) -> str:
    return re.sub(r"\s+", "", sql)


def test_the_dashboards_rate_formula_is_the_dbt_macro() -> None:
    macros = (REPO_ROOT / "dbt_project" / "macros" / "ratios.sql").read_text()
    body = re.search(r"macro default__safe_ratio\(numerator, denominator\) -%}(.*?){%-",
                     macros, flags=re.S)
    assert body, "default__safe_ratio not found in ratios.sql"
    types = (REPO_ROOT / "dbt_project" / "macros" / "types.sql").read_text()
    float_type = re.search(r"macro default__float_type\(\) -%}\s*{{ return\('([^']+)'\) }}",
                           types)
    assert float_type, "default__float_type not found in types.sql"
    rendered = (body.group(1).replace("{{ numerator }}", "N").replace("{{ denominator }}", "D")
                .replace("{{ float_type() }}", float_type.group(1)))
    assert _squash(rendered) == _squash(f"({data.safe_ratio('N', 'D')})")


def test_data_py_composes_rate_sql_in_one_place() -> None:
    source = Path(data.__file__).read_text()
    assert source.count("nullif(") == 1
    assert source.count("as double precision") == 2  # safe_ratio's numerator and denominator


#: mart -> the rates of `data.RATES` it also holds per row, under the same name and parts
MART_RATES = {
    "pipeline_by_tenant": ("win_rate", "value_win_rate"),
    "v_crm_pipeline_summary": ("win_rate", "value_win_rate"),
    "v_crm_campaign_performance": ("ctr", "cvr", "roi"),
    "v_crm_lead_conversion": ("qualification_rate", "lead_win_rate"),
}


@pytest.mark.parametrize("mart", sorted(MART_RATES))
def test_each_rates_parts_give_the_marts_rate_row_by_row(
        mart: str, dashboard_warehouse: DashboardWarehouse) -> None:
    """Over one row, the dashboards' rate is the mart's: exactly, NULLs included."""
    settings = Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work)
    for rate in MART_RATES[mart]:
        df = data.query(settings, f"""
            select count({rate}) as n_rates,
                   sum(case when {rate} is distinct from {data.safe_ratio(*data.RATES[rate])}
                       then 1 else 0 end) as n_differ
            from marts.{mart}""")
        row = df.row(0, named=True)
        assert row["n_rates"] > 0, (mart, rate)
        assert row["n_differ"] == 0, (mart, rate, row)
