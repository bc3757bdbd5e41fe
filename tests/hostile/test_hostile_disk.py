"""A full disk, for real: small tmpfs mounts (root only; skipped otherwise). Every write that fails says
"the disk is full" in a typed error, and leaves nothing half-written behind: no dataset folder, no
``.tmp-`` folder, no run row or folder, no temporary checkpoint; the previous checkpoint stays loadable."""
from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
import torch
from hostile_files import good_images, make_zip

import dlcore
import dlcore.train.jobs as jobs
from dlcore import DataError, DataSpec, RunStore, StoreError, TrainSpec
from dlcore.errors import describe_failure, is_disk_full
from dlcore.runs.checkpoint import save_checkpoint
from dlcore.train.worker import run_job

TINY = dlcore.get_preset("cnn-tiny").replace(padding="same")


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a tmpfs of that size (e.g. "2m") at a fresh folder under tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts: list[Path] = []

    def mount(size: str, where: Path | None = None) -> Path:
        where = where or tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system holding ``folder`` until ``leave`` bytes (about) remain."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(max(4096, free - leave), 1 << 20))
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


def listing(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def test_start_run_on_a_full_disk_is_a_store_error_and_records_nothing(tmpfs, monkeypatch):
    data = tmpfs("2m")
    monkeypatch.setenv("DLE_DATA_DIR", str(data))
    monkeypatch.setattr(jobs, "_spawn", lambda *a, **k: pytest.fail("no worker may start"))
    store = RunStore()
    (data / "runs").mkdir(exist_ok=True)
    filler = fill(data)
    before = listing(data)
    with pytest.raises(StoreError, match="the disk is full") as info:
        dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=1), store=store)
    assert "OperationalError" not in str(info.value) and isinstance(info.value, dlcore.USER_ERRORS)
    assert listing(data) - before <= {"store.db-wal", "store.db-shm"}, "a run folder was left behind"
    filler.unlink()
    assert store.list() == [] and store.integrity_ok()


def test_a_new_store_on_a_full_disk_is_a_store_error(tmpfs):
    data = tmpfs("1m")
    fill(data)
    with pytest.raises(StoreError, match="disk is full|cannot be opened or written"):
        RunStore(data / "fresh")


def test_an_import_on_a_full_disk_leaves_nothing(tmpfs, monkeypatch):
    """The data is larger than the space left: safetensors raises SafetensorError (not OSError) mid-write."""
    data = tmpfs("2m")
    monkeypatch.setenv("DLE_DATA_DIR", str(data))
    datasets = dlcore.data.user.datasets_dir()
    fill(data, leave=96 * 1024)
    with pytest.raises(DataError, match="could not be saved: the disk is full.*free some disk space"):
        dlcore.import_image_zip(make_zip(good_images()), image_size=256)  # 4 × 256 × 256 bytes
    assert list(datasets.iterdir()) == [], "a failed import left a folder"


def test_an_import_when_not_even_a_folder_fits(tmpfs, monkeypatch):
    data = tmpfs("1m")
    monkeypatch.setenv("DLE_DATA_DIR", str(data))
    datasets = dlcore.data.user.datasets_dir()
    fill(data)
    with pytest.raises(DataError, match="could not be saved"):
        dlcore.import_text_corpus(("hello world " * 400).encode(), window=16)
    assert [p.name for p in datasets.iterdir()] == []


def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one(tmpfs):
    folder = tmpfs("1m")
    small = {"w": torch.ones(1000)}
    save_checkpoint(folder, small, {"step": 1})
    with pytest.raises(OSError) as info:
        save_checkpoint(folder, {"w": torch.ones(1_000_000)}, {"step": 2})  # 4 MB on a 1 MB disk
    assert info.value.errno == errno.ENOSPC
    assert describe_failure(info.value).startswith("the disk is full")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "checkpoint.safetensors"]
    tensors, meta = dlcore.load_checkpoint(folder)
    assert meta["step"] == 1 and torch.equal(tensors["w"], small["w"])


def test_a_run_whose_folder_fills_up_fails_saying_the_disk_is_full(tmpfs, sandbox):
    """A real in-process run whose run folder sits on a 64 kB disk: its first checkpoint cannot be
    written; the run ends 'failed' with "the disk is full", not "internal error (SafetensorError ...)"."""
    store = RunStore()
    run_id = store.create(DataSpec(name="digits", max_train=128), TINY, TrainSpec(epochs=1, batch_size=32))
    tmpfs("64k", store.run_dir(run_id))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_job(run_id, store) == "failed"
    finally:
        torch.set_num_threads(threads)
    run = store.get(run_id)
    assert run.error.startswith("the disk is full") and "resume" in run.error.lower(), run.error
    assert "SafetensorError" not in run.error and "internal error" not in run.error
    assert not list(store.run_dir(run_id).glob(".*.tmp"))


def test_every_form_of_a_full_disk_is_recognised():
    from safetensors import SafetensorError

    forms = [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Disk quota exceeded"),
             SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
             sqlite3.OperationalError("database or disk is full")]
    for e in forms:
        assert is_disk_full(e), e
        assert describe_failure(e).startswith("the disk is full"), e
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = forms[2]
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert describe_failure(OSError(errno.EACCES, "Permission denied")).startswith("internal error")


def test_a_full_disk_under_the_store_itself_still_names_the_disk(tmpfs, monkeypatch):
    """store.db and the run folder on one small disk that fills up mid-training: the worker cannot write its
    reason into the store, so it leaves it in the file it reserved at start and exits; whoever notices the
    dead process (the reaper, ``refresh``) reports "the disk is full", not "ended unexpectedly"."""
    root = tmpfs("3m")
    monkeypatch.setenv("DLE_DATA_DIR", str(root))
    store = RunStore(root)
    run_id = store.create(DataSpec(name="digits", max_train=128), TINY, TrainSpec(epochs=3, batch_size=16,
                                                                                 log_every=1))
    real_log = store.log

    def log_then_fill(*a, **k):  # the disk fills up once training has begun
        real_log(*a, **k)
        if not (root / "filler").exists():
            fill(root)
    monkeypatch.setattr(store, "log", log_then_fill)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            outcome = run_job(run_id, store)
        except SystemExit:
            outcome = "exited"
    finally:
        torch.set_num_threads(threads)
    (root / "filler").unlink()
    run = store.get(run_id)
    if outcome == "exited":  # the store refused the final status: the reason is in the last words
        assert run.status == "running"
        assert store.last_words(run_id).startswith("the disk is full"), store.last_words(run_id)
        store.update(run_id, pid=2**22 + 12345)  # the process is gone now (a pid that cannot exist)
        run = jobs.refresh(store.get(run_id), store)
    assert run.status == "failed" and run.error.startswith("the disk is full"), (outcome, run.error)


def test_dead_reason_prefers_the_last_words():
    from dlcore.runs.store import dead_reason

    assert dead_reason(5, 0.5, "running", "the disk is full: free space") == "the disk is full: free space"
    assert "ended unexpectedly" in dead_reason(5, 0.5, "running", "")
