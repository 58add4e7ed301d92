"""The landing folder of the campaign event files, `<CRM_EVENTS_PATH>/<YYYY-MM-DD>/*.jsonl[.gz]`,
as every reader sees it: which sub-folders are landing dates, and which
entries stay unread because they lead out of it.

One scan serves the loader, the sensor's fingerprint, the run's partition range and the asset
check, so they always agree on what counts:

- a landing folder is named `YYYY-MM-DD` and is a real date (`date.fromisoformat` alone also
  takes `20261128` or the ISO week date `2026-W47-1`: those are not landing folders);
- any other sub-folder is listed in `ignored` (warned about once per run, never loaded);
- a folder or file that resolves outside `CRM_EVENTS_PATH` (a symlink to `/etc`, say) is listed
  in `outside` and never opened: not even its directory listing is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from crm_core.errors import CrmError, first_line

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The names an event file may have; anything else in a landing folder (`_SUCCESS`, notes) is
#: not an event file and is passed over without a word.
EVENT_SUFFIXES = (".jsonl", ".jsonl.gz")
#: Default longest event line, in bytes (`CRM_MAX_EVENT_LINE_BYTES`); a longer one is
#: rejected as `line_too_long` and never held whole in memory.
MAX_LINE_BYTES = 1 << 20
#: The reason a manifest row gives for an entry that was never read.
OUTSIDE_REASON = "outside_landing_folder"


def strict_date(text: str) -> date | None:
    """`text` as a date when it is exactly `YYYY-MM-DD` and a real calendar day, else None.

    The one parser of typed and folder-name dates: `date.fromisoformat` also accepts
    `20261128`, `2026-W48-1` and `2026-334`, which nobody means as a day here."""
    if not _ISO_DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class LandingEntry:
    """An event file in a landing folder, or an entry left unread (`outside` is True)."""

    path: Path
    rel_path: str
    landing_date: date
    outside: bool = False


@dataclass
class LandingScan:
    """What a landing folder holds: dated folders, the names that are not landing dates, and
    the entries that lead outside it."""

    folders: dict[date, Path] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """One line per entry a person should look at (the run prints each once)."""
        lines = [f"landing folder {name!r} is not a YYYY-MM-DD date: not loaded"
                 for name in self.ignored]
        lines += [f"landing entry {name!r} leads outside CRM_EVENTS_PATH: not read"
                  for name in self.outside]
        return lines


def _inside(path: Path, root: Path) -> bool:
    """True when `path`, with every symlink resolved, is within `root` (already resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop, a vanished target
        return False


def scan_landing(events_path: Path) -> LandingScan:
    """The landing folders of `events_path` (none when it does not exist)."""
    scan = LandingScan()
    if not events_path.exists():
        return scan
    if not events_path.is_dir():
        raise CrmError(f"CRM_EVENTS_PATH {events_path} is not a folder")
    root = events_path.resolve()
    try:
        for entry in sorted(events_path.iterdir()):
            if not _inside(entry, root):
                if entry.is_symlink():
                    scan.outside.append(entry.name)
                continue
            if not entry.is_dir():
                continue  # a stray file beside the folders: not a landing folder
            if entry.name.startswith("."):
                continue  # hidden: a tool's own (`generate`'s staging, a file server's snapshots)
            day = strict_date(entry.name)
            if day is None:
                scan.ignored.append(entry.name)
            else:
                scan.folders[day] = entry
    except OSError as exc:
        raise CrmError(f"event files under {events_path} cannot be read: {first_line(exc)}") \
            from None
    return scan


def landing_entries(events_path: Path, folders: dict[date, Path]) -> Iterator[LandingEntry]:
    """The event files of `folders` in landing order, with the ones that lead outside
    `events_path` marked (not opened)."""
    root = events_path.resolve()
    for day in sorted(folders):
        folder = folders[day]
        for path in sorted(folder.iterdir()):
            if not is_event_file(path):
                continue
            rel = f"{folder.name}/{path.name}"
            yield LandingEntry(path, rel, day, outside=not _inside(path, root))


def is_event_file(path: Path) -> bool:
    """True for a `.jsonl` or `.jsonl.gz` name."""
    return path.name.endswith(EVENT_SUFFIXES)


def max_line_bytes_from(text: str | None) -> int:
    """`CRM_MAX_EVENT_LINE_BYTES` as a number of bytes: 1 KiB up to 256 MiB."""
    if not text:
        return MAX_LINE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1024 <= value <= 256 << 20:
        raise CrmError("CRM_MAX_EVENT_LINE_BYTES must be a whole number of bytes from 1024 to "
                       f"268435456 (default {MAX_LINE_BYTES}), not {text!r}")
    return value
