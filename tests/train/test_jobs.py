"""Background jobs end to end: a worker process trains a tiny model; cancel, kill -9, resume, and refusals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlcore import (DataSpec, ResourceError, RunStore, SpecError, Trainer, TrainSpec, cancel_run, get_preset,
                    get_run, list_runs, load_dataset, load_run_model, predict, queue_position, resume_run, start_run,
                    wait)

MODEL = get_preset("cnn-tiny").replace(padding="same")  # 3.7K params on 8×8 digits, no dropout: exact replays
DATA = DataSpec(name="digits", max_train=300)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The worker trains on one thread (two cores, four slots); the in-process reference must do the same."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def store(fresh_dir):
    return RunStore(fresh_dir)


def _poll(fn, timeout: float = 60, every: float = 0.05):
    """Call fn until it returns something truthy; the value, or an AssertionError after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def _epochs(store, run_id) -> list[int]:
    return [int(r["epoch"]) for r in store.metrics(run_id, "epoch")]


def test_a_job_trains_in_its_own_process_and_records_everything(store):
    train = TrainSpec(epochs=2, lr=1e-2, device="cpu")
    run_id = start_run(DATA, MODEL, train, name="tiny job", store=store, owner="me")
    run = wait(run_id, timeout=120, store=store)
    assert run.status == "completed", run.error
    assert run.name == "tiny job" and run.owner == "me" and run.progress == 1.0 and run.pid != os.getpid()
    assert run.params == 3658 and run.device == "cpu" and run.duration > 0
    assert 0.2 < run.summary["test_accuracy"] <= 1.0 and run.summary["epochs_done"] == 2
    assert _epochs(store, run_id) == [1, 2]
    steps = store.metrics(run_id, "step")
    assert steps and steps[-1]["step"] == 18 and all(r["loss"] > 0 for r in steps)  # 270 examples / 32 × 2
    # the checkpoint rebuilds the model from its own spec
    _, model = load_run_model(run_id, store)
    x, y = load_dataset(DATA).test
    acc = float((predict(model, x).argmax(-1) == y).float().mean())
    assert acc == pytest.approx(run.summary["test_accuracy"], abs=1e-6)
    assert [r.id for r in list_runs(store, owner="me")] == [run_id] and list_runs(store, owner="you") == []
    assert queue_position(run_id, store) == 0
    with pytest.raises(ValueError, match="already completed"):
        resume_run(run_id, store)


def test_cancel_kill_and_resume_reach_the_same_model_as_an_uninterrupted_run(store):
    train = TrainSpec(epochs=16, batch_size=8, lr=3e-3, seed=5, log_every=5, device="cpu")  # 34 steps/epoch
    run_id = start_run(DATA, MODEL, train, store=store)

    # cancel: the worker stops at its next check, saves a checkpoint and ends 'cancelled'
    _poll(lambda: store.metrics(run_id, "step"))
    cancel_run(run_id, store)
    run = wait(run_id, timeout=60, store=store)
    assert run.status == "cancelled" and "resume" in run.error
    assert (store.run_dir(run_id) / "checkpoint.safetensors").exists()
    assert 0 < run.progress < 1

    # resume, then kill -9 once the resumed run has written an epoch checkpoint
    resume_run(run_id, store)
    done_before = len(_epochs(store, run_id))
    _poll(lambda: len(_epochs(store, run_id)) > done_before and get_run(run_id, store).status == "running")
    pid = get_run(run_id, store).pid
    # rows whose checkpoint is surely on disk (the newest epoch row may precede its checkpoint by a moment)
    kept = [r["id"] for r in store.metrics(run_id, "epoch")][:-1]
    os.kill(pid, signal.SIGKILL)
    t_kill = time.time()
    run = _poll(lambda: (r := get_run(run_id, store)).status == "failed" and r, timeout=10, every=0.1)
    assert time.time() - t_kill < 10
    assert "ended unexpectedly" in run.error and str(pid) in run.error and "Resume" in run.error
    assert run.progress < 1, "the run finished before it could be killed: make it longer"

    # resume to the end: every epoch is recorded once, and the weights equal an uninterrupted run's
    resume_run(run_id, store)
    run = wait(run_id, timeout=120, store=store)
    assert run.status == "completed", run.error
    assert _epochs(store, run_id) == list(range(1, 17))
    assert set(kept) <= {r["id"] for r in store.metrics(run_id, "epoch")}, "resume started over instead of continuing"
    steps = [r["step"] for r in store.metrics(run_id, "step")]
    assert steps == sorted(set(steps)) and steps[-1] == 16 * 34

    reference = Trainer(MODEL, load_dataset(DATA), train)
    reference.fit()
    _, resumed = load_run_model(run_id, store)
    for k, v in reference.raw_model.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_cancel_before_the_worker_starts(store):
    run_id = store.create(DATA, MODEL, TrainSpec())  # a queued row with no process behind it
    cancel_run(run_id, store)
    run = get_run(run_id, store)
    assert run.status == "cancelled" and "before it started" in run.error
    cancel_run(run_id, store)  # cancelling a finished run is a no-op
    assert get_run(run_id, store).status == "cancelled"


def test_bad_runs_are_refused_before_anything_is_written(store):
    with pytest.raises(SpecError) as err:
        start_run(DATA, MODEL, TrainSpec(epochs=0), store=store)
    assert err.value.field == "epochs"
    with pytest.raises(SpecError) as err:  # seed-cnn's 'valid' convolutions shrink an 8×8 digit to nothing
        start_run(DATA, get_preset("seed-cnn"), TrainSpec(), store=store)
    assert err.value.field == "channels"
    with pytest.raises(ResourceError):
        start_run(DataSpec(name="mnist5k"), get_preset("cnn-xl"), TrainSpec(device="cpu"), store=store)
    assert store.list() == []


def test_a_queued_worker_imports_no_torch_until_it_holds_a_slot(store, monkeypatch):
    """Forty queued runs must cost forty small processes, not forty copies of torch."""
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "1")
    busy = store.create(DATA, MODEL, TrainSpec())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", busy])  # names the run: alive
    try:
        store.update(busy, status="running", pid=holder.pid)
        run_id = start_run(DATA, MODEL, TrainSpec(epochs=1, device="cpu"), store=store)
        pid = get_run(run_id, store).pid
        maps = Path(f"/proc/{pid}/maps")
        _poll(lambda: "sqlite" in maps.read_text())  # it is polling the queue
        time.sleep(1.0)
        assert get_run(run_id, store).status == "queued"
        assert "libtorch" not in maps.read_text(), "a queued worker loaded torch"
        cancel_run(run_id, store)
        run = wait(run_id, timeout=30, store=store)
        assert run.status == "cancelled" and run.error == "cancelled while queued"
    finally:
        holder.kill()
        holder.wait()
