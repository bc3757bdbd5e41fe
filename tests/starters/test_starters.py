"""The shipped starter runs: small and intact assets, installed once into a fresh store as completed shared
runs that load and can be looked inside, idempotent, deletions remembered, damaged files refused."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dlcore
import dlcore.inspect as ins
from dlcore.evaluation import evaluate_model
from dlcore.starters import ASSETS, MAX_BYTES, RUN_JSON, SLUGS, install_starter, read_starter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh store with the starters installed once: (store, {slug: run id})."""
    store = dlcore.RunStore(tmp_path_factory.mktemp("starters"))
    ids = dlcore.install_starters(store)
    return store, {slug: dlcore.starter_run(slug, store) for slug in SLUGS}, ids


@pytest.mark.parametrize("slug", SLUGS)
def test_the_shipped_starter_is_small_intact_and_says_how_it_was_made(slug):
    folder = ASSETS / slug
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert 0 < size <= MAX_BYTES, f"{slug}: {size:,} bytes"
    doc = read_starter(slug)  # every file listed and its SHA-256 checked
    assert doc["command"] == "python scripts/train_starters.py" and doc["torch"] and doc["device"] == "cpu"
    assert doc["train"]["seed"] == 0 and doc["train"]["device"] == "cpu"
    listed = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {RUN_JSON}
    assert listed == set(doc["files"])  # nothing shipped that is not checked
    epochs = [s["epoch"] for s in doc["snapshots"]]
    assert epochs == list(range(doc["train"]["epochs"] + 1)) and len(epochs) >= 4  # the slider's frames
    assert not any(k.startswith("optim.") for k in dlcore.runs.load_checkpoint(folder)[0])  # weights only


def test_install_gives_three_completed_shared_runs_of_nobodys(installed):
    store, by_slug, ids = installed
    assert sorted(ids) == sorted(by_slug.values()) and len(set(ids)) == 3
    runs = {r.id: r for r in store.list()}
    assert set(runs) == set(ids)
    for slug, run_id in by_slug.items():
        run, doc = runs[run_id], read_starter(slug)
        assert (run.status, run.owner, run.shared, run.hidden) == ("completed", "", True, False)
        assert run.name == doc["name"] and run.summary["starter"] == slug and run.progress == 1.0
        assert run.duration == pytest.approx(doc["summary"]["seconds"], abs=0.01)
        assert len(store.metrics(run_id, "step")) == len(doc["metrics"]["step"]) > 0
        shipped_epochs = [r["val_loss"] for r in doc["metrics"]["epoch"]]
        assert [r["val_loss"] for r in store.metrics(run_id, "epoch")] == shipped_epochs
        assert [s.epoch for s in dlcore.list_snapshots(run_id, store)] == [s["epoch"] for s in doc["snapshots"]]
    student = dlcore.Viewer("alice")
    assert {r.id for r in store.list(viewer=student)} == set(ids)  # every student sees them
    for run_id in ids:  # and opens them, but only a teacher deletes the class's runs
        dlcore.check_access(runs[run_id], student, "view")
        with pytest.raises(dlcore.AccessDenied, match="whole class"):
            dlcore.check_access(runs[run_id], student, "delete")
        dlcore.check_access(runs[run_id], dlcore.Viewer("teacher", teacher=True), "delete")


def test_the_seed_cnn_loads_scores_its_accuracy_and_shows_filters(installed):
    store, by_slug, _ = installed
    run, model = dlcore.load_run_model(by_slug["seed-cnn"], store)
    ds = dlcore.load_dataset(run.data)
    with torch.no_grad():
        test = evaluate_model(model, *ds.test, ds.info)
    assert test["accuracy"] == pytest.approx(run.summary["test_accuracy"], abs=1e-9) and test["accuracy"] > 0.94
    first = ins.conv_layers(model)[0][0]
    k = ins.kernels(model, first)
    assert k.shape[:2] == (32, 1) and np.isfinite(k).all() and k.std() > 0
    maps = ins.feature_maps(model, ins.example(ds, 0)[0])
    assert maps and all(np.isfinite(m).all() for m in maps.values())
    # the untrained epoch-0 filters differ from the trained ones: there is something to watch form
    _, model0 = dlcore.load_snapshot_model(run.id, 0, store)
    assert not np.allclose(ins.kernels(model0, first), k, atol=1e-3)


