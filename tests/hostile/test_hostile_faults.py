"""Faults during training: kill -9 mid-epoch, SIGTERM, a diverging loss, out-of-memory, a full disk while
checkpointing, a worker that cannot start. Each ends with the run in a final state with a reason, the
last checkpoint intact and loadable, the run store consistent, and the run resumable."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import dlcore
import dlcore.runs.checkpoint as ckpt_module
from dlcore import DataSpec, RunStore, TrainSpec
from dlcore.train.worker import run_job

TINY = dlcore.get_preset("cnn-tiny").replace(padding="same")  # fits 8×8 digits
SECRET = "s3cr3t-value-that-must-not-leak"


def poll(predicate, timeout: float = 90, every: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not reached in time")


def steps_logged(store: RunStore, run_id: str) -> list[int]:
    return [r["step"] for r in store.metrics(run_id, "step")]


def test_kill_9_mid_epoch_then_queue_moves_on_and_resume_finishes(sandbox, monkeypatch):
    """With one slot: A trains, B waits, C is cancelled while queued, and a 'ghost' whose worker died in the
    queue is swept out of B's way. A is killed with SIGKILL mid-epoch; nobody polls A, yet B's worker
    notices the dead run, marks it failed and takes the slot. A's last checkpoint loads, the store passes
    PRAGMA integrity_check, and resuming A replays the lost steps exactly once."""
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "1")
    monkeypatch.setenv("DLE_TEST_SECRET_TOKEN", SECRET)
    store = RunStore()
    a = dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=3, batch_size=16, log_every=4), store=store,
                         owner="alice")
    ghost = store.create(DataSpec(name="digits"), TINY, TrainSpec(), owner="ghost")  # its worker died in the queue
    exited = subprocess.Popen(["true"])
    exited.wait()
    store.update(ghost, pid=exited.pid)
    b = dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=1, max_steps=3), store=store, owner="bob")
    c = dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=1, max_steps=3), store=store, owner="carol")
    poll(lambda: store.get(a).status == "running")
    poll(lambda: store.get(ghost).status == "failed")  # noticed by a waiting worker: it no longer blocks the queue
    assert "while the run was waiting in the queue" in store.get(ghost).error
    assert dlcore.queue_position(b, store=store) == 1 and dlcore.queue_position(c, store=store) == 2
    dlcore.cancel_run(c, store=store)
    pid = store.get(a).pid
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert SECRET.encode() not in environ and b"DLE_MAX_CONCURRENT_RUNS=1" in environ

    folder = store.run_dir(a)
    poll(lambda: (folder / "checkpoint.safetensors").exists())
    saved = dlcore.load_checkpoint(folder)[1]["step"]
    poll(lambda: max(steps_logged(store, a), default=0) > saved)  # into the next epoch
    os.kill(pid, signal.SIGKILL)

    assert poll(lambda: store.get(b).status == "completed"), store.get(b).error  # store.get: no refresh by us
    run_a = store.get(a)
    assert run_a.status == "failed" and "ended unexpectedly" in run_a.error and "Resume" in run_a.error
    assert store.get(c).status == "cancelled" and "queued" in store.get(c).error
    assert store.integrity_ok()
    tensors, meta = dlcore.load_checkpoint(folder)
    assert meta["step"] < max(steps_logged(store, a)) and meta["epoch"] >= 1
    dlcore.load_run_model(a, store=store)  # the weights rebuild the model

    dlcore.resume_run(a, store=store)
    done = dlcore.wait(a, timeout=120, store=store)
    assert done.status == "completed", done.error
    steps = steps_logged(store, a)
    assert steps == sorted(set(steps)) and steps[-1] == done.summary["steps"]  # replayed once, no duplicates
    assert [r.id for r in dlcore.list_runs(store=store, owner="bob")] == [b]
    for log in folder.glob("*.log"):
        assert SECRET not in log.read_text(errors="replace")
    assert store.integrity_ok()


def test_sigterm_stops_gracefully_with_a_checkpoint(sandbox):
    store = RunStore()
    run_id = dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=50, batch_size=16, log_every=1),
                              store=store)
    poll(lambda: len(steps_logged(store, run_id)) > 3)
    os.kill(store.get(run_id).pid, signal.SIGTERM)
    run = dlcore.wait(run_id, timeout=60, store=store)
    assert run.status == "cancelled" and "stopped by the system (SIGTERM)" in run.error
    assert dlcore.load_checkpoint(store.run_dir(run_id))[1]["step"] >= 3


def test_nan_loss_fails_the_run_naming_the_learning_rate(sandbox, monkeypatch):
    """A real background job with a learning rate of 10: the loss explodes and the run says why, and when."""
    monkeypatch.setenv("DLE_TEST_SECRET_TOKEN", SECRET)
    store = RunStore()
    run_id = dlcore.start_run(DataSpec(name="sunspots"), dlcore.MLPConfig(hidden=(16,)),
                              TrainSpec(epochs=2, lr=10.0, optimizer="sgd"), store=store)
    run = dlcore.wait(run_id, timeout=90, store=store)
    assert run.status == "failed"
    assert run.error.startswith("the loss became") and "step" in run.error
    assert "learning rate (10) is probably too high" in run.error
    error_log = (store.run_dir(run_id) / "error.log").read_text()
    assert "TrainingError" in error_log and SECRET not in error_log
    assert SECRET not in (store.run_dir(run_id) / "worker.log").read_text()


def _in_process_run(store: RunStore, train: TrainSpec) -> str:
    return store.create(DataSpec(name="digits", max_train=256), TINY, train)


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process training on one thread: tiny models gain nothing from more, and a busy CI box loses a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_out_of_memory_is_reported_with_a_smaller_batch(sandbox):
    store = RunStore()
    run_id = _in_process_run(store, TrainSpec(epochs=1, batch_size=32))

    def oom(trainer, row):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert run_job(run_id, store, callbacks=[("on_step_end", oom)]) == "failed"
    run = store.get(run_id)
    assert run.status == "failed"
    assert "ran out of memory" in run.error and "batch size 16 (now 32) with gradient accumulation 2" in run.error
    assert "OutOfMemoryError" in (store.run_dir(run_id) / "error.log").read_text()


def test_full_disk_while_checkpointing(sandbox, monkeypatch):
    """ENOSPC in the second checkpoint: the run fails cleanly, the first checkpoint stays intact, no temp
    file is left, and after space is freed the run resumes from the first checkpoint."""
    store = RunStore()
    run_id = _in_process_run(store, TrainSpec(epochs=3, batch_size=32))
    real_save, calls = ckpt_module.save_file, []

    def full_disk(tensors, path, metadata=None):
        if Path(path).parent.name != "snapshots":  # the per-epoch snapshots write through the same function
            calls.append(path)
        if len(calls) == 2 and Path(path).parent.name != "snapshots":
            Path(path).write_bytes(b"half a checkpoint")  # a partial write before the disk filled
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(ckpt_module, "save_file", full_disk)
    assert run_job(run_id, store) == "failed"
    run = store.get(run_id)
    assert "disk is full" in run.error and "resume" in run.error.lower()
    folder = store.run_dir(run_id)
    assert not list(folder.glob(".*.tmp")), "a temporary checkpoint file was left behind"
    tensors, meta = dlcore.load_checkpoint(folder)
    assert meta["epoch"] == 1
    dlcore.load_run_model(run_id, store=store)
    assert store.integrity_ok()

    monkeypatch.setattr(ckpt_module, "save_file", real_save)  # space freed
    store.update(run_id, status="queued", error=None, finished=None)
    assert run_job(run_id, store, resume=True) == "completed"
    assert dlcore.load_checkpoint(folder)[1]["epoch"] == 3


def test_worker_that_cannot_start_fails_the_run(sandbox, monkeypatch):
    """No processes left (EAGAIN): start_run says so and the run is not left queued forever."""
    def no_fork(*a, **k):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    store = RunStore()
    with pytest.raises(dlcore.TrainingError, match="could not be started.*Resource temporarily unavailable"):
        dlcore.start_run(DataSpec(name="digits"), TINY, TrainSpec(epochs=1), store=store)
    (run,) = store.list()
    assert run.status == "failed" and "try again" in run.error
