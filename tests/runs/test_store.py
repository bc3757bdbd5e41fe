"""The SQLite run store: runs CRUD, metrics, rename, delete, safe concurrent use, the queue's slots, and
reading runs without torch."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dlcore import DataSpec, RunNotFound, RunStore, TrainSpec, get_preset

ROOT = Path(__file__).resolve().parents[2]

DATA, MODEL, TRAIN = DataSpec(name="digits", max_train=100), get_preset("rnn-tiny"), TrainSpec(epochs=2, lr=3e-3)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def test_create_and_get_round_trip_the_specs(store):
    run_id = store.create(DATA, MODEL, TRAIN, params=6282, owner="alice")
    run = store.get(run_id)
    assert (run.id, run.status, run.error, run.progress, run.summary) == (run_id, "queued", None, 0.0, {})
    assert run.data == DATA and run.model == MODEL and run.train == TRAIN
    assert run.family == "rnn" and run.params == 6282 and run.owner == "alice"
    assert run.name == "rnn on digits"
    assert run.duration is None and run.started is None and not run.cancel_requested
    assert store.run_dir(run_id).is_dir()


def test_default_store_lives_in_the_data_folder(fresh_dir):
    store = RunStore()
    assert store.root == fresh_dir and store.db_path == fresh_dir / "store.db"
    run_id = store.create(DATA, MODEL, TRAIN)
    assert RunStore().get(run_id).id == run_id  # another instance (another process) sees it


def test_ids_are_unique_and_list_is_newest_first(store):
    ids = []
    for i in range(3):
        ids.append(store.create(DATA, MODEL, TRAIN, name=f"run {i}"))
        time.sleep(0.01)
    assert len(set(ids)) == 3
    assert [r.id for r in store.list()] == ids[::-1]
    store.update(ids[0], status="completed")
    assert [r.id for r in store.list(("completed",))] == [ids[0]]
    assert {r.id for r in store.list(("queued", "running"))} == set(ids[1:])


def test_update_sets_fields_and_refuses_unknown_ones(store):
    run_id = store.create(DATA, MODEL, TRAIN)
    t0 = time.time()
    store.update(run_id, status="running", started=t0, pid=4242, device="cpu", progress=0.5,
                 summary={"test_accuracy": 0.9, "steps": 10}, heartbeat=t0, cancel_requested=1)
    run = store.get(run_id)
    assert (run.status, run.pid, run.device, run.progress) == ("running", 4242, "cpu", 0.5)
    assert run.summary == {"test_accuracy": 0.9, "steps": 10} and run.cancel_requested
    assert run.duration is not None and run.duration >= 0
    with pytest.raises(ValueError, match="data_spec"):
        store.update(run_id, data_spec="{}")
    with pytest.raises(ValueError, match="status"):
        store.update(run_id, status="exploded")
    with pytest.raises(RunNotFound):
        store.update("20990101-000000-abcdef", status="failed")


def test_unknown_run_is_run_not_found_with_a_readable_message(store):
    with pytest.raises(RunNotFound) as err:
        store.get("nope")
    assert str(err.value) == "no run with id 'nope'"


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "a\\b", ".hidden"])
def test_run_dir_refuses_ids_that_leave_the_store(store, bad):
    with pytest.raises(RunNotFound):
        store.run_dir(bad)


def test_rename(store):
    run_id = store.create(DATA, MODEL, TRAIN)
    store.rename(run_id, "  my best LSTM  ")
    assert store.get(run_id).name == "my best LSTM"
    store.rename(run_id, "x" * 500)
    assert store.get(run_id).name == "x" * 120
    with pytest.raises(ValueError, match="empty"):
        store.rename(run_id, "   ")
    with pytest.raises(RunNotFound):
        store.rename("20990101-000000-abcdef", "ghost")


def test_delete_removes_the_row_metrics_and_folder(store):
    keep, gone = store.create(DATA, MODEL, TRAIN), store.create(DATA, MODEL, TRAIN)
    for rid in (keep, gone):
        store.log(rid, "step", 1, {"loss": 1.0})
    (store.run_dir(gone) / "checkpoint.json").write_text("{}")
    with pytest.raises(ValueError, match="cancel it"):
        store.delete(gone)  # still queued
    store.update(gone, status="cancelled")
    store.delete(gone)
    with pytest.raises(RunNotFound):
        store.get(gone)
    assert not store.run_dir(gone).exists() and store.metrics(gone) == []
    assert store.get(keep) and len(store.metrics(keep)) == 1
    with pytest.raises(RunNotFound):
        store.delete(gone)


def test_metrics_are_kept_in_order_per_kind_and_can_be_polled_incrementally(store):
    run_id = store.create(DATA, MODEL, TRAIN)
    for step in range(1, 6):
        store.log(run_id, "step", step, {"loss": 1.0 / step, "lr": 1e-3}, epoch=step / 5)
    store.log(run_id, "epoch", 5, {"epoch": 1, "val_accuracy": 0.5}, epoch=1)
    rows = store.metrics(run_id, "step")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[1]["loss"] == 0.5 and rows[1]["lr"] == 1e-3 and rows[1]["epoch"] == 0.4 and rows[1]["time"] > 0
    assert [r["val_accuracy"] for r in store.metrics(run_id, "epoch")] == [0.5]
    newer = store.metrics(run_id, "step", after_id=rows[2]["id"])
    assert [r["step"] for r in newer] == [4, 5]
    assert store.metrics(run_id, "step", after_id=rows[-1]["id"]) == []


def test_truncate_metrics_drops_rows_past_a_step(store):
    run_id = store.create(DATA, MODEL, TRAIN)
    for step in range(1, 7):
        store.log(run_id, "step", step, {"loss": 0.1})
        if step % 3 == 0:
            store.log(run_id, "epoch", step, {"epoch": step // 3})
    store.truncate_metrics(run_id, 3)  # a resumed run replays from its checkpoint at step 3
    assert [r["step"] for r in store.metrics(run_id, "step")] == [1, 2, 3]
    assert [r["epoch"] for r in store.metrics(run_id, "epoch")] == [1]
    store.truncate_metrics(run_id, -1)
    assert store.metrics(run_id, "step") == []


def test_concurrent_writers_lose_nothing(store):
    """Job processes and the app's threads write at once; WAL mode and per-call connections keep every row."""
    ids = [store.create(DATA, MODEL, TRAIN) for _ in range(4)]
    errors = []

    def writer(run_id):
        try:
            for step in range(1, 31):
                store.log(run_id, "step", step, {"loss": float(step)})
                store.update(run_id, progress=step / 30, heartbeat=time.time())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for rid in ids:
        assert [r["step"] for r in store.metrics(rid)] == list(range(1, 31))
        assert store.get(rid).progress == 1.0
    assert store.integrity_ok()


