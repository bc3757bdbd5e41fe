"""Fixtures for the AppTest page tests: an app factory and a data folder holding one finished run."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dlcore
from dlcore.train.worker import run_job

APP = Path(__file__).resolve().parents[2] / "app.py"


def open_page(page: str | None = None, timeout: float = 90, **state) -> AppTest:
    """The app, run once, then switched to ``pages/<page>.py`` (with session state set first)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    return at


def no_errors(at: AppTest) -> None:
    """Neither an uncaught exception nor an error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(autouse=True)
def _navigation_mode(request, monkeypatch):
    """Run pages through app.py's st.navigation, as a live server does after its first run.

    A server decides once per process whether an app with a ``pages/`` folder is a legacy multipage app
    and app.py's ``st.navigation`` turns that off for good; AppTest re-decides before every run, so each
    run would first execute the page without app.py (``ui.require_navigation`` then reruns, dropping the
    button click being tested). Tests marked ``legacy_pages`` keep AppTest's behaviour to test that path.
    """
    if request.node.get_closest_marker("legacy_pages"):
        return
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def pytest_configure(config):
    config.addinivalue_line("markers", "legacy_pages: let AppTest treat pages/ as a legacy multipage folder")


@pytest.fixture(scope="session")
def _finished_store(tmp_path_factory):
    """A data folder with one completed run: a tiny CNN, one epoch on the 8×8 digits (trained in-process)."""
    root = tmp_path_factory.mktemp("dle-finished")
    store = dlcore.RunStore(root)
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny").replace(padding="same"),
                       dlcore.TrainSpec(epochs=1, seed=1234), name="tiny digits CNN")
    assert run_job(rid, store) == "completed"
    return root, rid


@pytest.fixture
def finished_run(_finished_store, monkeypatch) -> str:
    """The id of a completed run; DLE_DATA_DIR points at its folder for this test."""
    root, rid = _finished_store
    monkeypatch.setenv("DLE_DATA_DIR", str(root))
    return rid
