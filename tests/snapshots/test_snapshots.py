"""Per-epoch snapshots: written by the worker at epoch 0 and every epoch end, bounded by a byte budget with
thinning, loadable as models, exact across a resume; and the animation figures built from them."""
from __future__ import annotations

import pytest
import torch

import dlcore
from dlcore import DataSpec, RunStore, TrainSpec, get_preset, list_snapshots, load_run_model, load_snapshot_model
from dlcore.models import build_model
from dlcore.runs.snapshots import keep_epochs, save_snapshot, snapshot_dir, snapshot_path
from dlcore.train.worker import run_job

MODEL = get_preset("cnn-tiny").replace(padding="same")  # 3.7K params on 8×8 digits: a run takes a second
DATA = DataSpec(name="digits", max_train=300)


@pytest.fixture
def store(fresh_dir):
    return RunStore(fresh_dir)


def _train(store, epochs=3, **kw):
    rid = store.create(DATA, MODEL, TrainSpec(epochs=epochs, lr=1e-2, seed=3, device="cpu", **kw))
    assert run_job(rid, store) == "completed", store.get(rid).error
    return rid


def test_the_worker_writes_epoch_0_and_every_epoch_end(store):
    rid = _train(store, epochs=3)
    snaps = list_snapshots(rid, store)
    assert [s.epoch for s in snaps] == [0, 1, 2, 3]
    assert snaps[0].metrics == {} and snaps[0].step == 0
    assert [s.step for s in snaps[1:]] == [9, 18, 27]  # 270 training examples / batch 32
    assert all("val_accuracy" in s.metrics and "train_loss" in s.metrics for s in snaps[1:])
    assert all(0 < s.bytes < 20_000 for s in snaps)  # 3.7K params in fp16 + header
    assert sorted(p.name for p in snapshot_dir(store.run_dir(rid)).iterdir()) == [
        f"epoch-{e:04d}.safetensors" for e in range(4)]  # no temporary file left behind


def test_the_last_snapshot_is_the_final_checkpoint_in_fp16_and_epoch_0_is_untrained(store):
    rid = _train(store, epochs=2)
    _, final = load_run_model(rid, store)
    run, last = load_snapshot_model(rid, 2, store)
    assert run.id == rid and not last.training
    for k, v in final.state_dict().items():
        assert last.state_dict()[k].dtype == v.dtype  # loaded back as float32
        torch.testing.assert_close(last.state_dict()[k], v.half().float(), rtol=0, atol=0, msg=k)
    _, first = load_snapshot_model(rid, 0, store)
    torch.manual_seed(0)  # the weights before training are not the trained ones
    assert not torch.allclose(first.state_dict()["features.0.0.weight"], final.state_dict()["features.0.0.weight"])


def test_a_missing_or_damaged_snapshot_is_a_typed_error(store):
    rid = _train(store, epochs=1)
    with pytest.raises(dlcore.SnapshotError, match="no snapshot of epoch 7.*kept epochs: 0, 1"):
        load_snapshot_model(rid, 7, store)
    path = snapshot_path(store.run_dir(rid), 1)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(dlcore.SnapshotError, match="checksum"):
        load_snapshot_model(rid, 1, store)
    assert isinstance(dlcore.SnapshotError("x"), dlcore.CheckpointError)  # pages already catch these
    with pytest.raises(dlcore.RunNotFound):
        list_snapshots("nope", store)


def test_weights_are_stored_in_fp16_unless_fp16_cannot_hold_them():
    from dlcore.runs.snapshots import snapshot_tensors

    out = snapshot_tensors({"w": torch.tensor([0.5, -2.0]), "big": torch.tensor([1e6]),
                            "n": torch.tensor(3, dtype=torch.int64)})
    assert out["model.w"].dtype == torch.float16 and out["model.big"].dtype == torch.float32
    assert out["model.big"].item() == 1e6 and out["model.n"].dtype == torch.int64


def test_keep_epochs_keeps_first_last_and_an_even_stable_stride():
    assert keep_epochs(list(range(11)), 5) == [0, 4, 8, 10]
    assert keep_epochs(list(range(4)), 10) == [0, 1, 2, 3]
    assert keep_epochs(list(range(100)), 2) == [0, 99]
    kept = keep_epochs(list(range(51)), 8)
    assert kept[0] == 0 and kept[-1] == 50 and len(kept) <= 8
    assert len({b - a for a, b in zip(kept[:-2], kept[1:-1])}) == 1  # evenly spaced between first and last
    # stable: thinning a longer run only drops epochs, it never brings back ones it dropped
    seen = {0}
    for last in range(1, 60):
        now = set(keep_epochs(sorted(seen | {last}), 6))
        assert now <= seen | {last} and 0 in now and last in now and len(now) <= 6
        seen = now


