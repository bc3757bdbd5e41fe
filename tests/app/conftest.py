"""Fixtures for the AppTest page tests: an app factory and a data folder holding one finished run."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dlcore
from dlcore.train.worker import run_job
from app_pages.common.ui import PAGE_FILES

APP = Path(__file__).resolve().parents[2] / "app.py"


def open_page(page: str | None = None, timeout: float = 90, **state) -> AppTest:
    """The app, run once, then switched to a page the way a user reaches it: through app.py's navigation.

    Args:
        page: a key of ``ui.PAGE_FILES`` ("train", "filters", …); None stays on Home.
        state: session state set before the first run.
    """
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(PAGE_FILES[page]).run()
    return at


def no_errors(at: AppTest) -> None:
    """Neither an uncaught exception nor an error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


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
