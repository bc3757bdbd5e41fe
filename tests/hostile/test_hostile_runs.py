"""Races on a run's state: every status change is a compare-and-set in the store, so concurrent presses of
Resume queue a run once and start one worker, only a queued run is claimed, a running run cannot be
deleted, cancel works, and a worker that did not claim a run leaves it untouched. Real concurrent calls:
threads, processes, and two real worker processes for one run."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

import dlcore
import dlcore.train.jobs as jobs
from dlcore import DataSpec, RunStateError, RunStore, TrainSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = dlcore.get_preset("cnn-tiny").replace(padding="same")  # fits 8×8 digits
DATA = DataSpec(name="digits", max_train=64)


def _together(n: int, fn):
    """Call fn(i) from n threads released at the same instant; returns [(result or exception)]."""
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        try:
            return fn(i)
        except Exception as e:  # the outcome under test
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def _run(store: RunStore, status: str = "failed") -> str:
    run_id = store.create(DATA, TINY, TrainSpec(epochs=1))
    store.update(run_id, status=status, error="boom" if status == "failed" else None)
    return run_id


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def store(sandbox):
    return RunStore()


@pytest.fixture
def spawned(monkeypatch):
    """jobs._spawn replaced by a recorder of the runs a worker would have been started for; the run's own
    checks (prepare_run, tested elsewhere) pass at once, so the presses meet at the state change."""
    calls: list[str] = []
    monkeypatch.setattr(jobs, "_spawn", lambda store, run_id, resume, **kw: calls.append(run_id))
    monkeypatch.setattr(jobs, "prepare_run", lambda data, model, train, **kw: SimpleNamespace(train=train))
    return calls


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_eight_resume_presses_at_once_queue_the_run_once(store, spawned, status):
    run_id = _run(store, status)
    results = _together(8, lambda i: dlcore.resume_run(run_id, store=store))
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 7 and all(isinstance(e, RunStateError) for e in errors), errors
    assert all("already queued" in str(e) or "already running" in str(e) for e in errors)
    assert spawned == [run_id]  # exactly one worker would start
    run = store.get(run_id)
    assert run.status == "queued" and run.error is None and not run.cancel_requested


@pytest.mark.slow
def test_resume_presses_from_separate_processes_start_one_worker(store, sandbox):
    """Three processes (three Streamlit servers, or CLI calls) press Resume at the same instant."""
    run_id = _run(store)
    go = sandbox.root / "go"
    code = ("import sys, time, pathlib, types, dlcore, dlcore.train.jobs as jobs\n"
            "jobs._spawn = lambda store, run_id, resume, **kw: print('SPAWNED', flush=True)\n"
            "jobs.prepare_run = lambda data, model, train, **kw: types.SimpleNamespace(train=train)\n"
            "print('READY', flush=True)\n"
            "go = pathlib.Path(sys.argv[2])\n"
            "while not go.exists(): time.sleep(0.001)\n"
            "try:\n    dlcore.resume_run(sys.argv[1])\nexcept dlcore.RunStateError as e:\n    print('REFUSED', e)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, run_id, str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert [p.stdout.readline().strip() for p in procs] == ["READY"] * 3
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    words = sorted(out.split()[0] for out, _ in outs)
    assert words == ["REFUSED"] * 2 + ["SPAWNED"], outs
    assert store.get(run_id).status == "queued"


@pytest.mark.parametrize("status", ["queued", "running", "completed"])
def test_resume_is_refused_unless_failed_or_cancelled(store, spawned, status):
    run_id = _run(store, status)
    if status == "running":
        store.update(run_id, pid=os.getpid())  # alive: this process
    before = store.get(run_id)
    with pytest.raises(RunStateError, match="already completed" if status == "completed" else f"already {status}"):
        dlcore.resume_run(run_id, store=store)
    with pytest.raises(RunStateError):
        store.requeue(run_id)
    after = store.get(run_id)
    assert (after.status, after.pid, after.finished) == (before.status, before.pid, before.finished)
    assert spawned == []


def test_requeue_counts_attempts_and_clears_the_last_outcome(store):
    run_id = _run(store)
    store.update(run_id, cancel_requested=1, finished=time.time(), pid=_dead_pid())
    assert store.requeue(run_id) == 2  # created as attempt 1
    run = store.get(run_id)
    assert (run.status, run.error, run.cancel_requested, run.finished, run.pid) == ("queued", None, False, None, None)
    assert isinstance(RunStateError("x"), ValueError)  # pages that catch ValueError keep working


def test_many_workers_waiting_for_one_run_claim_it_once(store):
    run_id = store.create(DATA, TINY, TrainSpec())
    results = _together(8, lambda i: store.wait_for_slot(run_id, cap=4, poll=0.01))
    assert results.count(True) == 1 and results.count(False) == 7, results
    run = store.get(run_id)
    assert run.status == "running" and run.error is None  # the losers left it as the winner made it


def test_claim_only_from_queued(store):
    for status in ("running", "failed", "cancelled", "completed"):
        run_id = _run(store, status)
        assert not store.claim_slot(run_id, cap=8)
        assert store.get(run_id).status == status


def test_a_worker_that_did_not_claim_leaves_the_run_untouched(store):
    """The bug of the probe: the second worker saw 'running', took it for 'cancelled while queued' and
    cancelled the run the first worker was training."""
    run_id = store.create(DATA, TINY, TrainSpec())
    assert store.wait_for_slot(run_id, cap=4, poll=0.01)
    before = store.get(run_id)
    assert not store.wait_for_slot(run_id, cap=4, poll=0.01)  # a second worker for the same run
    after = store.get(run_id)
    assert (after.status, after.error, after.finished, after.pid) == ("running", None, None, before.pid)


def test_a_stale_worker_of_an_earlier_attempt_gives_way(store):
    """Worker A waits (no free slot); the run is cancelled and resumed in the meantime, which starts worker B.
    A must not claim B's attempt, nor cancel it."""
    run_id = store.create(DATA, TINY, TrainSpec())
    out = {}
    waiting = threading.Thread(target=lambda: out.setdefault("a", store.wait_for_slot(run_id, cap=0, poll=0.02)))
    waiting.start()
    time.sleep(0.1)
    assert dlcore.RunStore().request_cancel(run_id) == "cancelled"  # not spawned yet: cancelled at once
    store.requeue(run_id)
    waiting.join(timeout=10)
    assert out["a"] is False
    run = store.get(run_id)
    assert run.status == "queued" and run.error is None and not run.cancel_requested
    assert store.wait_for_slot(run_id, cap=4, poll=0.01)  # worker B claims its attempt


def test_delete_is_refused_while_queued_or_running_even_from_many_threads(store):
    run_id = store.create(DATA, TINY, TrainSpec())
    store.log(run_id, "step", 1, {"loss": 1.0})
    (store.run_dir(run_id) / "checkpoint.json").write_text("{}")
    assert store.wait_for_slot(run_id, cap=4, poll=0.01)  # training now
    results = _together(6, lambda i: store.delete(run_id))
    assert all(isinstance(r, RunStateError) and "cancel it before deleting" in str(r) for r in results)
    assert store.get(run_id).status == "running" and len(store.metrics(run_id)) == 1
    assert (store.run_dir(run_id) / "checkpoint.json").exists()


def test_resume_and_delete_racing_never_both_win(store):
    """Resume on one tab, Delete on another, at the same instant: either the run is gone (and resume says
    so) or it is queued again (and delete is refused) — never a queued run without its row or folder."""
    for _ in range(12):
        run_id = _run(store, "cancelled")

        def act(i):
            return store.requeue(run_id) if i == 0 else store.delete(run_id)

        requeued, deleted = _together(2, act)
        if isinstance(requeued, int):
            assert isinstance(deleted, RunStateError) and store.get(run_id).status == "queued"
            assert store.run_dir(run_id).is_dir()
        else:
            assert isinstance(requeued, dlcore.RunNotFound) and deleted is None
            with pytest.raises(dlcore.RunNotFound):
                store.get(run_id)


def test_cancel_of_a_queued_run_without_a_worker_is_immediate(store):
    run_id = store.create(DATA, TINY, TrainSpec())  # the worker has not been spawned yet (pid NULL)
    dlcore.cancel_run(run_id, store=store)
    run = store.get(run_id)
    assert run.status == "cancelled" and run.error == "cancelled before it started"
    assert not store.wait_for_slot(run_id, cap=4, poll=0.01)  # the worker starting late leaves it so
    assert store.get(run_id).status == "cancelled"


def test_cancel_of_a_running_run_sets_the_flag_its_worker_reads(store):
    run_id = store.create(DATA, TINY, TrainSpec())
    assert store.claim_slot(run_id, cap=4)  # held by this (live) process
    dlcore.cancel_run(run_id, store=store)
    run = store.get(run_id)
    assert run.status == "running" and run.cancel_requested
    dlcore.cancel_run(run_id, store=store)  # pressing twice is harmless
    assert store.finish(run_id, "cancelled", error="cancelled by the user")
    dlcore.cancel_run(run_id, store=store)  # and on a finished run does nothing
    assert store.get(run_id).status == "cancelled"


def test_cancel_of_a_run_whose_process_died(store):
    run_id = store.create(DATA, TINY, TrainSpec())
    store.update(run_id, status="running", pid=_dead_pid())
    dlcore.cancel_run(run_id, store=store)
    assert store.get(run_id).status == "cancelled"


def test_finish_only_by_the_process_that_holds_the_run(store):
    run_id = store.create(DATA, TINY, TrainSpec())
    assert store.claim_slot(run_id, cap=4)
    assert not store.finish(run_id, "failed", pid=os.getpid() + 1, error="not mine")
    assert store.get(run_id).status == "running"
    assert store.finish(run_id, "completed", progress=1.0)
    assert not store.finish(run_id, "failed", error="too late")  # already final
    assert store.get(run_id).status == "completed"
    with pytest.raises(ValueError):
        store.finish(run_id, "queued")


def test_refresh_does_not_fail_a_run_another_worker_took_over(store, monkeypatch):
    """A dead worker's run is seen as dead, but before it is marked failed a new worker claims it."""
    run_id = store.create(DATA, TINY, TrainSpec())
    dead = _dead_pid()
    store.update(run_id, status="running", pid=dead)
    stale = store.get(run_id)
    store.update(run_id, status="running", pid=os.getpid())  # resumed and claimed meanwhile
    monkeypatch.setattr(jobs, "pid_alive", lambda pid, rid: pid != dead)
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    monkeypatch.setattr(store, "get", lambda rid: stale)  # refresh re-reads the stale row once more
    jobs.refresh(stale, store)
    assert RunStore(store.root).get(run_id).status == "running"


@pytest.mark.slow
def test_two_real_workers_for_one_run_train_it_once(store, sandbox):
    """Two worker processes started for the same queued run (what two Resume presses did): one trains it
    to completion, the other exits without touching it; steps are logged once."""
    run_id = store.create(DATA, TINY, TrainSpec(epochs=1, batch_size=16, log_every=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLE_WARM_WORKER": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "dlcore" / "train" / "worker.py"), run_id, "--root", str(store.root)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    run = store.get(run_id)
    assert run.status == "completed", (run.error, outs)
    assert run.pid in [p.pid for p in procs]
    steps = [r["step"] for r in store.metrics(run_id, "step")]
    assert steps == sorted(set(steps)), "a second worker trained the run too"