def test_the_budget_thins_old_snapshots_and_bounds_the_bytes(tmp_path):
    torch.manual_seed(0)
    model = build_model(MODEL)
    one = save_snapshot(tmp_path, model.state_dict(), 0, 0, model_config=MODEL).stat().st_size
    budget = one * 6 + 100  # room for six
    for epoch in range(1, 40):
        save_snapshot(tmp_path, model.state_dict(), epoch, epoch * 9, {"val_accuracy": epoch / 40},
                      model_config=MODEL, budget=budget)
        files = list(snapshot_dir(tmp_path).iterdir())
        assert sum(p.stat().st_size for p in files) <= budget
    epochs = sorted(int(p.stem.split("-")[1]) for p in snapshot_dir(tmp_path).iterdir())
    assert epochs[0] == 0 and epochs[-1] == 39 and 3 <= len(epochs) <= 6
    assert epochs == keep_epochs(epochs, 6)


def test_a_model_too_large_for_four_snapshots_keeps_none(tmp_path):
    model = build_model(MODEL)
    one = save_snapshot(tmp_path / "a", model.state_dict(), 0, 0).stat().st_size
    assert save_snapshot(tmp_path / "b", model.state_dict(), 0, 0, budget=one * 3) is None
    assert not snapshot_dir(tmp_path / "b").exists()


def test_the_budget_applies_to_real_runs_from_the_environment(store, monkeypatch):
    one = max(s.bytes for s in list_snapshots(_train(store, epochs=1), store))
    monkeypatch.setenv("DLE_MAX_SNAPSHOTS_MB", str(5 * one / 2**20))  # room for five
    rid = _train(store, epochs=8)
    epochs = [s.epoch for s in list_snapshots(rid, store)]
    assert epochs[0] == 0 and epochs[-1] == 8 and 3 <= len(epochs) <= 5
    assert sum(s.bytes for s in list_snapshots(rid, store)) <= dlcore.LIMITS.snapshot_bytes


def test_a_run_whose_model_is_too_large_for_the_budget_keeps_none_and_says_so(store, monkeypatch, capfd):
    monkeypatch.setenv("DLE_MAX_SNAPSHOTS_MB", "0.01")  # 10 kB: a quarter is less than one 7 kB snapshot
    rid = _train(store, epochs=2)
    assert list_snapshots(rid, store) == []
    assert "no per-epoch snapshots" in capfd.readouterr().out


def test_a_snapshot_that_cannot_be_written_does_not_fail_the_run(store, capfd):
    rid = store.create(DATA, MODEL, TrainSpec(epochs=2, lr=1e-2, seed=3, device="cpu"))
    blocker = snapshot_dir(store.run_dir(rid))
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the folder should be")
    assert run_job(rid, store) == "completed"
    assert "snapshot of epoch 0 not written" in capfd.readouterr().out
    assert list_snapshots(rid, store) == []


def test_resume_keeps_the_snapshots_exact(store):
    """Stopped in epoch 2 and resumed: the same snapshots, bit for bit, as an uninterrupted run."""
    train = TrainSpec(epochs=3, lr=1e-2, seed=3, device="cpu", log_every=1)  # every step reaches the callback
    ref = store.create(DATA, MODEL, train)
    assert run_job(ref, store) == "completed"
    rid = store.create(DATA, MODEL, train)

    def stop_in_epoch_two(trainer, row):
        trainer.stop_requested = trainer.stop_requested or row["step"] >= 12

    assert run_job(rid, store, callbacks=[("on_step_end", stop_in_epoch_two)]) == "cancelled"
    assert [s.epoch for s in list_snapshots(rid, store)] == [0, 1]
    # a snapshot of an epoch after the checkpoint it resumes from is dropped (it is retrained)
    stale = snapshot_path(store.run_dir(rid), 9)
    stale.write_bytes(snapshot_path(store.run_dir(rid), 1).read_bytes())
    store.requeue(rid)
    assert run_job(rid, store, resume=True) == "completed"
    assert [s.epoch for s in list_snapshots(rid, store)] == [0, 1, 2, 3]
    for epoch in range(4):
        _, a = load_snapshot_model(ref, epoch, store)
        _, b = load_snapshot_model(rid, epoch, store)
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), (epoch, k)


def test_snapshot_functions_are_exported():
    for name in ("Snapshot", "SnapshotError", "list_snapshots", "load_snapshot_model", "save_snapshot",
                 "snapshot_version"):
        assert name in dlcore.__all__ and getattr(dlcore, name)
