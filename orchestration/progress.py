"""What a command-line run says while it works: one line per step as it finishes, and on a
terminal a live progress display for the long steps (the sync, the event load, dbt's nodes).

The steps report to `current()`; a run the daemon launches has no reporter (`NullReporter`), so
the steps stay silent there and Dagster's own logs tell the story. The command line installs
`PlainReporter` (not a terminal: only the finished lines, easy to grep and log) or
`RichReporter` (a terminal) around its run with `reporting(...)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol


class Reporter(Protocol):
    def start(self, step: str, description: str, total: int | None = None) -> None:
        """A step began; `total` units of work when known (a bar), else a spinner."""

    def update(self, step: str, completed: int, total: int | None = None) -> None:
        """Work done so far in a running step."""

    def done(self, step: str, summary: str) -> None:
        """The step finished: print `<step>: <summary> (<seconds>s)`."""


class NullReporter:
    """Silence (daemon runs, `--quiet`)."""

    def start(self, step: str, description: str, total: int | None = None) -> None:
        pass

    def update(self, step: str, completed: int, total: int | None = None) -> None:
        pass

    def done(self, step: str, summary: str) -> None:
        pass


class _Timed:
    """Start times per step, and the finished line with its duration."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def _begin(self, step: str) -> None:
        self._started[step] = time.monotonic()

    def _line(self, step: str, summary: str) -> str:
        seconds = time.monotonic() - self._started.pop(step, time.monotonic())
        return f"{step}: {summary} ({seconds:.1f}s)"


class PlainReporter(_Timed):
    """One line per finished step, nothing else: for pipes, files and CI logs."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def start(self, step: str, description: str, total: int | None = None) -> None:
        self._begin(step)

    def update(self, step: str, completed: int, total: int | None = None) -> None:
        pass

    def done(self, step: str, summary: str) -> None:
        print(self._line(step, summary), file=self.stream, flush=True)


class RichReporter(_Timed):
    """A `rich` progress display for running steps (bar when the total is known, spinner
    otherwise, elapsed time); each finished step's line is printed above it."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        from rich.console import Console

        from crm_core.progress_display import progress_display

        self.progress = progress_display(Console(file=stream), transient=True)
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def start(self, step: str, description: str, total: int | None = None) -> None:
        self._begin(step)
        self._tasks[step] = self.progress.add_task(description, total=total)

    def update(self, step: str, completed: int, total: int | None = None) -> None:
        task = self._tasks.get(step)
        if task is not None:
            self.progress.update(task, completed=completed,
                                 **({"total": total} if total is not None else {}))

    def done(self, step: str, summary: str) -> None:
        task = self._tasks.pop(step, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.console.print(self._line(step, summary), highlight=False, markup=False)


_current: Reporter = NullReporter()


def current() -> Reporter:
    """The reporter of the run in this process (`NullReporter` unless the CLI set one)."""
    return _current


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Make `reporter` current for the duration (a `RichReporter` also runs its display)."""
    global _current
    previous, _current = _current, reporter
    try:
        if isinstance(reporter, RichReporter):
            with reporter:
                yield reporter
        else:
            yield reporter
    finally:
        _current = previous


def reporter_for(stream: IO[str], *, quiet: bool, verbose: bool = False) -> Reporter:
    """Silence when quiet; plain lines when verbose (Dagster's and dbt's logs interleave, a
    live display would garble them) or not a terminal; a live display otherwise."""
    if quiet:
        return NullReporter()
    if stream.isatty() and not verbose:
        return RichReporter(stream)
    return PlainReporter(stream)


def plural(count: int, noun: str) -> str:
    """`1 file`, `2 files`, with thousands separators."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