def test_runs_are_read_without_importing_torch(store):
    """A queued worker and a run listing decode the specs with the standard library; the model config (next
    to its torch model) is decoded when first asked for."""
    store.create(DATA, MODEL, TRAIN, name="listed")
    code = ("import sys\n"
            "import dlcore, dlcore.runs, dlcore.train\n"
            "from dlcore.runs.store import RunStore\n"
            f"(run,) = RunStore({str(store.root)!r}).list()\n"
            "assert (run.name, run.family, run.data.name, run.train.epochs) == ('listed', 'rnn', 'digits', 2)\n"
            "assert 'torch' not in sys.modules, 'reading the store imported torch'\n"
            "assert run.model.hidden_size == 32 and run.model is run.model\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_bad_model_spec_is_reported_when_the_model_is_read(store):
    from dlcore import SpecError

    run_id = store.create(DATA, MODEL, TRAIN)
    with store._connect() as con:
        con.execute("UPDATE runs SET model_spec = ? WHERE id = ?", ('{"family": "quantum"}', run_id))
    run = store.get(run_id)  # the listing still works
    assert run.family == "quantum"
    with pytest.raises(SpecError, match="family must be one of"):
        run.model


def _dead_pid() -> int:
    exited = subprocess.Popen(["true"])
    exited.wait()
    return exited.pid


def test_the_queue_is_first_come_first_served_within_the_cap(store):
    a, b, c = (store.create(DATA, MODEL, TRAIN, name=n) for n in "abc")
    assert not store.claim_slot(b, cap=1), "b is behind a in the queue"
    assert store.claim_slot(a, cap=1)
    run = store.get(a)
    assert run.status == "running" and run.pid == os.getpid() and run.started is not None
    assert not store.claim_slot(b, cap=1), "the only slot is taken"
    assert store.claim_slot(b, cap=2)
    assert not store.claim_slot(c, cap=2)
    store.update(a, pid=_dead_pid())  # a's process dies without a word: its slot is freed for c
    assert store.claim_slot(c, cap=2)
    assert store.get(a).status == "failed" and "ended unexpectedly" in store.get(a).error


def test_reaping_fails_runs_whose_process_is_gone(store):
    queued, running, alive = (store.create(DATA, MODEL, TRAIN) for _ in range(3))
    store.update(queued, pid=_dead_pid())
    store.update(running, status="running", pid=_dead_pid(), progress=0.5)
    store.update(alive, status="running", pid=os.getpid())
    store.reap_dead()
    assert "while the run was waiting in the queue" in store.get(queued).error
    assert store.get(running).status == "failed" and "at 50% of training" in store.get(running).error
    assert store.get(alive).status == "running"


def test_waiting_for_a_slot_ends_on_cancel_stop_or_delete(store):
    cancelled, stopped, deleted, free = (store.create(DATA, MODEL, TRAIN) for _ in range(4))
    store.update(cancelled, cancel_requested=1)
    assert not store.wait_for_slot(cancelled, cap=4, poll=0.01)
    assert store.get(cancelled).status == "cancelled" and store.get(cancelled).error == "cancelled while queued"
    assert not store.wait_for_slot(stopped, cap=4, poll=0.01, stopping=lambda: True)
    assert store.get(stopped).error == "stopped by the system while queued"
    store.update(deleted, status="cancelled")
    store.delete(deleted)
    assert not store.wait_for_slot(deleted, cap=4, poll=0.01)
    assert store.wait_for_slot(free, cap=4, poll=0.01) and store.get(free).status == "running"
