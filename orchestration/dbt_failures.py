"""dbt failures as a person reads them: the test's name (`unique_stg_erp__crm_deals_deal_id`,
not the hash dbt puts in its unique id) and what the failure means ("crm_deals has 5
duplicated ids"), from the run's results and its manifest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FAILED_STATUSES = {"error", "fail", "runtime error"}


def node_name(unique_id: str) -> str:
    """`test.crm_analytics.unique_stg_erp__crm_deals_deal_id.bb9a30d218` → the name part."""
    parts = unique_id.split(".")
    return parts[2] if len(parts) > 2 else unique_id


def _table(node: Mapping[str, Any], nodes: Mapping[str, Any]) -> str:
    """The table a test checks, as the ERP or the warehouse calls it: a staging model is
    named after its source table (`stg_erp__crm_deals` → `crm_deals`)."""
    attached = node.get("attached_node") or ""
    name = (nodes.get(attached) or {}).get("name") or node_name(attached) if attached else ""
    if not name:
        refs = node.get("refs") or []
        name = refs[0].get("name", "") if refs and isinstance(refs[0], dict) else ""
    return re.sub(r"^stg_[a-z0-9]+__", "", name) or "a model"


def failure_meaning(node: Mapping[str, Any], nodes: Mapping[str, Any], failures: int | None) -> str:
    """What a failed generic test says about the data, in words."""
    meta = node.get("test_metadata") or {}
    kind = meta.get("name")
    column = node.get("column_name") or (meta.get("kwargs") or {}).get("column_name") or "?"
    n = "some" if failures is None else str(failures)
    table = _table(node, nodes)
    if kind == "unique":
        what = "ids" if column.endswith("id") else f"{column} values"
        return f"{table} has {n} duplicated {what} ({column} appears on more than one row)"
    if kind == "not_null":
        return f"{table} has {n} rows without a {column}"
    if kind == "accepted_values":
        return f"{table} has {n} {column} values outside the accepted list"
    if kind == "relationships":
        to = (meta.get("kwargs") or {}).get("to", "")
        target = re.sub(r"^stg_[a-z0-9]+__", "", re.sub(r".*ref\('([^']+)'\).*", r"\1", to))
        return f"{table} has {n} {column} values with no matching row in {target or 'its parent'}"
    description = (node.get("description") or "").strip().splitlines()
    said = f": {description[0]}" if description else ""
    return f"{n} failing rows{said}"


#: Lines of a dbt error that say where it happened, not what: dbt's "Runtime Error in model …"
#: header, py4j's "An error occurred while calling o123.collectToPython." (in-process Spark) and
#: the frames of a Java stack.
_HEADERS = re.compile(r"^(\w+ Error in \w+ |An error occurred while calling \S+\.$|at [\w$.<>]+\()")
#: The Java exception class before a Spark error's text (": org.apache.spark.SparkException: …").
_JAVA_CLASS = re.compile(r"^:?\s*(?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)(?::\s*|$)")


def _message(result: Mapping[str, Any]) -> str:
    """The informative line of a dbt error: past the headers, without a Java class name (the
    line after a bare class name when the message starts there; the class when it has none)."""
    lines = [ln.strip() for ln in (result.get("message") or "").splitlines() if ln.strip()]
    said = [ln for ln in lines if not _HEADERS.match(ln)]
    for line in said:
        if text := _JAVA_CLASS.sub("", line).strip():
            return text
    return (said or lines or [str(result.get("status"))])[0].lstrip(": ")


def describe_failures(results: list[Mapping[str, Any]], manifest: Mapping[str, Any]) -> list[str]:
    """'<kind> <name>: <what it means>' for each failed node of a dbt run."""
    nodes = manifest.get("nodes") or {}
    lines = []
    for result in results:
        if result.get("status") not in FAILED_STATUSES:
            continue
        unique_id = result.get("unique_id", "?")
        kind = unique_id.split(".", 1)[0]
        node = nodes.get(unique_id) or {}
        if kind == "test" and result.get("status") == "fail":
            failures = result.get("failures")
            meaning = failure_meaning(node, nodes, failures if isinstance(failures, int) else None)
        else:
            meaning = _message(result)
        lines.append(f"{kind} {node.get('name') or node_name(unique_id)}: {meaning}")
    return lines
