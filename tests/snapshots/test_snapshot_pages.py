"""AppTest of the inspection pages with a running run (its latest checkpoint, reloaded when a newer one is
written) and with the epoch slider over a finished run's snapshots; the animation figures."""
from __future__ import annotations

import base64
import json
import os
import time

import numpy as np
import pytest
import torch

import dlcore
from dlcore import viz
from dlcore.runs.checkpoint import load_checkpoint, save_checkpoint
from dlcore.runs.snapshots import save_snapshot
from dlcore.train.worker import run_job
from tests.app.conftest import open_page

CNN = dlcore.get_preset("cnn-tiny").replace(padding="same")
DIGITS = dlcore.DataSpec(name="digits", max_train=300)
TRAIN = dlcore.TrainSpec(epochs=3, lr=1e-2, seed=3, device="cpu", log_every=1)
REVERSE = dlcore.DataSpec(name="reverse", seq_len=6, max_train=256)
ENCODER = dlcore.TransformerConfig(kind="encoder", d_model=16, n_heads=2, n_layers=1, d_ff=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A completed CNN (3 epochs), a CNN stopped in its second epoch and marked running (held by this
    process, as an in-process worker would), and a completed tiny encoder on reverse."""
    folder = tmp_path_factory.mktemp("snapshot-pages")
    store = dlcore.RunStore(folder)
    done = store.create(DIGITS, CNN, TRAIN, name="finished cnn", shared=True)
    assert run_job(done, store) == "completed"
    live = store.create(DIGITS, CNN, TRAIN, name="training cnn", shared=True)

    def stop_in_epoch_two(trainer, row):
        trainer.stop_requested = trainer.stop_requested or row["step"] >= 12

    assert run_job(live, store, callbacks=[("on_step_end", stop_in_epoch_two)]) == "cancelled"
    store.requeue(live)
    assert store.transition(live, "running", ("queued",), started=time.time())
    store.update(live, pid=os.getpid(), heartbeat=time.time())
    enc = store.create(REVERSE, ENCODER, dlcore.TrainSpec(epochs=2, lr=3e-3, seed=1, device="cpu"),
                       name="tiny encoder", shared=True)
    assert run_job(enc, store) == "completed"
    return folder, {"done": done, "live": live, "enc": enc}


@pytest.fixture
def ids(runs, monkeypatch):
    folder, ids = runs
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    return ids


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def chart(at, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.rsplit("-", 1)[-1] == key]
    assert found, f"no chart {key}"
    return json.loads(found[0].proto.spec)


def array(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ({"dtype", "bdata" in base64, "shape"})."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.array(v, dtype=np.float64)


def first_kernels(weights) -> np.ndarray:
    return np.asarray(weights, dtype=np.float64)[:, 0]


def shown_kernels(at, n: int = 8) -> np.ndarray:
    """The first conv layer's n 3×3 kernels read back from the kernel grid's heat map (8 a row, NaN gaps)."""
    z = array(chart(at, "filters_kernels")["data"][0]["z"]).astype(np.float64)
    return np.stack([z[4 * (i // 8): 4 * (i // 8) + 3, 4 * (i % 8): 4 * (i % 8) + 3] for i in range(n)])


def test_a_running_run_shows_its_latest_checkpoint_and_picks_up_a_newer_one(ids, runs):
    folder, _ = runs
    at = open_page("filters", timeout=120)
    picker = at.selectbox(key="filters_run")
    assert any(ids["live"] in o and o.endswith("training… epoch 1 of 3") for o in picker.options)
    assert any(ids["done"] in o and "training" not in o for o in picker.options)
    picker.set_value(ids["live"]).run()
    ok(at)
    assert any("This run is training" in str(i.value) for i in at.info)
    tensors, meta = load_checkpoint(dlcore.RunStore(folder).run_dir(ids["live"]))
    w = tensors["model.features.0.0.weight"].numpy()
    np.testing.assert_allclose(shown_kernels(at), first_kernels(w), rtol=1e-6, atol=1e-6)
    slider = at.select_slider(key=f"filters_epoch_{ids['live']}_now")
    assert list(slider.options) == ["epoch 0 (before training)", "epoch 1", "now (training)"]
    # the worker writes a newer checkpoint: the next rerun (the fragment's, every few seconds) shows it
    tensors = dict(tensors)
    tensors["model.features.0.0.weight"] = torch.full_like(tensors["model.features.0.0.weight"], 0.25)
    time.sleep(0.02)  # a new mtime
    save_checkpoint(dlcore.RunStore(folder).run_dir(ids["live"]), tensors, {k: v for k, v in meta.items()
                                                                           if k != "weights_sha256"})
    # ... and the epoch it finished joins the slider
    model = dlcore.build_model(dlcore.model_from_dict(meta["model"]))
    save_snapshot(dlcore.RunStore(folder).run_dir(ids["live"]), model.state_dict(), 2, 18, {"val_accuracy": 0.5},
                  model_config=model.config)
    at.run()
    ok(at)
    np.testing.assert_allclose(shown_kernels(at), 0.25)
    slider = at.select_slider(key=f"filters_epoch_{ids['live']}_now")
    assert list(slider.options) == ["epoch 0 (before training)", "epoch 1", "epoch 2", "now (training)"]
    assert slider.value == "now"
    assert [f["name"] for f in chart(at, "filters_anim")["frames"]] == ["0", "1", "2"]


def test_after_training_the_epoch_slider_shows_the_filters_of_every_epoch(ids):
    at = open_page("filters", timeout=120)
    at.selectbox(key="filters_run").set_value(ids["done"]).run()
    ok(at)
    key = f"filters_epoch_{ids['done']}_end"
    slider = at.select_slider(key=key)
    assert list(slider.options) == ["epoch 0 (before training)", "epoch 1", "epoch 2", "epoch 3 (end)"]
    _, final = dlcore.load_run_model(ids["done"])
    np.testing.assert_allclose(shown_kernels(at), first_kernels(final.state_dict()["features.0.0.weight"]),
                               rtol=1e-6, atol=1e-6)  # the end: the final checkpoint itself
    anim = chart(at, "filters_anim")
    assert [f["name"] for f in anim["frames"]] == ["0", "1", "2", "3"]
    assert [s["label"] for s in anim["layout"]["sliders"][0]["steps"]] == ["0", "1", "2", "3"]
    for epoch in (0, 1):
        at.select_slider(key=key).set_value(epoch).run()
        ok(at)
        _, snap = dlcore.load_snapshot_model(ids["done"], epoch)
        np.testing.assert_allclose(shown_kernels(at), first_kernels(snap.state_dict()["features.0.0.weight"]),
                                   rtol=1e-6, atol=1e-6)
        assert any(f"Filters after epoch {epoch}" == str(h.value) for h in at.subheader)
    at0 = shown_kernels(at)
    at.select_slider(key=key).set_value(0).run()
    assert not np.allclose(shown_kernels(at), at0)  # epoch 0 (random) differs from epoch 1


def test_attention_page_scrubs_and_plays_the_heads(ids):
    at = open_page("attention", timeout=120)
    at.selectbox(key="attention_run").set_value(ids["enc"]).run()
    ok(at)
    key = f"attention_epoch_{ids['enc']}_end"
    assert list(at.select_slider(key=key).options) == ["epoch 0 (before training)", "epoch 1", "epoch 2 (end)"]
    anim = chart(at, "attention_anim")
    assert len(anim["frames"]) == 3
    at.select_slider(key=key).set_value(0).run()
    ok(at)
    assert any("after epoch 0" in str(h.value) for h in at.subheader)


def test_explain_page_scrubs_one_explanation_across_epochs(ids):
    at = open_page("explain", timeout=120)
    at.selectbox(key="explain_run").set_value(ids["done"]).run()
    ok(at)
    assert len(chart(at, "explain_anim")["frames"]) == 4
    key = f"explain_epoch_{ids['done']}_end"
    assert list(at.select_slider(key=key).options) == ["epoch 0 (before training)", "epoch 1", "epoch 2",
                                                       "epoch 3 (end)"]
    before = chart(at, "explain_probs")["data"][0]
    at.select_slider(key=key).set_value(0).run()  # the untrained model's probabilities and maps
    ok(at)
    assert chart(at, "explain_probs")["data"][0] != before


def test_animation_figures_have_one_frame_per_snapshot():
    rng = np.random.default_rng(0)
    epochs = [0, 1, 2, 4, 8]
    fig = viz.filters_animation([rng.normal(size=(6, 3, 3)) * (1 + e) for e in epochs], epochs,
                                labels=["", "accuracy 50%", "", "", "accuracy 90%"], title="conv1")
    assert [f.name for f in fig.frames] == ["0", "1", "2", "4", "8"]
    assert fig.layout.sliders[0].active == 4
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "1", "2", "4", "8"]
    assert fig.layout.title.text == "conv1 · epoch 8 · accuracy 90%"
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "❚❚ Pause"]
    m = max(abs(np.asarray(f.data[0].z, dtype=float)[~np.isnan(np.asarray(f.data[0].z, dtype=float))]).max()
            for f in fig.frames)
    assert all(f.data[0].zmax == pytest.approx(m) for f in fig.frames)  # one scale for every frame
    heads = viz.heads_animation([rng.random((2, 5, 5)) for _ in epochs[:3]], epochs[:3])
    assert len(heads.frames) == 3 and np.asarray(heads.frames[0].data[0].z).shape == (5, 11)  # 2 heads, gap 1
    maps = viz.map_animation([rng.normal(size=(4, 4)) for _ in range(2)], [0, 3], signed=False)
    assert len(maps.frames) == 2 and np.nanmax(np.abs(np.asarray(maps.frames[1].data[0].z, dtype=float))) == 1.0
    assert len(viz.for_presentation(fig).frames) == 5  # presentation mode keeps the animation
    with pytest.raises(ValueError, match="same shape"):
        viz.filters_animation([np.zeros((2, 3, 3)), np.zeros((3, 3, 3))], [0, 1])
    with pytest.raises(ValueError, match="frames for"):
        viz.heads_animation([np.zeros((2, 4, 4))], [0, 1])


def test_a_run_whose_last_snapshot_is_missing_ends_the_slider_at_its_checkpoint(ids, runs):
    """The last stop of the slider is always the final checkpoint: named by its epoch when the newest
    snapshot is that epoch, "end" when it is missing (e.g. it could not be written)."""
    folder, _ = runs
    store = dlcore.RunStore(folder)
    rid = store.create(DIGITS, CNN, dlcore.TrainSpec(epochs=2, lr=1e-2, seed=4, device="cpu"), name="gap", shared=True)
    assert run_job(rid, store) == "completed"
    (store.run_dir(rid) / "snapshots" / "epoch-0002.safetensors").unlink()
    at = open_page("filters", timeout=120)
    at.selectbox(key="filters_run").set_value(rid).run()
    ok(at)
    slider = at.select_slider(key=f"filters_epoch_{rid}_end")
    assert list(slider.options) == ["epoch 0 (before training)", "epoch 1", "end"] and slider.value == "end"
    _, final = dlcore.load_run_model(rid, store)
    np.testing.assert_allclose(shown_kernels(at), first_kernels(final.state_dict()["features.0.0.weight"]),
                               rtol=1e-6, atol=1e-6)
