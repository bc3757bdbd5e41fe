"""Fixtures for the hostile-input suite: a sandboxed data folder and a 'refuses' checker that also proves
nothing was left behind anywhere. The hostile files themselves are built in hostile_files.py."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A data folder of the test's own inside tmp_path, with the working directory next to it, so any
    file written outside the data folder shows up in tmp_path. Workers still active when the test ends
    (it failed half-way) get SIGTERM, so they do not slow down the tests after it."""
    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("DLE_DATA_DIR", str(data))
    monkeypatch.chdir(cwd)
    yield SimpleNamespace(root=tmp_path, data=data, cwd=cwd)
    db = data / "store.db"
    if db.exists():
        con = sqlite3.connect(db, timeout=30)
        try:
            rows = con.execute("SELECT id, pid FROM runs WHERE status IN ('queued', 'running') AND pid IS NOT NULL "
                               "AND pid != ?", (os.getpid(),)).fetchall()
        except sqlite3.DatabaseError:
            rows = []  # a test wrote a junk store.db on purpose
        finally:
            con.close()
        for run_id, pid in rows:
            try:  # only our own worker: its command line names the run
                if run_id in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


def tree(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


@pytest.fixture
def refuses(sandbox):
    """``refuses(Error, fn, *patterns)``: fn raises exactly that error type with a message matching every
    pattern, and the sandbox holds no new file (no dataset folder, no temp folder, nothing outside)."""

    def check(exc: type, fn, *patterns: str) -> str:
        before = tree(sandbox.root)
        with pytest.raises(exc) as info:
            fn()
        msg = str(info.value)
        for pat in patterns:
            assert re.search(pat, msg, re.IGNORECASE), f"{pat!r} not in message: {msg}"
        assert "Traceback" not in msg
        new = tree(sandbox.root) - before - {"data", "data/datasets"}
        assert not new, f"left behind: {sorted(new)}"
        return msg

    return check
