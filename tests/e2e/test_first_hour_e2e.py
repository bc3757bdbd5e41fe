"""The first hour in a real browser (issue 10): hostile names stay text, presentation mode survives a reload
and enlarges tags and progress texts without clipping, a bad number is said next to its field, Build hands
its model to an open Train form, and the Runs page's ONNX download is a model onnxruntime runs.

Screenshots go to test-artifacts/e2e/first-hour-*.png.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from _server import CHROMIUM, chromium_page, exceptions, full_page_screenshot, ROOT, serving, settle

import dlcore

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
NAME = "[x](http://evil) ![i](http://127.0.0.1:9/x.png) <img src=x> **b** $x$ :red[x]"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    root = tmp_path_factory.mktemp("dle-e2e-first-hour")
    old = os.environ.get("DLE_DATA_DIR")
    os.environ["DLE_DATA_DIR"] = str(root)
    try:
        import dlcore
        from dlcore.train.worker import run_job

        store = dlcore.RunStore(root)
        runs = {}
        for key, preset, data in (("cnn", "cnn-tiny", "mnist5k"), ("gru", "rnn-tiny", "mnist-rows")):
            rid = store.create(dlcore.DataSpec(name=data), dlcore.get_preset(preset),
                               dlcore.TrainSpec(epochs=1, max_steps=20), name=NAME if key == "cnn" else "rows GRU")
            assert run_job(rid, store) == "completed"
            runs[key] = rid
    finally:
        if old is None:
            os.environ.pop("DLE_DATA_DIR", None)
        else:
            os.environ["DLE_DATA_DIR"] = old
    with serving(root, runs=runs) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with chromium_page(accept_downloads=True) as pg:
        requests = []
        pg.on("request", lambda r: requests.append(r.url))
        pg.requests = requests
        yield pg


def _open(page, server, path: str, heading: str) -> None:
    page.goto(server.url + path)
    page.get_by_role("heading", name=heading, exact=True).first.wait_for()
    settle(page)


def test_hostile_names_are_text_in_the_browser(server, page):
    page.requests.clear()
    for path, heading in ((f"/train?run={server.runs['cnn']}", "Train"), (f"/runs?run={server.runs['cnn']}", "Runs"),
                          ("/", "Deep Learning Explorer")):
        _open(page, server, path, heading)
        assert not exceptions(page), path
        links = page.locator("a").evaluate_all("els => els.map(e => e.href)")
        # links to another origin (a heading's own anchor, #…, stays on the app)
        assert not [h for h in links if not h.startswith(server.url) and ("evil" in h or "127.0.0.1:9" in h)], path
        assert page.locator('img[src="x"], img[src*="127.0.0.1:9"]').count() == 0, path
        shown = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').innerText")
        assert NAME in shown.replace("\u2060", ""), path  # shown, literally (a word joiner stops auto-links)
    assert not [u for u in page.requests if "127.0.0.1:9" in u or "evil" in u]  # nothing fetched
    page.goto(server.url + "/train?run=" + "[sign in](http://evil)")
    page.get_by_text("was not found").wait_for()
    assert page.locator('a[href^="http://evil"]').count() == 0
    full_page_screenshot(page, ARTIFACTS / "first-hour-injection.png")


def test_presentation_mode_survives_a_reload_and_enlarges_the_small_text(server, page):
    _open(page, server, f"/runs?run={server.runs['cnn']}", "Runs")
    page.get_by_text("Presentation mode").click()
    page.wait_for_url("**present=true**")
    settle(page)
    page.reload()
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    settle(page)
    assert "present=true" in page.url
    assert page.locator('header[data-testid="stHeader"]').is_hidden()  # the presentation stylesheet is on
    tag = page.locator('[data-testid="stMultiSelectTagsContainer"] [data-tag] span').first
    assert float(tag.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 24
    full_page_screenshot(page, ARTIFACTS / "first-hour-runs-presentation.png")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Train", exact=True).click()
    page.get_by_role("heading", name="Train", exact=True).wait_for()
    settle(page)
    assert "present=true" in page.url  # kept across pages
    fits = page.evaluate("""() => {
        const p = document.querySelector('[data-testid="stProgress"] p');
        const bar = document.querySelector('[data-testid="stProgressBarTrack"]');
        return {size: parseFloat(getComputedStyle(p).fontSize),
                clear: p.getBoundingClientRect().bottom <= bar.getBoundingClientRect().top + 1}; }""")
    assert fits["size"] >= 24 and fits["clear"], fits  # large, and not cut by its bar
    full_page_screenshot(page, ARTIFACTS / "first-hour-train-presentation.png")
    page.get_by_text("Presentation mode").click()  # off again for the next tests
    settle(page)


def test_a_bad_learning_rate_is_said_next_to_the_field(server, page):
    _open(page, server, "/train", "Train")
    page.get_by_text("Start a new run").click()
    lr = page.get_by_label("lr", exact=True)
    lr.fill("1e6")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("lr 1e+06 is too large: it must be between 1e-07 and 10.").wait_for()
    page.get_by_text("Not started: fix the value marked in red above.").wait_for()
    full_page_screenshot(page, ARTIFACTS / "first-hour-bad-number.png")
    lr.fill("0.001")  # fixed: the run starts; while it completes there is one "All runs" link, never two
    page.get_by_label("epochs", exact=True).fill("1")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url("**run=**")
    most, deadline = 0, time.time() + 240
    while time.time() < deadline and not page.get_by_text("test accuracy").count():
        most = max(most, page.get_by_role("link", name="All runs").count())
        page.wait_for_timeout(100)
    settle(page)
    most = max(most, page.get_by_role("link", name="All runs").count())
    if not page.get_by_text("test accuracy").count():  # say why: the run's state and the server's last words
        run = dlcore.RunStore(server.data_dir).get(page.url.split("run=")[1].split("&")[0])
        log = (server.data_dir / "streamlit.log").read_text(errors="replace")[-1500:]
        full_page_screenshot(page, ARTIFACTS / "first-hour-no-result.png")
        pytest.fail(f"no test accuracy after 240 s: run {run.status} ({run.error}); server log: {log}")
    assert most == 1


def test_build_hands_its_model_to_an_open_train_form(server, page):
    _open(page, server, f"/train?run={server.runs['gru']}", "Train")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Build", exact=True).click()
    page.get_by_role("heading", name="Build", exact=True).wait_for()
    settle(page)
    page.get_by_role("button", name="Train this model").click()
    page.get_by_role("button", name="Start training").wait_for()  # the form is open
    settle(page)
    assert "run=" not in page.url
    assert page.get_by_text("No run is being watched").is_visible()
    full_page_screenshot(page, ARTIFACTS / "first-hour-build-to-train.png")


def test_the_onnx_download_is_a_model_onnxruntime_runs(server, page, tmp_path):
    import onnxruntime as ort

    _open(page, server, f"/runs?run={server.runs['cnn']}", "Runs")
    page.get_by_role("button", name="Export the model").click()
    with page.expect_download(timeout=120_000) as dl:
        page.get_by_role("button", name="ONNX (.onnx)").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.suffix == ".onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((2, 1, 28, 28), np.float32)})[0]
    assert out.shape == (2, 10)
