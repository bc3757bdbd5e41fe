"""Shared fixtures: every test session gets its own data folder; models are seeded (captum uses 1234)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# warm workers started by app tests leave soon after the suite instead of idling for ten minutes
os.environ.setdefault("DLE_WARM_WORKER_IDLE_S", "20")
# a fresh data folder stays empty (the app installs the starter runs into it otherwise); tests/starters and
# the e2e tests that need them turn them on
os.environ.setdefault("DLE_STARTERS", "0")


@pytest.fixture(autouse=True, scope="session")
def _data_dir(tmp_path_factory):
    """Point DLE_DATA_DIR at a fresh folder for the whole session (runs, uploads, store.db)."""
    path = tmp_path_factory.mktemp("dle-data")
    old = os.environ.get("DLE_DATA_DIR")
    os.environ["DLE_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DLE_DATA_DIR", None)
    else:
        os.environ["DLE_DATA_DIR"] = old


@pytest.fixture
def fresh_dir(tmp_path, monkeypatch):
    """A data folder of the test's own (for tests that must start empty)."""
    monkeypatch.setenv("DLE_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def seeded():
    import torch

    torch.manual_seed(1234)
    return 1234
