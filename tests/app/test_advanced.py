"""AppTest of the Advanced pages (Compress, Overfitting & transfer) through app.py's navigation, on a tiny
finished CNN of this module's own data folder."""
from __future__ import annotations

import pytest
from tests.app.conftest import open_page

import dlcore
from dlcore.train.worker import run_job


@pytest.fixture(scope="module")
def _store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dle-advanced")
    store = dlcore.RunStore(root)
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny").replace(padding="same"),
                       dlcore.TrainSpec(epochs=3, seed=7), name="tiny *digits* CNN")
    assert run_job(rid, store) == "completed"
    return root, rid


@pytest.fixture
def run_id(_store, monkeypatch) -> str:
    root, rid = _store
    monkeypatch.setenv("DLE_DATA_DIR", str(root))
    return rid


def chart_keys(at) -> set[str]:
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def pick(at, key: str, run_id: str):
    at.selectbox(key=key).set_value(run_id).run()
    return at


def submit(at, label_start: str):
    return next(b for b in at.button if b.label.startswith(label_start)).click().run()


def test_compress_prune_makes_a_descendant_on_the_pareto_chart(run_id):
    at = pick(open_page("compress", timeout=240), "compress_run", run_id)
    ok(at)
    assert "compress_pareto" in chart_keys(at)
    at.number_input(key="compress_ft").set_value(0)
    submit(at, "Prune")
    ok(at)
    assert at.success and "New run" in at.success[0].value
    df = at.dataframe[0].value
    assert list(df["method"]) == ["original", "prune"], df
    assert df["size (KB)"].notna().all() and df["test accuracy"].notna().all()
    assert "compress_pareto" in chart_keys(at)
    assert any(r.parent == run_id for r in dlcore.list_runs())


def test_compress_error_is_an_error_box_not_a_traceback(run_id, monkeypatch):
    def refuse(*a, **k):
        raise dlcore.CompressionError("compression reports accuracy; run x is a regression run (mae)")
    monkeypatch.setattr(dlcore, "compress_run", refuse)
    at = pick(open_page("compress", timeout=240), "compress_run", run_id)
    submit(at, "Prune")
    assert not at.exception
    assert at.error and "regression run" in at.error[0].value


def test_overfitting_page_curves_remedy_variant_and_compare_chart(run_id):
    at = pick(open_page("overfitting", timeout=240), "overfit_run", run_id)
    ok(at)
    assert "overfit_curves" in chart_keys(at)
    assert not at.button(key="overfit_remedy_augment").disabled  # digits are images
    at.button(key="overfit_remedy_dropout").click().run()
    ok(at)
    at.button(key="overfit_remedy_l1").click().run()
    ok(at)
    variants = [r for r in dlcore.list_runs() if r.name == "tiny *digits* CNN + dropout"]
    assert len(variants) == 1 and variants[0].model.dropout == 0.25
    l1 = [r for r in dlcore.list_runs() if r.name == "tiny *digits* CNN + l1"]
    assert len(l1) == 1 and l1[0].train.l1 == dlcore.REMEDIES["l1"].train["l1"]
    assert dlcore.wait(l1[0].id, timeout=300).status == "completed", dlcore.get_run(l1[0].id).error
    dlcore.wait(variants[0].id, timeout=300)
    at.run()
    ok(at)
    assert "overfit_compare" in chart_keys(at)


def test_overfitting_transfer_form_starts_a_child_and_errors_show(run_id, monkeypatch):
    at = pick(open_page("overfitting", timeout=240), "overfit_run", run_id)
    at.multiselect(key="overfit_classes").set_value([0, 1, 2])
    at.number_input(key="overfit_t_epochs").set_value(1)
    submit(at, "Start fine-tuning")
    ok(at)
    child = next(r for r in dlcore.list_runs() if r.name == "tiny *digits* CNN → fine-tune")
    assert child.train.init_from == run_id and child.parent == run_id and child.data.classes == (0, 1, 2)
    assert dlcore.wait(child.id, timeout=300).status == "completed", dlcore.get_run(child.id).error

    def refuse(*a, **k):
        raise dlcore.TransferError("weights of layer head.0 do not fit: (10, 16) vs (3, 16)")
    monkeypatch.setattr(dlcore, "start_run", refuse)
    submit(at, "Start fine-tuning")
    assert not at.exception
    assert at.error and "head.0" in at.error[0].value


