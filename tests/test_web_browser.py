"""The pages in a real headless Chromium (Debian's chromium and chromium-driver) against the real server.

The store is kp-2017-ttk written by the CLI; the server is uvicorn in a thread on 127.0.0.1. The
screenshot docs/web-kp.png is rewritten when TRANSITWATCH_UPDATE_SCREENSHOT=1, else written to tmp.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import REGISTRY, SCENARIOS
from transitwatch.store import Store
from transitwatch.web import create_app
from transitwatch.web.server import background_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "web-kp.png"
WAIT_S = 20
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "kp.duckdb"
    cmd = [sys.executable, "-m", "transitwatch.cli", "upstreams", "KP"]
    cmd += ["--archive", str(SCENARIOS / "kp-2017-ttk"), "--registry", str(REGISTRY), "--quiet"]
    cmd += ["--from", "2017-10-01T08:00:00Z", "--to", "2017-10-02T12:00:00Z", "--store", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def base_url(store_path: Path) -> Iterator[str]:
    with background_server(create_app(store_path)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} is missing: apt-get install chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1500",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store(store_path, read_only=True) as s:
        yield s


def open_target_page(browser: WebDriver, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "ready"
    )


def chart_traces(browser: WebDriver, element_id: str) -> list[dict[str, Any]]:
    """The data plotly.js drew, read back from the chart element."""
    script = (
        "return document.getElementById(arguments[0]).data.map(t => "
        "({name: t.name, x: t.x, y: t.y, text: t.text, meta: t.meta || null}));"
    )
    traces: list[dict[str, Any]] = browser.execute_script(script, element_id)
    return traces


def no_horizontal_overflow(browser: WebDriver) -> bool:
    return bool(
        browser.execute_script(
            "const w = window.innerWidth;"
            "return document.documentElement.scrollWidth <= w && document.body.scrollWidth <= w;"
        )
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack("!II", data[16:24])
    return width, height


def test_kp_page_shows_transtelecom_arriving_and_the_shares_at_the_end(
    browser: WebDriver, base_url: str, store: Store, tmp_path: Path
) -> None:
    browser.set_window_size(1280, 1500)
    open_target_page(browser, base_url + "/targets/KP")

    traces = {t["name"]: t for t in chart_traces(browser, "share-chart")}
    tt = next(t for t in traces.values() if t["meta"] and t["meta"].get("asn") == 20485)
    assert tt["name"] == "AS20485 TRANSTELECOM (RU)"
    # the event marker sits at the exact time AS20485 was first seen, and it is its first appearance
    added = traces["upstream added"]
    marks = [x for x, text in zip(added["x"], added["text"], strict=True) if text.startswith("AS20485 ")]
    assert marks[0] == "2017-10-01T09:07:51Z"
    assert min(marks) == marks[0]
    # the stacked area: no share before that, a share from the first series point after it
    first = next(i for i, y in enumerate(tt["y"]) if y > 0)
    assert tt["x"][first - 1] < "2017-10-01T09:07:51Z" < tt["x"][first] == "2017-10-01T09:10:00Z"
    # and the timeline lists it, with that time, as its first event
    first_event = browser.find_element(By.CSS_SELECTOR, "#timeline li")
    assert first_event.get_attribute("data-time") == "2017-10-01T09:07:51Z"
    assert first_event.get_attribute("data-upstream") == "20485"
    assert first_event.get_attribute("data-type") == "upstream_added"
    # plotly drew it: the legend names the upstream
    legend = browser.find_element(By.CSS_SELECTOR, "#share-chart .legend").text
    assert "AS20485 TRANSTELECOM (RU)" in legend and "AS4837 CHINA169-BACKBONE (CN)" in legend

    # the table has the upstreams of the window end, with the store's shares, in its order
    state = store.state("KP", "upstreams")
    rows = browser.find_elements(By.CSS_SELECTOR, "#upstreams tbody tr")
    assert [int(r.get_attribute("data-asn") or 0) for r in rows] == [u["asn"] for u in state] == [4837, 20485]
    for row, u in zip(rows, state, strict=True):
        assert row.find_element(By.CSS_SELECTOR, ".share").text == f"{100 * u['share']:.1f}%"
        assert u["name"] in row.text
    assert [r.find_element(By.CSS_SELECTOR, ".share").text for r in rows] == ["79.6%", "20.4%"]

    # the visibility chart shades the four outages
    vis = {t["name"]: t for t in chart_traces(browser, "visibility-chart")}
    starts = [o["start"] for o in store.state("KP", "outages")]
    assert vis["outage start"]["x"] == starts and len(starts) == 4

    # every asset came from this server
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(base_url + "/") for r in resources)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    shot = SCREENSHOT if os.environ.get("TRANSITWATCH_UPDATE_SCREENSHOT") == "1" else tmp_path / "web-kp.png"
    assert browser.save_screenshot(str(shot))
    width, height = png_size(shot)
    assert width >= 1200 and height >= 1000


def test_phone_width_has_no_horizontal_overflow(browser: WebDriver, base_url: str) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        open_target_page(browser, base_url + "/targets/KP")
        assert browser.execute_script("return window.innerWidth") == PHONE["width"]
        assert no_horizontal_overflow(browser)
        chart_width = browser.execute_script("return document.getElementById('share-chart').offsetWidth")
        assert 0 < chart_width <= PHONE["width"]
        browser.get(base_url + "/events/d7185e15d472f5a0")
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "facts").is_displayed())
        assert no_horizontal_overflow(browser)
        browser.get(base_url + "/")
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "target-search").is_displayed())
        assert no_horizontal_overflow(browser)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_index_search_filters_as_you_type(browser: WebDriver, base_url: str) -> None:
    browser.get(base_url + "/")
    box = WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "target-search"))
    row = browser.find_element(By.CSS_SELECTOR, "#targets tbody tr")
    count = browser.find_element(By.ID, "target-count")
    box.send_keys("transtelecom")  # an upstream's name finds the target it carries
    WebDriverWait(browser, WAIT_S).until(lambda d: row.is_displayed() and count.text == "1")
    box.send_keys(" ZZ")
    WebDriverWait(browser, WAIT_S).until(lambda d: not row.is_displayed() and count.text == "0")
    box.clear()
    box.send_keys("AS4837")
    WebDriverWait(browser, WAIT_S).until(lambda d: row.is_displayed())
    row.find_element(By.LINK_TEXT, "KP").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.current_url == base_url + "/targets/KP")


def test_timeline_links_to_the_evidence(browser: WebDriver, base_url: str) -> None:
    open_target_page(browser, base_url + "/targets/KP")
    link = browser.find_element(By.CSS_SELECTOR, "#timeline li[data-time='2017-10-01T09:07:51Z'] a")
    link.click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.current_url.endswith("/events/d7185e15d472f5a0"))
    facts = browser.find_element(By.ID, "facts").text
    assert "rrc00 80.26.106.5 AS6762" in facts  # the first peer
    assert "31 of 38 full-feed peers" in facts
    assert "route-views2, rrc00" in facts
    links = browser.find_elements(By.CSS_SELECTOR, "#prefix-links tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in links] == [
        "175.45.176.0/24",
        "175.45.178.0/24",
        "175.45.179.0/24",
    ]
    assert all(r.find_elements(By.TAG_NAME, "td")[1].text == "2017-10-01T09:07:51Z" for r in links)
