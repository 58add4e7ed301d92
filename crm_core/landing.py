"""The landing folder of the campaign event files: `<CRM_EVENTS_PATH>/<YYYY-MM-DD>/*.jsonl[.gz]`.

The loader, the sensor and the run's partition range all read the folder through this one scan,
so they agree on which folders are landing dates and which files are event files.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")

#: The suffixes of event files; anything else in a landing folder (`_SUCCESS`, notes) is ignored.
EVENT_SUFFIXES = (".jsonl", ".jsonl.gz")


def landing_date(name: str) -> date | None:
    """The date a folder name stands for: only a real `YYYY-MM-DD` (not `20240101`, not an ISO
    week), else None."""
    if not _DATE_NAME.fullmatch(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def landing_folders(events_path: Path) -> list[tuple[date, Path]]:
    """The dated folders under `events_path`, oldest first (none when it does not exist).
    Raises OSError when the folder cannot be listed."""
    if not events_path.is_dir():
        return []
    found = []
    for folder in events_path.iterdir():
        day = landing_date(folder.name)
        if day is not None and folder.is_dir():
            found.append((day, folder))
    return sorted(found)


def is_event_file(path: Path) -> bool:
    return path.name.endswith(EVENT_SUFFIXES)
