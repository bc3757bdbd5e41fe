"""Workspaces in a real browser: a name typed in the sidebar goes into the address (?who=) and survives a
reload; a second browser with another name does not see the first one's run, and that run's id in its URL
is a clear message, not the run; a teacher's Class page (screenshot test-artifacts/e2e/teacher-class.png)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e._server import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDTH, AppServer, exceptions, full_page_screenshot, settle

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts" / "e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    root = tmp_path_factory.mktemp("dle-e2e-access")
    old = {k: os.environ.get(k) for k in ("DLE_DATA_DIR", "DLE_TEACHERS")}
    os.environ["DLE_DATA_DIR"], os.environ["DLE_TEACHERS"] = str(root), "mrs-t"
    try:
        import dlcore
        from dlcore.train.worker import run_job

        store = dlcore.RunStore(root)
        runs = {}
        # real (small) runs, so the teacher's screenshot shows real numbers: ~25 s on one core
        for owner, preset, data, train in (
                ("ada", "cnn-tiny", "digits", dict(epochs=3, lr=3e-3)),
                ("ben", "rnn-tiny", "digits", dict(epochs=3, lr=3e-3)),
                ("ben", "transformer-tiny", "reverse", dict(epochs=1, max_steps=150, eval_max=256)),
                ("cleo", "cnn-tiny", "digits", dict(epochs=2, lr=3e-3))):
            model = dlcore.get_preset(preset)
            model = model.replace(padding="same") if preset == "cnn-tiny" else model  # 8×8 digits
            rid = store.create(dlcore.DataSpec(name=data), model, dlcore.TrainSpec(seed=1234, **train),
                               name=f"{owner}'s private {preset}", owner=owner, shared=owner == "ben")
            assert run_job(rid, store) == "completed"
            runs.setdefault(owner, rid)
        srv = AppServer(root)  # with DLE_TEACHERS in its environment
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    srv.runs = runs
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser):
    page = browser.new_context(viewport={"width": WIDTH, "height": 900}).new_page()  # a browser of its own
    page.set_default_timeout(90_000)
    return page


def _open(page, url: str, heading: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading, exact=True).first.wait_for()
    settle(page)


def test_a_typed_name_survives_a_reload_and_another_browser_sees_none_of_it(server, browser):
    ada = _page(browser)
    _open(ada, server.url + "/runs", "Runs")
    ada.get_by_text("2 runs. Newest first.").wait_for()  # a guest: Ben's two shared runs only
    name = ada.locator('[data-testid="stSidebar"] input[aria-label="Your name"]')
    name.fill("Ada")
    name.press("Enter")
    ada.wait_for_url("**who=Ada**")
    settle(ada)
    ada.get_by_text("3 runs. Newest first.").wait_for()
    ada.reload()
    ada.get_by_role("heading", name="Runs", exact=True).wait_for()
    settle(ada)
    assert name.input_value() == "Ada" and "who=Ada" in ada.url
    ada.get_by_text("Runs of Ada").first.wait_for()
    ada.get_by_text("3 runs. Newest first.").wait_for()  # hers and Ben's shared ones, after the reload too
    ada.get_by_role("link", name="Open in Train").click()  # a page link with ?run=: the name goes along
    ada.get_by_role("heading", name="Train", exact=True).wait_for()
    settle(ada)
    ada.reload()
    ada.get_by_role("heading", name="Train", exact=True).wait_for()
    settle(ada)
    assert "who=Ada" in ada.url and "run=" in ada.url
    ada.get_by_text("Runs of Ada").first.wait_for()
    assert not exceptions(ada)

    ben = _page(browser)
    _open(ben, f"{server.url}/train?who=ben&run={server.runs['ada']}", "Train")
    ben.get_by_text("was not found among the runs you can open").wait_for()
    assert "ada's private" not in ben.inner_text("body")
    assert not exceptions(ben)
    ada.context.close(), ben.context.close()


def test_the_teacher_sees_the_class(server, browser):
    page = _page(browser)
    _open(page, server.url + "/class_view?who=mrs-t", "Class")
    page.get_by_text("Every run, by student").wait_for()
    assert page.locator(".js-plotly-plot").count() >= 1 and not exceptions(page)
    full_page_screenshot(page, ARTIFACTS / "teacher-class.png")
    page.context.close()