def test_the_tiny_transformer_reads_the_anti_diagonal(installed):
    store, by_slug, _ = installed
    run, model = dlcore.load_run_model(by_slug["tiny-transformer"], store)
    ds = dlcore.load_dataset(run.data)
    assert ds.info.expected_attention == "reverse" and run.summary["test_token_accuracy"] > 0.99
    scores = []
    for i in range(16):
        x, y = ins.example(ds, i)
        pred, attn = ins.record_attention(model, x)  # (layers, heads, T, T)
        assert (pred.argmax(-1) == np.asarray(y)).all()
        scores.append(ins.pattern_scores(attn, ins.expected_attention("reverse", x)))
    best = np.mean(scores, 0).max()
    assert best > 0.85, best  # chance (uniform attention) is 1/8


def test_the_seed_lstm_gives_states_and_gates(installed):
    store, by_slug, _ = installed
    run, model = dlcore.load_run_model(by_slug["seed-lstm"], store)
    ds = dlcore.load_dataset(run.data)
    assert run.summary["test_accuracy"] > 0.9
    states = ins.rnn_states(model, ins.example(ds, 0)[0])
    assert states.cell == "lstm" and len(states.layers) == 2
    for layer in states.layers:
        assert layer["h"].shape == (28, 64) and layer["c"].shape == (28, 64) and np.isfinite(layer["h"]).all()
        assert np.abs(layer["h"]).max() > 0.1  # a trained LSTM's state moves
        for gate in ins.GATES["lstm"]:
            assert layer[gate].shape == (28, 64) and np.isfinite(layer[gate]).all()
        assert ((layer["f"] >= 0) & (layer["f"] <= 1)).all()  # the forget gate is a sigmoid
    h = ins.hidden_trajectories(model, ds.test[0][:8])
    assert h.shape[:2] == (8, 28) and np.isfinite(h).all()


def test_installing_again_is_fast_and_changes_nothing(installed):
    store, by_slug, ids = installed
    before = [(r.id, r.finished) for r in store.list()]
    t0 = time.perf_counter()
    again = dlcore.install_starters(store)
    took = time.perf_counter() - t0
    assert again == ids and [(r.id, r.finished) for r in store.list()] == before
    assert took < 1.0, took


def test_a_deleted_starter_stays_deleted_until_reinstalled(tmp_path):
    store = dlcore.RunStore(tmp_path)
    ids = dlcore.install_starters(store)
    cnn = dlcore.starter_run("seed-cnn", store)
    store.delete(cnn)
    assert dlcore.install_starters(store) == [i for i in ids if i != cnn]
    assert dlcore.starter_run("seed-cnn", store) is None and len(store.list()) == 2
    back = dlcore.install_starters(store, reinstall=True)
    assert len(back) == 3 and dlcore.starter_run("seed-cnn", store) not in (None, cnn)
    assert len(store.list()) == 3


def test_an_interrupted_installation_is_replaced_not_duplicated(tmp_path):
    store = dlcore.RunStore(tmp_path)
    doc = read_starter("seed-lstm")
    stale = store.create(dlcore.DataSpec.from_dict(doc["data"]), dlcore.model_from_dict(doc["model"]),
                         dlcore.TrainSpec.from_dict(doc["train"]), owner="")
    store.update(stale, status="failed", summary={"starter": "seed-lstm"})  # what a killed install leaves
    dlcore.install_starters(store)
    lstm = [r for r in store.list() if r.summary.get("starter") == "seed-lstm"]
    assert [r.status for r in lstm] == ["completed"] and lstm[0].id != stale
    assert not (tmp_path / "runs" / stale).exists()


def test_two_servers_starting_together_install_once(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(dlcore.install_starters(dlcore.RunStore(tmp_path))))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(dlcore.RunStore(tmp_path).list()) == 3
    assert all(sorted(r) == sorted(results[0]) for r in results)


def _copy_assets(tmp_path: Path) -> Path:
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS, assets)
    return assets


