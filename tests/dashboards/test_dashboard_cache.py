"""The dashboards' process-wide cache (`dashboards.data.SharedCache`, `Source.memo`): each key
is built once however many sessions ask at the same moment, a newer data version drops the
older one's entries, and what pages build from results is keyed by the viewer's scope, so a
figure built for one user is never shown to another with a different scope."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from dashboards import data
from dashboards.data import SharedCache


def test_a_key_is_built_once_while_many_ask_at_once() -> None:
    cache = SharedCache()
    builds: list[int] = []

    def build() -> list[int]:
        builds.append(1)
        time.sleep(0.2)  # long enough that every thread asks while the first one builds
        return [42]

    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.get_or_build("wh", "v1", ("sql", "q"), build))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert len(results) == 20 and all(r is results[0] for r in results)


def test_a_new_data_version_drops_the_old_entries_and_other_keys_stay_apart() -> None:
    cache = SharedCache()
    assert cache.get_or_build("wh", "v1", "a", lambda: 1) == 1
    assert cache.get_or_build("wh", "v1", "b", lambda: 2) == 2
    assert cache.get_or_build("other", "v1", "a", lambda: 3) == 3  # another warehouse
    assert cache.get_or_build("wh", "v1", "a", lambda: 99) == 1  # cached
    assert cache.get_or_build("wh", "v2", "a", lambda: 10) == 10  # new version: rebuilt
    assert cache.get_or_build("wh", "v2", "b", lambda: 20) == 20  # v1's "b" is gone
    assert cache.get_or_build("other", "v1", "a", lambda: 99) == 3


def test_a_failed_build_is_not_cached() -> None:
    cache = SharedCache()

    def fail() -> int:
        raise RuntimeError("warehouse gone")

    with pytest.raises(RuntimeError):
        cache.get_or_build("wh", "v1", "a", fail)
    assert cache.get_or_build("wh", "v1", "a", lambda: 5) == 5


def _stage_chart(at: AppTest) -> dict:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    # Overview's second chart: the pipeline value by stage (horizontal bars).
    return next(c for c in charts if c["data"][0].get("orientation") == "h")


def test_figures_follow_the_viewer_scope_through_the_cache(app: Callable[..., AppTest]) -> None:
    data.CACHE.clear()
    ana_alone = _stage_chart(app("overview", user="ana@example.com"))
    data.CACHE.clear()
    boss = _stage_chart(app("overview", user="boss@example.com"))
    ana_after_boss = _stage_chart(app("overview", user="ana@example.com"))
    # The same filters, a different scope: ana gets her own figure, not the cached one.
    assert ana_after_boss["data"] == ana_alone["data"]
    assert boss["data"] != ana_alone["data"]
    # Each bar's text ends in its deal count: ana's scope holds fewer deals than everyone's.
    assert _deals(boss) > _deals(ana_alone) > 0


def _deals(chart: dict) -> int:
    return sum(int(text.rsplit(" · ", 1)[1].split()[0].replace(",", ""))
               for text in chart["data"][0]["text"])