def test_detect_overfitting_marks_the_epoch():
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": v} for e, v in enumerate([1.0, .8, .6, .7, .8, .9], 1)]
    found = dlcore.detect_overfitting(rows)
    assert found and found[0] == 3
    fig = dlcore.viz.overfitting_figure([r["epoch"] for r in rows], [r["train_loss"] for r in rows],
                                        [r["val_loss"] for r in rows], found[0])
    assert any("epoch 3" in a.text for a in fig.layout.annotations)


def _overfit_run(store) -> str:
    """A completed run whose logged epochs overfit after epoch 3 (rows written directly: no training)."""
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny").replace(padding="same"),
                       dlcore.TrainSpec(epochs=6), name="memoriser")
    for e, (tl, vl) in enumerate(zip([1.0, .6, .4, .3, .2, .1], [.9, .6, .5, .6, .7, .8]), 1):
        store.log(rid, "epoch", e * 10, {"epoch": e, "train_loss": tl, "val_loss": vl, "val_accuracy": 1 - vl},
                  epoch=e)
    store.update(rid, status="completed", progress=1.0, summary={"overfit_epoch": 3, "epochs_done": 6})
    return rid


def test_train_and_runs_pages_mark_overfitting_with_the_epoch(fresh_dir):
    store = dlcore.RunStore()
    rid = _overfit_run(store)
    at = open_page("train", timeout=120, **{})
    at.query_params["run"] = rid
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("After epoch 3 the validation loss rises" in w.value for w in at.warning), [w.value for w in at.warning]
    at = open_page("runs", timeout=120)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.loc[table["id"] == rid, "overfits"]) == ["after epoch 3"]


def test_trainer_summary_names_the_overfitting_epoch():
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": v} for e, v in enumerate([1.0, .8, .6, .7, .8, .9], 1)]
    assert dlcore.overfitting.overfit_epoch(rows) == 3
    assert dlcore.overfitting.overfit_epoch(rows[:3]) is None


def test_transfer_demo_pretrains_then_fine_tunes_from_it_beside_scratch(fresh_dir, monkeypatch):
    import dlcore.transfer as transfer

    tiny = dlcore.get_preset("cnn-tiny").replace(padding="same")
    specs = (tiny, dlcore.DataSpec(name="digits", classes=(0, 1, 2, 3, 4)), dlcore.TrainSpec(epochs=2, seed=0),
             dlcore.DataSpec(name="digits", classes=(5, 6, 7, 8, 9), per_class=10), dlcore.TrainSpec(epochs=2, seed=0))
    monkeypatch.setattr(transfer, "_demo_specs", lambda per_class, epochs, seed: specs)
    assert dlcore.transfer_demo(owner="ana").stage == "not started"
    demo = dlcore.transfer_demo(start=True, owner="ana")
    assert demo.pretrain and demo.scratch and not demo.finetune
    assert dlcore.transfer_demo(start=True, owner="ana").pretrain == demo.pretrain  # no second copy
    assert dlcore.transfer_demo(owner="bo").stage == "not started"  # another person's demo is their own
    assert dlcore.wait(demo.pretrain, timeout=300).status == "completed"
    demo = dlcore.transfer_demo(owner="ana")  # the next call starts the fine-tuning from the pretrained run
    ft = dlcore.get_run(demo.finetune)
    assert ft.parent == demo.pretrain and ft.train.init_from == demo.pretrain and ft.data.classes == (5, 6, 7, 8, 9)
    for rid in (demo.finetune, demo.scratch):
        assert dlcore.wait(rid, timeout=300).status == "completed"
    assert dlcore.transfer_demo(owner="ana").stage == "done"


def test_the_demo_button_starts_the_demonstration_and_draws_both_curves(fresh_dir, monkeypatch):
    import dlcore.transfer as transfer

    tiny = dlcore.get_preset("cnn-tiny").replace(padding="same")
    specs = (tiny, dlcore.DataSpec(name="digits", classes=(0, 1, 2, 3, 4)), dlcore.TrainSpec(epochs=1, seed=0),
             dlcore.DataSpec(name="digits", classes=(5, 6, 7, 8, 9), per_class=10), dlcore.TrainSpec(epochs=1, seed=0))
    monkeypatch.setattr(transfer, "_demo_specs", lambda per_class, epochs, seed: specs)
    at = open_page("overfitting", timeout=240)
    ok(at)
    at.button(key="demo_start").click().run()
    ok(at)
    names = {r.name for r in dlcore.list_runs()}
    assert set(transfer.demo_names(10)[::2]) <= names  # pretraining and from scratch started at once
    assert {"demo_val_accuracy", "demo_val_loss"} <= chart_keys(at)
