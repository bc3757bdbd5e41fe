"""The real browser path: Home → quick start → live curve → finished run in Runs, then every page.

Drives ``streamlit run app.py`` in headless Debian Chromium; screenshots go to test-artifacts/e2e/ and
the timings to test-artifacts/e2e/timings.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _server import CHROMIUM, chromium_page, exceptions, full_page_screenshot, ROOT, serving, settle

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts" / "e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    with serving(tmp_path_factory.mktemp("dle-e2e")) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with chromium_page(timeout_ms=60_000) as pg:
        yield pg


def test_quick_start_to_a_finished_run_and_every_page(server, page):
    timings = {}
    t = time.perf_counter()
    page.goto(server.url + "/")
    settle(page)
    timings["home_render_s"] = time.perf_counter() - t - 1.0
    assert not exceptions(page)
    full_page_screenshot(page, ARTIFACTS / "home.png")

    t0 = time.perf_counter()
    page.get_by_role("button", name="Train the tutorial CNN on MNIST").click()
    page.wait_for_url("**/train?run=*")
    timings["quickstart_click_to_train_page_s"] = time.perf_counter() - t0
    run_id = page.url.split("run=")[1].split("&")[0]
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=120_000)  # the loss curve
    timings["quickstart_click_to_first_curve_s"] = time.perf_counter() - t0
    assert not exceptions(page)
    full_page_screenshot(page, ARTIFACTS / "train-live.png")
    page.get_by_text("test accuracy").wait_for(timeout=300_000)  # shown once the run has completed
    timings["quickstart_click_to_finished_run_s"] = time.perf_counter() - t0
    settle(page)
    assert not exceptions(page)
    full_page_screenshot(page, ARTIFACTS / "train-done.png")

    t = time.perf_counter()
    page.reload()  # a reload keeps the watched run (it is in the URL)
    settle(page)
    timings["train_render_s"] = time.perf_counter() - t - 1.0
    assert page.get_by_role("combobox", name="Watch run").input_value() == f"Tutorial CNN on MNIST · {run_id}"

    for name in ("runs", "data", "build"):
        t = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"]').get_by_text(name.capitalize(), exact=True).click()
        page.wait_for_url(f"**/{name}*")  # the page keeps ?who= (the person's name, or their guest id)
        settle(page)
        timings[f"{name}_render_s"] = time.perf_counter() - t - 1.0  # settle() waits 1 s of quiet
        assert not exceptions(page), name
        if name == "runs":  # the finished run is in the table (a canvas) and chosen for details
            assert page.get_by_role("combobox", name="Run", exact=True).input_value() == \
                f"Tutorial CNN on MNIST · {run_id}"
            page.get_by_text("Status: completed").wait_for()
            page.get_by_text("Confusion matrix (1,000 test examples)").wait_for()
        full_page_screenshot(page, ARTIFACTS / f"{name}.png")

    page.get_by_text("Presentation mode").click()  # large type for a classroom
    settle(page)
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector("
                         "'[data-testid=\"stMarkdownContainer\"] p')).fontSize)")
    assert size >= 24
    assert page.locator('header[data-testid="stHeader"]').is_hidden()
    full_page_screenshot(page, ARTIFACTS / "build-presentation.png")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2))
    print(json.dumps(timings, indent=2))
