"""Imports point down the layers, never up or sideways (docs/contributing.md, "Layers").

    crm_cli                      the command line: may import everything
    orchestration   crm_demo     Dagster; the demo generator
    ingestion       dashboards   ERP sync and event files; the Streamlit pages
    crm_core                     settings, errors, URLs, landing folder, serving copy

Every `import` in every module counts, including those inside functions (imported lazily to
keep start-up light, they are still dependencies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT

#: Package -> the first-party packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "crm_core": set(),
    "ingestion": {"crm_core"},
    "dashboards": {"crm_core"},
    "orchestration": {"crm_core", "ingestion"},
    "crm_demo": {"crm_core", "ingestion"},
    "crm_cli": {"crm_core", "ingestion", "dashboards", "orchestration", "crm_demo"},
}
#: Subpackages of one package that must not import each other.
SIBLINGS = {("ingestion.erp", "ingestion.events"), ("ingestion.events", "ingestion.erp")}

FIRST_PARTY = set(ALLOWED) | {"tests"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for name in sorted(imported_modules(path)):
            top = name.split(".")[0]
            if top in FIRST_PARTY and top != package and top not in ALLOWED[package]:
                bad.append(f"{module} imports {name}")
            for low, high in SIBLINGS:
                if module.startswith(low + ".") and (name == high or name.startswith(high + ".")):
                    bad.append(f"{module} imports its sibling {name}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    assert (REPO_ROOT / package / "__init__.py").is_file()
    assert violations(package) == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a lazy import inside a function is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from orchestration.settings import x\n    import dashboards\n")
    assert {"orchestration.settings", "orchestration.settings.x", "dashboards"} \
        <= imported_modules(module)


def test_test_modules_never_import_each_other() -> None:
    """Shared code lives in tests/helpers; a test module is never a library."""
    bad = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        for name in imported_modules(path):
            if name.startswith("tests.") and any(part.startswith("test_")
                                                 for part in name.split(".")):
                bad.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert bad == []
