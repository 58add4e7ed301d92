"""The docs cite only paths that exist. Every repository path a doc names — in a Markdown link,
or in `code` whose first part is a top-level entry of the repository or whose name ends like a
source file — must exist; `path::name` must also define `name` in that file. A doc whose code
moved fails here instead of sending a newcomer to a file that is not there."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers.paths import REPO_ROOT

DOCS = ["README.md", "BENCHMARKS.md", "RELIABILITY.md",
        *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md"))]
SOURCE_SUFFIXES = (".py", ".sql", ".sh", ".md", ".yml", ".yaml", ".toml", ".cfg")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE = re.compile(r"`([^`\s]+)`")


def _top_level() -> set[str]:
    """First path parts of the tracked files (`dashboards`, `Makefile`, ...)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return {f.split("/")[0] for f in files}


def cited_paths(text: str, top_level: set[str]) -> set[str]:
    """Repository paths a Markdown text cites: link targets that are not URLs, and code spans
    shaped like a path into the repository (never `<placeholders>` or `$VARIABLES`)."""
    found = {m for m in LINK.findall(text) if "://" not in m and not m.startswith("mailto:")}
    for span in CODE.findall(text):
        span = span.rstrip(".,:;)")
        if any(c in span for c in "<>$={}'\"") or span.startswith(("-", "/", "~")):
            continue
        first = span.split("/")[0].split("::")[0]
        shaped = "/" in span or span.split("::")[0].endswith(SOURCE_SUFFIXES)
        if shaped and first in top_level:
            found.add(span)
    return found


def missing(doc: str, path: str) -> str | None:
    """Why `path`, cited by `doc`, does not resolve (None when it does)."""
    file_part, _, name = path.partition("::")
    bases = [REPO_ROOT] if not path.startswith((".", "..")) else []
    bases.append((REPO_ROOT / doc).parent)
    for base in bases:
        hits = sorted(base.glob(file_part)) if any(c in file_part for c in "*?[") \
            else [base / file_part] if (base / file_part).exists() else []
        if not hits:
            continue
        if not name:
            return None
        test_name = name.split("[")[0]
        if any(re.search(rf"^\s*(?:async\s+)?def {re.escape(test_name)}\(|^class "
                         rf"{re.escape(test_name)}\b", h.read_text(), flags=re.M)
               for h in hits if h.is_file()):
            return None
        return f"{doc}: `{path}`: no {test_name} in {file_part}"
    return f"{doc}: `{path}` does not exist"


def test_the_finder_sees_paths_and_skips_the_rest() -> None:
    text = ("see [guide](docs/querying.md), `dashboards/data.py`, `tests/x.py::test_y`, "
            "`Makefile`, `data/warehouse.duckdb`, `<CRM_EVENTS_PATH>/<YYYY-MM-DD>/`, "
            "`marts.v_crm_contact_summary`, [site](https://example.com/a.md), `crm-analytics run`")
    assert cited_paths(text, {"docs", "dashboards", "tests", "Makefile"}) == {
        "docs/querying.md", "dashboards/data.py", "tests/x.py::test_y"}
    assert missing("README.md", "dashboards/no_such_module.py")
    assert missing("README.md", "tests/test_docs_paths.py::test_nothing_like_this")
    assert missing("README.md", "tests/test_docs_paths.py::test_the_finder_sees_paths_and_skips_"
                   "the_rest") is None


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_cites_exists(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text()
    problems = [p for path in sorted(cited_paths(text, _top_level()))
                if (p := missing(doc, path))]
    assert problems == []


def test_code_cites_only_test_files_that_exist() -> None:
    """Docstrings and comments that point at a test module name one that is there."""
    files = subprocess.run(["git", "ls-files", "*.py", "*.sql", "*.yml", "*.toml", "Makefile"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    problems = []
    for name in files.stdout.split():
        if name == "tests/test_docs_paths.py":
            continue
        text = (REPO_ROOT / name).read_text()
        for cited in sorted(set(re.findall(r"\btests/[\w/*]+\.py\b", text))):
            if not sorted(REPO_ROOT.glob(cited)):
                problems.append(f"{name}: {cited}")
    assert problems == []
