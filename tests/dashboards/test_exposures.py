"""dbt's exposures (`dbt_project/models/exposures.yml`) say which marts each dashboard page
reads: the docs site's lineage and `dbt ls -s +exposure:<page>` rely on it. Kept honest by
reading the code: a page's figures read the marts of the `data` functions it calls (and of
the `data` functions those call in turn); the header and sidebar every page shows (`ui`:
names, "data as of", the filters' options) are one more exposure, `dashboard_common`. A page
added, or a mart read, without its exposure fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from tests.helpers.paths import REPO_ROOT

DASHBOARDS = REPO_ROOT / "dashboards"
EXPOSURES = REPO_ROOT / "dbt_project" / "models" / "exposures.yml"
MART = re.compile(r"\bmarts\.([a-z_0-9]+)")


def _functions(module: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(module.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _calls(node: ast.AST, module: str | None) -> set[str]:
    """Names called as `module.name` (or, with `module` None, as bare `name`) in `node`."""
    found = set()
    for sub in ast.walk(node):
        if module is None and isinstance(sub, ast.Name):
            found.add(sub.id)
        elif (module is not None and isinstance(sub, ast.Attribute)
              and isinstance(sub.value, ast.Name) and sub.value.id == module):
            found.add(sub.attr)
    return found


def _marts_of_data_functions() -> dict[str, set[str]]:
    """data.py function -> every mart it reads, with the data.py functions it uses."""
    source = (DASHBOARDS / "data.py").read_text()
    functions = _functions(DASHBOARDS / "data.py")
    own = {name: set(MART.findall(ast.get_source_segment(source, node) or ""))
           for name, node in functions.items()}
    uses = {name: _calls(node, None) & set(functions) - {name}
            for name, node in functions.items()}
    marts: dict[str, set[str]] = {}

    def reach(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name not in marts:
            found = set(own[name])
            for used in uses[name] - seen:
                found |= reach(used, seen | {name})
            marts[name] = found
        return marts[name]

    for name in functions:
        reach(name)
    return marts


def _marts_read() -> dict[str, set[str]]:
    """Page file stem -> the marts its own figures read; "common" -> those `ui` reads for
    the header and the sidebar (names, "data as of", filter options) of the pages."""
    data_marts = _marts_of_data_functions()

    def marts_of(tree: ast.AST) -> set[str]:
        return set().union(*(data_marts[c] for c in _calls(tree, "data") if c in data_marts))

    read = {page.stem: marts_of(ast.parse(page.read_text()))
            for page in sorted((DASHBOARDS / "pages").glob("*.py"))}
    read["common"] = marts_of(ast.parse((DASHBOARDS / "ui.py").read_text()))
    return read


def _exposures() -> dict[str, set[str]]:
    """Page file stem (from the exposure's URL; "common" for the one shared by every page)
    -> the marts it declares."""
    declared = {}
    for exposure in yaml.safe_load(EXPOSURES.read_text())["exposures"]:
        path = ("common" if exposure["name"] == "dashboard_common" else
                exposure["url"].removeprefix("http://localhost:8501/") or "overview")
        declared[path] = {re.fullmatch(r"ref\('([a-z_0-9]+)'\)", ref).group(1)
                          for ref in exposure["depends_on"]}
    return declared


def test_every_dashboard_page_has_an_exposure_listing_the_marts_it_reads() -> None:
    read = _marts_read()
    app = (DASHBOARDS / "app.py").read_text()
    assert set(read) - {"common"} == set(re.findall(r'st\.Page\("pages/([a-z_]+)\.py"', app))
    assert all(read.values()), read  # the tracing found the marts
    assert _exposures() == read
