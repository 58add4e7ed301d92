"""The dashboards in a real browser: `streamlit run` on a free port, Debian's chromium driven
by Playwright. Every page opens without an exception and shows its KPIs; a screenshot of each
lands in `screenshots/` (git-ignored) for a human to look at. Behind a trusted sign-in header,
a scoped user sees only their tenant, also when they edit the URL's query parameters.

Skips when chromium or Playwright is missing, unless `CRM_REQUIRE_BROWSER=1` (CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from crm_core.settings import Settings
from dashboards import data
from dashboards.access import EVERYTHING, Scope
from dashboards.ui import money
from tests.helpers.dashboard import CHROMIUM, DashboardWarehouse, _require_browser
from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "screenshots"
PAGES = {"overview": "", "pipeline": "pipeline", "forecast": "forecast", "team": "team",
         "leads": "leads", "campaigns": "campaigns", "customers": "customers"}
#: The two window sizes every page is looked at in (screenshots named <page>_<width>.png).
VIEWPORTS = [(1400, 1000), (1000, 800)]
ACCESS = """
users:
  boss@example.com: all
  ana@example.com:
    businesses: [1]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(dashboard_warehouse: DashboardWarehouse,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboards served behind a (simulated) authenticating proxy: identity comes from
    the X-Forwarded-Email header, tenants from an access file."""
    _require_browser()
    work = tmp_path_factory.mktemp("served")
    (work / "access.yml").write_text(ACCESS)
    env = {**os.environ, **dashboard_warehouse.env, "CRM_AUTH": "header",
           "CRM_ACCESS_FILE": str(work / "access.yml")}
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboards" / "app.py"),
         "--server.headless", "true", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f"streamlit exited: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "streamlit did not come up within 60 s"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: object, url: str, user: str | None, *, charts: bool = True,
          size: tuple[int, int] = (1440, 2600)) -> object:
    headers = {"X-Forwarded-Email": user} if user else {}
    context = browser.new_context(viewport={"width": size[0], "height": size[1]},  # type: ignore[attr-defined]
                                  extra_http_headers=headers)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector('[data-testid="stMetric"], [data-testid="stAlert"], '
                           '[data-testid="stException"]', timeout=60_000)
    # Wait until the script run has finished (the status widget shows "Running..." until then).
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=60_000)
    if charts:  # the first run of a fresh server can still be streaming elements
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=60_000)
    page.wait_for_timeout(1500)  # let Plotly draw before the screenshot
    return page


def _metric(page: object, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text=label).first  # type: ignore[attr-defined]
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def _totals(warehouse: DashboardWarehouse, scope: Scope) -> dict[str, object]:
    settings = Settings.from_env(warehouse.env, cwd=warehouse.work)
    return data.pipeline_totals(data.Source(settings, "", cached=False), scope, data.Filters())


#: True for each KPI value, label or delta whose text does not fit its box (cut with "…").
_TRUNCATED = """() => [...document.querySelectorAll(['[data-testid="stMetricValue"]',
        '[data-testid="stMetricLabel"]', '[data-testid="stMetricDelta"]'].join(', '))]
    .map(e => [e.innerText, e.scrollWidth > e.clientWidth + 1
               || [...e.querySelectorAll('*')].some(c => c.scrollWidth > c.clientWidth + 1)])"""
#: Pairs of tick labels of one Plotly axis that overlap. Level labels: their boxes intersect.
#: Labels Plotly turned by an angle θ are parallel strips one line high: two overlap when the
#: distance between their ticks × sin θ is less than that height.
_OVERLAPS = """() => {
    const out = [];
    const axes = new Set([...document.querySelectorAll(
        '.js-plotly-plot g.xtick, .js-plotly-plot g.ytick')].map(t => t.parentNode));
    for (const axis of axes) {
        const labels = [...axis.querySelectorAll('text')].map(t => {
            const transform = t.getAttribute('transform') || '';
            const outer = t.parentNode.getAttribute('transform') || '';
            const pattern = /translate\\(([-\\d.e]+)[ ,]*([-\\d.e]*)\\)/;
            const move = pattern.exec(transform) || pattern.exec(outer);
            const turn = /rotate\\(([-\\d.e]+)/.exec(transform);
            const rect = t.getBoundingClientRect();
            return {text: t.textContent, rect: rect,
                    at: move ? [parseFloat(move[1]), parseFloat(move[2] || '0')]
                             : [rect.left + rect.width / 2, rect.top + rect.height / 2],
                    angle: turn ? Math.abs(parseFloat(turn[1])) : 0,
                    size: parseFloat(getComputedStyle(t).fontSize) || 12,
                    y: t.closest('g.ytick') !== null};
        }).filter(l => l.text && l.rect.width > 0);
        for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++) {
            const a = labels[i], b = labels[j];
            let hit;
            if (a.angle === 0 && b.angle === 0) {
                const r = a.rect, q = b.rect;
                hit = r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1
                      && q.top < r.bottom - 1;
            } else {
                const d = Math.abs(a.y ? a.at[1] - b.at[1] : a.at[0] - b.at[0]);
                hit = d * Math.sin(Math.max(a.angle, b.angle) * Math.PI / 180) < 0.9 * a.size;
            }
            if (hit) out.push(a.text + ' / ' + b.text);
        }
    }
    return out;
}"""


@pytest.mark.parametrize("size", VIEWPORTS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_renders_with_kpis_in_chromium(browser: object, server: str, name: str,
                                                  size: tuple[int, int],
                                                  dashboard_warehouse: DashboardWarehouse
                                                  ) -> None:
    page = _open(browser, f"{server}/{PAGES[name]}", "boss@example.com", size=size)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stMetric"]').count() >= 4
    assert "Data as of 2026-11-01" in page.inner_text("body")
    assert page.locator(".js-plotly-plot").count() >= 1
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}_{size[0]}.png"), full_page=True)
    cut = [text for text, truncated in page.evaluate(_TRUNCATED) if truncated]
    assert not cut, f"KPI values cut off at {size}: {cut}"
    assert page.evaluate(_OVERLAPS) == [], f"overlapping tick labels at {size}"
    if name == "overview":
        everything = _totals(dashboard_warehouse, EVERYTHING)
        assert _metric(page, "Open pipeline") == money(everything["open_amount"])
    page.context.close()


def test_a_scoped_user_sees_only_their_tenant_even_with_a_tampered_url(
        browser: object, server: str, dashboard_warehouse: DashboardWarehouse) -> None:
    mine = _totals(dashboard_warehouse, Scope(business_ids=frozenset({1})))
    everything = _totals(dashboard_warehouse, EVERYTHING)
    assert mine["open_amount"] != everything["open_amount"]
    for query in ("", "?business=2", "?business=1,2,3&branch=99"):
        page = _open(browser, f"{server}/{query}", "ana@example.com")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert _metric(page, "Open pipeline") == money(mine["open_amount"]), query
        page.context.close()
    page = _open(browser, f"{server}/pipeline?business=2", "ana@example.com")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "scoped_user_tampered.png"), full_page=True)
    assert _metric(page, "Open pipeline") == money(mine["open_amount"])
    assert "Contoso Ltd" not in page.inner_text("section[data-testid='stSidebar']")
    page.context.close()


def test_unknown_and_anonymous_users_see_nothing(browser: object, server: str) -> None:
    for user, expected in (("mallory@example.com", "no access to any business"),
                           (None, "header from the sign-in proxy is missing")):
        page = _open(browser, server, user, charts=False)
        text = page.inner_text("body")
        assert expected in text
        assert page.locator('[data-testid="stMetric"]').count() == 0
        page.context.close()