def test_a_damaged_file_is_a_typed_error_and_the_other_starters_still_install(tmp_path, caplog):
    assets = _copy_assets(tmp_path)
    weights = assets / "seed-cnn" / "checkpoint.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    store = dlcore.RunStore(tmp_path / "data")
    with pytest.raises(dlcore.StarterError, match=r"seed-cnn.*checkpoint\.safetensors.*damaged"):
        install_starter("seed-cnn", store, assets)
    assert isinstance(dlcore.StarterError("x"), dlcore.CheckpointError)  # shown as a message like any checkpoint's
    assert store.list() == []  # nothing half-installed
    with caplog.at_level(logging.WARNING, logger="dlcore.starters"):
        ids = dlcore.install_starters(store, assets=assets)
    assert len(ids) == 2 and dlcore.starter_run("seed-cnn", store) is None
    assert "seed-cnn" in caplog.text and "damaged" in caplog.text
    # not recorded as installed: with the file repaired, the next start installs it
    shutil.copyfile(ASSETS / "seed-cnn" / "checkpoint.safetensors", weights)
    assert len(dlcore.install_starters(store, assets=assets)) == 3


@pytest.mark.parametrize("damage", ["no run.json", "not json", "missing snapshot", "other starter"])
def test_a_missing_or_wrong_asset_is_a_starter_error(tmp_path, damage):
    assets = _copy_assets(tmp_path)
    folder = assets / "tiny-transformer"
    if damage == "no run.json":
        (folder / RUN_JSON).unlink()
    elif damage == "not json":
        (folder / RUN_JSON).write_text("{")
    elif damage == "missing snapshot":
        (folder / "snapshots" / "epoch-0002.safetensors").unlink()
    else:
        shutil.copyfile(assets / "seed-lstm" / RUN_JSON, folder / RUN_JSON)
    with pytest.raises(dlcore.StarterError, match="tiny-transformer"):
        read_starter("tiny-transformer", assets)
    with pytest.raises(dlcore.StarterError):
        read_starter("no-such-starter", assets)


def test_the_app_installs_the_starters_once_and_filters_shows_one(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_pages.common.ui import PAGE_FILES

    monkeypatch.setenv("DLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DLE_STARTERS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE_FILES["filters"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(dlcore.RunStore(tmp_path).list()) == 3
    run = dlcore.get_run(dlcore.starter_run("seed-cnn", dlcore.RunStore(tmp_path)), dlcore.RunStore(tmp_path))
    assert at.selectbox(key="filters_run").value == run.id
    assert at.get("plotly_chart")  # the starter's filters are drawn


def test_every_page_opens_with_only_the_starters(tmp_path, monkeypatch):
    """No page fails on the starters (a Transformer that is no language model on Language, ...), and a page
    that takes any run (Explanations, Compress) opens the seed CNN first: the one made for explaining."""
    from streamlit.testing.v1 import AppTest

    from app_pages.common.ui import PAGE_FILES

    monkeypatch.setenv("DLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DLE_STARTERS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    cnn = dlcore.starter_run("seed-cnn", dlcore.RunStore(tmp_path))
    assert dlcore.list_runs(dlcore.RunStore(tmp_path))[0].id == cnn
    for name in ("explain", "internals", "language", "runs", "compress", "overfitting"):
        at.switch_page(PAGE_FILES[name]).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.error, (name, [e.value for e in at.error])
        if name == "explain":
            assert at.selectbox(key="explain_run").value == cnn


def test_the_app_leaves_a_folder_empty_when_starters_are_off(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DLE_STARTERS", "0")
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert dlcore.RunStore(tmp_path).list() == [] and not (tmp_path / "starters.json").exists()


@pytest.mark.slow  # trains the tiny Transformer again through the job path: ~15 s on an idle core
def test_training_the_starters_again_reproduces_the_shipped_one():
    """The script, run again, gives the tiny Transformer's weights, losses and accuracies bit for bit."""
    shipped = json.loads((ASSETS / "tiny-transformer" / RUN_JSON).read_text())
    if shipped["torch"] != torch.__version__:
        pytest.skip(f"shipped with torch {shipped['torch']}, this is {torch.__version__}")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_starters.py"), "--check", "--only",
                          "tiny-transformer"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reproduced" in out.stdout
