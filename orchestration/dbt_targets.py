"""dbt's per-run target folders: each `dbt build` the pipeline starts writes its own folder
under `target/` (dagster-dbt names it `<op>-<run>-<random>`, ~14 MB at `small`), so without
pruning every scheduled or sensor run leaves one behind for good. The newest few are kept: the
last runs' logs and artefacts, for a person looking into a failure."""

from __future__ import annotations

import shutil
from pathlib import Path

#: dbt target folders kept after each run (the newest, the running one included).
KEEP_DBT_TARGETS = 5


def prune_target_folders(current: Path, keep: int = KEEP_DBT_TARGETS) -> list[Path]:
    """Remove all but the `keep` newest folders beside `current` that the same op wrote
    (`<op>-...`, by modification time; `current` is never removed). Returns what it removed."""
    op = current.name.split("-", 1)[0]
    parent = current.parent
    if not parent.is_dir():
        return []
    siblings = [p for p in parent.iterdir()
                if p.is_dir() and not p.is_symlink() and p.name.startswith(f"{op}-")]
    siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in [p for p in siblings if p != current][max(keep - 1, 0):]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed
