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
                    start_warm_worker, wait)

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
def store(fresh_dir, monkeypatch):
    monkeypatch.setenv("DLE_WARM_WORKER_IDLE_S", "30")  # each test's store has its warm worker: let it go soon
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


def test_a_queued_one_run_worker_imports_no_torch_until_it_holds_a_slot(store, monkeypatch):
    """Without the warm worker, forty queued runs must cost forty small processes, not forty copies of torch."""
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "1")
    monkeypatch.setenv("DLE_WARM_WORKER", "0")
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


# ---------------------------------------------------------------- the warm worker
def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_queued_runs_wait_in_the_warm_worker_and_start_first_come_first_served(store, monkeypatch):
    """Queued runs cost no process of their own: they wait in the warm worker (one pid for all); once a slot
    frees they start oldest first, each in a process forked from it, never more than the cap at once."""
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "1")
    busy = store.create(DATA, MODEL, TrainSpec())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", busy])
    try:
        store.update(busy, status="running", pid=holder.pid)
        ids = [start_run(DATA, MODEL, TrainSpec(epochs=1, max_steps=3, device="cpu"), store=store) for _ in range(3)]
        warm = {get_run(i, store).pid for i in ids}
        assert len(warm) == 1, warm
        (warm_pid,) = warm
        assert "--serve" in _cmdline(warm_pid)
        time.sleep(1.0)
        assert [get_run(i, store).status for i in ids] == ["queued"] * 3
        assert [queue_position(i, store) for i in ids] == [1, 2, 3]
        env = Path(f"/proc/{warm_pid}/environ").read_bytes()
        assert b"OMP_WAIT_POLICY=PASSIVE" in env and b"DLE_MAX_CONCURRENT_RUNS=1" in env
    finally:
        holder.kill()
        holder.wait()
    runs = [wait(i, timeout=120, store=store) for i in ids]
    assert [r.status for r in runs] == ["completed"] * 3, [r.error for r in runs]
    assert len({r.pid for r in runs} | {warm_pid}) == 4  # each run had a process of its own
    assert [r.started for r in runs] == sorted(r.started for r in runs)  # first come, first served
    spans = sorted((r.started, r.finished) for r in runs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "two runs trained at once with a cap of 1"
    assert start_warm_worker(store) == warm_pid  # the same warm worker serves the next runs


def test_a_run_outlives_the_server_that_started_it_and_a_new_server_finds_the_warm_worker(store):
    """A 'server' process starts a run and exits at once: the run goes on and completes; a second server
    (a restart) hands its run to the same warm worker, whose child trains it."""
    code = ("import sys, dlcore; s = dlcore.RunStore(sys.argv[1]); "
            "m = dlcore.get_preset('cnn-tiny').replace(padding='same'); "
            "print(dlcore.start_run(dlcore.DataSpec(name='digits', max_train=300), m, "
            "dlcore.TrainSpec(epochs=2, device='cpu'), store=s))")
    first = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True,
                           timeout=120, cwd=str(Path(__file__).resolve().parents[2]))
    assert first.returncode == 0, first.stderr
    run_a = first.stdout.split()[-1]
    warm_pid = start_warm_worker(store)
    assert warm_pid and warm_pid != os.getpid()
    second = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True,
                            timeout=120, cwd=str(Path(__file__).resolve().parents[2]))
    assert second.returncode == 0, second.stderr
    run_b = second.stdout.split()[-1]
    for run_id in (run_a, run_b):
        run = wait(run_id, timeout=120, store=store)
        assert run.status == "completed", run.error
        assert run.summary["epochs_done"] == 2 and run.pid not in (None, warm_pid)  # a process of its own
    log = (store.root / "warm-worker.log").read_text()
    assert log.count(f"warm worker {warm_pid} ready") == 1 and log.count("ready for") == 1, log


def test_kill_9_of_the_warm_worker_fails_only_its_queued_runs(store, monkeypatch):
    """The running run is a process of its own and finishes; the queued one, which lived in the warm worker,
    is failed within 10 s with a reason and resumes; the next run starts a new warm worker."""
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "1")
    running = start_run(DATA, MODEL, TrainSpec(epochs=20, batch_size=8, log_every=5, device="cpu"), store=store)
    queued = start_run(DATA, MODEL, TrainSpec(epochs=1, max_steps=3, device="cpu"), store=store)
    warm_pid = get_run(queued, store).pid
    _poll(lambda: store.metrics(running, "step"))
    assert get_run(running, store).pid != warm_pid and get_run(queued, store).status == "queued"
    os.kill(warm_pid, signal.SIGKILL)
    t_kill = time.time()
    run = _poll(lambda: (r := get_run(queued, store)).status == "failed" and r, timeout=10, every=0.1)
    assert time.time() - t_kill < 10
    assert "waiting in the queue" in run.error and str(warm_pid) in run.error
    assert get_run(running, store).status == "running"
    cancel_run(running, store)
    assert wait(running, timeout=60, store=store).status == "cancelled"
    resume_run(queued, store)  # on a new warm worker
    run = wait(queued, timeout=120, store=store)
    assert run.status == "completed", run.error
    assert start_warm_worker(store) not in (None, warm_pid)


def test_threads_follow_the_machine_share(monkeypatch):
    """cores ÷ runs at once (less one core for the server from 4 cores on); the server keeps the rest."""
    from dlcore.config import thread_env, thread_plan

    assert thread_plan(cap=4, cores=2) == {"cores": 2, "cap": 4, "train": 1, "server": 1}
    assert thread_plan(cap=1, cores=2)["train"] == 2
    assert thread_plan(cap=4, cores=16) == {"cores": 16, "cap": 4, "train": 3, "server": 4}
    assert thread_plan(cap=2, cores=8) == {"cores": 8, "cap": 2, "train": 3, "server": 2}
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", "4")
    env = thread_env("train")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == str(thread_plan()["train"])
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the operator's choice wins
    assert thread_env("train")["OMP_NUM_THREADS"] == "7"
    with pytest.raises(ValueError):
        thread_env("gpu")


def test_configure_threads_sets_this_process(monkeypatch):
    import dlcore

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        n = dlcore.configure_threads(role="server", cap=4)
        assert n == dlcore.thread_plan(cap=4)["server"] == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_listing_runs_is_a_query(store):
    """status, owner and limit are SQL filters; identical specs are decoded once and shared."""
    ids = {}
    for i, (owner, status) in enumerate([("ann", "completed"), ("bob", "failed"), ("ann", "queued"),
                                         ("bob", "completed")]):
        ids[i] = store.create(DATA, MODEL, TrainSpec(), owner=owner)
        store.update(ids[i], status=status)
        time.sleep(0.002)  # distinct creation times: newest first is well defined
    assert [r.id for r in store.list()] == [ids[3], ids[2], ids[1], ids[0]]
    assert [r.id for r in store.list(status="completed")] == [ids[3], ids[0]]
    assert [r.id for r in store.list(status=("failed", "queued"), owner="ann")] == [ids[2]]
    assert [r.id for r in store.list(owner="bob", limit=1)] == [ids[3]]
    assert store.list(status=()) == []
    runs = store.list()
    assert runs[0].data is runs[1].data and runs[0].train is runs[3].train  # decoded once, frozen, shared
    assert [r.id for r in list_runs(store, owner="ann", status=("completed",))] == [ids[0]]
    # a queued run whose process is gone is noticed, and then it is no longer 'queued'
    store.update(ids[2], pid=2**22 + 7)
    assert list_runs(store, status="queued") == [] and get_run(ids[2], store).status == "failed"
