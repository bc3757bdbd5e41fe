"""What a new user meets in the first hour (issue 10): every kind of data trains from the Build page, Build
hands its model to an open Train form, bad numbers are said next to their field, presentation mode survives
a reload, exports on the Runs page, and the smaller defects of that hour."""
from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from tests.app.conftest import APP, PAGE_FILES, no_errors, open_page
from PIL import Image
from streamlit.testing.v1 import AppTest

import dlcore
from app_pages.common import ui


def _png(value: int, size: int = 10) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _upload(kind: str) -> str:
    """A small upload of each kind, imported the way the Data page does; returns its dataset id."""
    rng = np.random.default_rng(0)
    if kind == "images":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for c, base in (("dark", 10), ("light", 220)):
                for i in range(8):
                    zf.writestr(f"{c}/{i}.png", _png(base + i))
        return dlcore.import_image_zip(buf.getvalue(), name="shades", image_size=16).name
    if kind == "table":
        x = rng.normal(size=(60, 3))
        rows = "\n".join(f"{a:.3f},{b:.3f},{c:.3f},{'yes' if a + b > 0 else 'no'}" for a, b, c in x)
        return dlcore.import_table_csv(("height,weight,age,label\n" + rows).encode(), name="people").name
    if kind == "texts":
        rows = "\n".join(f"{t},{lab}" for t, lab in [("a great fun film truly", "pos"), ("dull", "neg")] * 20)
        return dlcore.import_text_csv(("text,label\n" + rows).encode(), name="reviews").name
    return dlcore.import_text_corpus(("the quick brown fox jumps over the lazy dog. " * 60).encode(), name="fox",
                                     window=16).name


def _build_and_train(at: AppTest, family: str, preset: str, data: str) -> str:
    """Choose a family, preset and dataset on Build, press "Train this model", start a tiny run; its id."""
    at.segmented_control(key="build_family").set_value(family).run()
    no_errors(at)
    at.selectbox(key="build_preset").set_value(preset).run()
    at.selectbox(key="build_data").set_value(data).run()
    no_errors(at)
    at.button(key="build_train").click().run()
    no_errors(at)
    assert at.title[0].value == "Train" and at.selectbox(key="train_model").value == "__build__"
    assert at.selectbox(key="train_data").value == data
    at.switch_page(PAGE_FILES["train"])  # AppTest's next run stays on the page st.switch_page went to
    at.number_input(key="train_f_epochs").set_value(1)
    at.number_input(key="train_f_max_steps").set_value(4)
    at.number_input(key="train_f_eval_max").set_value(64)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    no_errors(at)
    return at.query_params["run"]


# built-in kinds: image, sequence, forecasting, seq2seq tokens, text classification, character LM;
# uploaded kinds: an image zip, a table, labelled texts, a plain-text corpus
KINDS = [("cnn", "cnn-tiny", "mnist5k"), ("rnn", "rnn-tiny", "mnist-rows"), ("rnn", "rnn-forecast", "sunspots"),
         ("transformer", "transformer-tiny", "reverse"), ("rnn", "rnn-tiny", "sentiment-synth"),
         ("transformer", "lm-tiny", "pydoc-lm"), ("cnn", "cnn-tiny", "upload:images"),
         ("mlp", "mlp-small", "upload:table"), ("rnn", "rnn-tiny", "upload:texts"),
         ("rnn", "rnn-tiny", "upload:corpus")]


@pytest.mark.parametrize("family, preset, data", KINDS, ids=[f"{d}-{p}" for _, p, d in KINDS])
def test_every_kind_of_dataset_trains_from_the_build_page(fresh_dir, family, preset, data):
    if data.startswith("upload:"):
        data = _upload(data.split(":")[1])
    at = open_page("build")
    run_id = _build_and_train(at, family, preset, data)
    run = dlcore.wait(run_id, timeout=240)
    assert run.status == "completed", run.error
    assert run.family == family and run.data.name == data
    assert "user-" not in run.name  # named after the upload's given name


def test_the_mlp_family_opens_on_the_build_page_with_its_preset(fresh_dir):
    """It used to raise IndexError (no MLP preset) and leave the page broken until a reload."""
    at = open_page("build")
    at.segmented_control(key="build_family").set_value("mlp").run()
    no_errors(at)
    assert at.selectbox(key="build_preset").value == "mlp-tiny"
    assert "mlp-small" in at.selectbox(key="build_preset").options


def test_a_family_that_cannot_read_the_data_names_one_that_can(fresh_dir):
    table = _upload("table")
    at = open_page("build")
    at.selectbox(key="build_data").set_value(table).run()  # the tutorial CNN on a table
    msg = at.error[0].value
    assert "pick the MLP family" in msg and "people" in msg and "user-" not in msg
    at.segmented_control(key="build_family").set_value("rnn").run()
    at.selectbox(key="build_data").set_value(table).run()
    assert "pick the MLP family" in at.error[0].value
    for name in ("reverse", "sentiment-synth"):  # text: an MLP cannot weigh token ids
        with pytest.raises(dlcore.SpecError, match="pick the RNN or Transformer family"):
            dlcore.for_data(dlcore.get_preset("mlp-small"), dlcore.dataset_info(name))
    with pytest.raises(dlcore.SpecError, match="pick the RNN, Transformer or MLP family"):
        dlcore.for_data(dlcore.get_preset("seed-cnn"), dlcore.dataset_info("sunspots"))


def test_build_hands_its_model_to_an_open_form_and_watches_no_older_run(finished_run):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = finished_run  # an older run the user watched before
    at.run()
    at.switch_page(PAGE_FILES["build"]).run()
    at.button(key="build_train").click().run()
    no_errors(at)
    assert at.title[0].value == "Train"
    assert at.session_state["train_form_open"] is True  # the start form is open
    assert at.selectbox(key="train_run").value is None  # no run shown as "the" run
    assert "run" not in at.query_params
    assert not [m for m in at.markdown if m.value.startswith("###")]  # no run title, no curves
    assert not at.get("plotly_chart")
    assert at.selectbox(key="train_model").value == "__build__"
    at.switch_page(PAGE_FILES["train"])
    at.selectbox(key="train_run").set_value(finished_run).run()  # choosing a run watches it again
    assert at.title[0].value == "Train" and at.query_params["run"] == finished_run
    assert [m.value for m in at.markdown if m.value.startswith("###")] and at.get("plotly_chart")


def _column_with(at: AppTest, key: str):
    """The column holding a widget: its messages must be next to it."""
    return next(c for c in at.columns if any(w.key == key for w in [*c.number_input, *c.text_input]))


@pytest.mark.parametrize("key, value, words", [
    ("train_f_lr", 1e6, "lr 1e+06 is too large: it must be between 1e-07 and 10."),
    ("train_f_batch_size", 0, "batch size 0 is too small: it must be between 1 and 65,536."),
    ("train_f_epochs", None, "epochs is empty: enter a number between 1 and 10,000."),
])
def test_a_bad_number_is_said_next_to_its_field_and_nothing_starts(fresh_dir, key, value, words):
    at = open_page("train")
    at.number_input(key=key).set_value(value)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    assert not at.exception
    assert [e.value for e in _column_with(at, key).error] == [words]  # under the field, in words
    assert "Not started" in at.error[-1].value
    assert dlcore.list_runs() == []  # refused, not silently clamped to a limit or ignored
    at.number_input(key=key).set_value(8)  # fixed: the message goes and the run starts
    at.number_input(key="train_f_max_steps").set_value(1)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    assert not _column_with(at, key).error
    (run,) = dlcore.list_runs()
    dlcore.cancel_run(run.id)
    dlcore.wait(run.id, timeout=120)


def test_build_says_a_bad_estimate_setting_next_to_it(fresh_dir):
    at = open_page("build")
    at.number_input(key="build_batch").set_value(0)
    at.button[[b.label for b in at.button].index("Apply")].click().run()
    assert not at.exception
    assert [e.value for e in _column_with(at, "build_batch").error] == [
        "batch size 0 is too small: it must be between 1 and 65,536."]


def test_presentation_mode_is_read_from_the_url(fresh_dir):
    """The browser writes ?present=true when the toggle is switched on (tests/e2e checks that and a reload)."""
    again = AppTest.from_file(str(APP), default_timeout=90)  # a reload: a new session, the same URL
    again.query_params["present"] = "true"
    again.run()
    assert again.sidebar.toggle[0].value is True
    assert any("font-size: 24px" in (h.proto.body or "") for h in again.get("html"))


def test_presentation_enlarges_the_small_labels_of_figures():
    x = np.zeros((1, 2, 6, 6))
    attn = viz_big = dlcore.viz.for_presentation(dlcore.viz.attention_heads(x, [f"{i}:a" for i in range(6)]))
    ticks = [attn.layout[k].tickfont.size for k in attn.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]
    assert ticks and min(ticks) >= 18  # 9 px before
    panel = dlcore.viz.Panel("IG", np.zeros((28, 28)), np.ones((28, 28)), "sequence", None, caption="a<br>b")
    fig = dlcore.viz.for_presentation(dlcore.viz.attribution_panels([panel]))
    assert fig.layout.xaxis.title.font.size >= 18 and "a<br>b" in fig.layout.xaxis.title.text  # caption under axis
    css = (APP.parent / "assets" / "presentation.css").read_text()
    assert '[data-baseweb="tag"]' in css  # multiselect tags
    del viz_big


def test_the_time_estimate_is_calibrated_by_finished_runs(fresh_dir):
    from dlcore.resources import measured_speed

    info, cfg, train = dlcore.dataset_info("digits"), dlcore.get_preset("mlp-tiny"), dlcore.TrainSpec(epochs=2)
    nominal = dlcore.check_fit(cfg, info, train)
    assert nominal.speed.runs == 0 and "nominal" in nominal.speed.describe("cpu")
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), cfg, dlcore.TrainSpec(epochs=1))
    from dlcore.train.worker import run_job

    assert run_job(rid, store) == "completed"
    run = dlcore.get_run(rid)
    if run.summary["train_seconds"] < 0.5:  # too short to time: the estimate stays nominal
        assert dlcore.check_fit(cfg, info, train).speed.runs == 0
        return
    speed = measured_speed(dlcore.device_description()["type"], "mlp")
    assert speed.runs == 1 and "measured in the last 1 finished MLP run" in speed.describe("cpu")
    # the run itself is predicted as long as it took, from the click to its end
    same = dlcore.check_fit(cfg, info, dlcore.TrainSpec(epochs=1))
    assert same.est_seconds == pytest.approx(run.finished - run.created, rel=0.02)


def test_runs_page_offers_every_export_format(finished_run):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = finished_run
    at.run()
    at.switch_page(PAGE_FILES["runs"]).run()
    no_errors(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"ONNX (.onnx)", "TorchScript (.pt)", "Weights + spec (.zip)"} <= set(labels)
    onnx = next(b for b in at.get("download_button") if b.proto.label == "ONNX (.onnx)")
    assert not onnx.proto.disabled  # onnx and onnxscript come with requirements.txt


def test_export_bytes_of_each_format_load_back(finished_run, tmp_path):
    """What the Runs page's download buttons hand over (``dlcore.export_run_bytes``)."""
    import onnxruntime as ort
    import torch

    onnx, ext = dlcore.export_run_bytes(finished_run, "onnx")
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((3, 1, 8, 8), np.float32)})[0]
    assert ext == ".onnx" and out.shape == (3, 10)
    data, ext = dlcore.export_run_bytes(finished_run, "torchscript")
    (tmp_path / "m.pt").write_bytes(data)
    assert ext == ".pt" and torch.jit.load(str(tmp_path / "m.pt"))(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    data, ext = dlcore.export_run_bytes(finished_run, "safetensors")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert ext == ".zip" and sorted(z.namelist()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("error, shown", [
    ("cancelled by the user; resume continues from here", "Cancelled by the user; resume continues from here."),
    (None, "Cancelled by the user; resume continues from the last checkpoint.")])
def test_the_cancelled_message_says_it_once(fresh_dir, error, shown):
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec())
    store.update(rid, status="cancelled", error=error, started=1.0, finished=2.0)
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = rid
    at.run()
    at.switch_page(PAGE_FILES["train"]).run()
    assert [w.value for w in at.warning] == [shown]


def test_a_resumed_curve_has_no_overlap_or_one_batch_spike():
    rows = [{"step": s, "epoch": s / 100, "loss": 1.0} for s in (1, 10, 20, 30)]  # cancelled at 30
    rows += [{"step": 31, "epoch": 0.31, "loss": 9.0}]  # the first step after the resume: one batch
    rows += [{"step": 30, "epoch": 0.30, "loss": 1.1}]  # a step written twice
    rows += [{"step": s, "epoch": s / 100, "loss": 1.0} for s in (40, 50, 90)]
    rows += [{"step": 100, "epoch": 1.0, "loss": 1.0}]  # the end of an epoch is logged on or off the grid
    kept = ui.curve_rows(rows, log_every=10)
    assert [r["step"] for r in kept] == [1, 10, 20, 30, 40, 50, 90, 100]
    assert next(r for r in kept if r["step"] == 30)["loss"] == 1.1  # the newest row of a step
    assert ui.curve_rows([{"step": 1, "epoch": 1.0}, {"step": 1, "epoch": 1.0, "x": 2}]) == [
        {"step": 1, "epoch": 1.0, "x": 2}]


def test_the_accuracy_note_is_drawn_in_the_metric_panel():
    fig = dlcore.viz.training_curves([{"epoch": 0.1, "step": 1, "loss": 2.0}], [], "accuracy", total_epochs=5)
    note = next(a for a in fig.layout.annotations if "appears" in a.text)
    lo, hi = fig.layout.xaxis2.domain
    assert note.xref == "paper" and lo <= note.x <= hi and note.xanchor == "center"


def test_the_build_diagram_counts_layers_from_the_config(fresh_dir):
    from dlcore.viz.architecture import layer_groups

    for n_layers in (2, 5):
        info = dlcore.dataset_info("reverse")
        cfg = dlcore.for_data(dlcore.get_preset("transformer-tiny").replace(n_layers=n_layers), info)
        groups = layer_groups(dlcore.summarize(cfg, seq_len=cfg.sequence_length(info)).layers)
        blocks = [g for g in groups if g["category"] == "attention"]
        # one box per layer, each saying what it holds (it said "· 8 layers": its 8 modules, whatever n_layers)
        assert len(blocks) == n_layers and {g["detail"] for g in blocks} == {"attention·MLP"}
    info = dlcore.dataset_info("mnist-rows")
    lstm = layer_groups(dlcore.summarize(dlcore.for_data(dlcore.get_preset("seed-lstm"), info)).layers)[0]
    assert lstm["detail"] == "2 layers"  # num_layers of the stacked LSTM


def test_dataset_names_are_shown_not_ids(fresh_dir):
    table = _upload("table")
    at = open_page("build")
    at.segmented_control(key="build_family").set_value("mlp").run()
    at.selectbox(key="build_data").set_value(table).run()
    no_errors(at)
    shown = " ".join(m.value for m in at.markdown)
    assert "people" in shown and table not in shown
    assert at.selectbox(key="build_data").format_func(table) == "people (upload)"


def test_an_error_never_shows_a_python_repr():
    assert ui.message(OSError("cannot identify image file <_io.BytesIO object at 0x7f00deadbeef>")) == \
        "cannot identify image file"


@pytest.fixture
def many_methods_run(finished_run):
    return finished_run


def test_explain_says_when_the_method_cap_is_reached(many_methods_run):
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params["run"] = many_methods_run
    at.run()
    at.switch_page(PAGE_FILES["explain"]).run()
    no_errors(at)
    box = at.multiselect(key=f"explain_methods_{many_methods_run}")
    assert len(box.value) == 4
    assert any("4 of the" in c.value and "remove one" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert not table.isna().all().any() and "sensitivity" not in table  # no column of None


def test_no_page_tells_a_browser_user_to_run_a_command(fresh_dir):
    for name in PAGE_FILES:
        at = open_page(name)
        shown = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.warning])
        assert not re.search(r"python -m|dlcore train", shown), name


def test_the_model_being_built_survives_a_visit_to_another_page(fresh_dir):
    """Leaving Build dropped its widgets' state: coming back reset the model to the tutorial CNN, and the
    Train page lost the preset whose recommended settings it should use."""
    at = open_page("build")
    at.segmented_control(key="build_family").set_value("rnn").run()  # seed-lstm on mnist-rows
    at.switch_page(PAGE_FILES["data"]).run()
    at.switch_page(PAGE_FILES["build"]).run()
    no_errors(at)
    assert at.segmented_control(key="build_family").value == "rnn"
    assert at.selectbox(key="build_preset").value == "seed-lstm"
    at.button(key="build_train").click().run()
    assert at.number_input(key="train_f_lr").value == dlcore.PRESETS["seed-lstm"].train["lr"]
    assert "from seed-lstm" in at.selectbox(key="train_model").format_func("__build__")


def test_an_unexpected_error_shows_its_message_without_traceback_or_paths(fresh_dir, monkeypatch, caplog):
    """Issue 10, hostile Medium 3 (the browser side): the page says what went wrong, the traceback goes to
    the server log, and what escapes the pages' guard shows no traceback either (showErrorDetails)."""
    import tomllib

    def boom(*a, **k):
        raise RuntimeError("cannot read /root/secret/folder/store.db: disk I/O error")

    monkeypatch.setattr(dlcore, "list_runs", boom)
    with caplog.at_level("ERROR", logger="dle.app"):
        at = open_page("runs")
    assert at.exception  # the sidebar's and the page's: each guarded
    for shown in at.exception:
        assert shown.message == "cannot read store.db: disk I/O error" and shown.proto.type == "RuntimeError"
        assert not shown.stack_trace and "/root/secret" not in str(shown.proto)
    assert "Traceback" in caplog.text and "/root/secret/folder/store.db" in caplog.text  # details: server log
    config = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "type"


@pytest.fixture(scope="module")
def sequence_runs(tmp_path_factory):
    """Tiny finished runs on sequence inputs: image rows, a series, and uploaded (padded) texts."""
    import os

    from dlcore.train.worker import run_job

    folder = tmp_path_factory.mktemp("first-hour-seq")
    old = os.environ.get("DLE_DATA_DIR")
    os.environ["DLE_DATA_DIR"] = str(folder)
    try:
        texts = _upload("texts")
        store = dlcore.RunStore(folder)
        ids = {}
        for key, data, cfg in (("rows", "mnist-rows", dlcore.get_preset("rnn-tiny")),
                               ("series", "sunspots", dlcore.get_preset("rnn-tiny")),
                               ("texts", texts, dlcore.get_preset("transformer-tiny"))):
            rid = store.create(dlcore.DataSpec(name=data), cfg, dlcore.TrainSpec(epochs=1, max_steps=3))
            assert run_job(rid, store) == "completed", store.get(rid).error
            ids[key] = rid
    finally:
        if old is None:
            os.environ.pop("DLE_DATA_DIR", None)
        else:
            os.environ["DLE_DATA_DIR"] = old
    return folder, ids


@pytest.mark.parametrize("which", ["rows", "series"])
def test_a_sequence_explanation_shows_its_input_and_keeps_captions_under_the_axis(sequence_runs, monkeypatch, which):
    folder, ids = sequence_runs
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    at = AppTest.from_file(str(APP), default_timeout=240)
    at.query_params["run"] = ids[which]
    at.run()
    at.switch_page(PAGE_FILES["explain"]).run()
    no_errors(at)
    import json

    charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert "explain_input" in charts  # a picture of the input, not its shape as text
    layout = charts["explain_panels"]["layout"]
    titles = [layout[k]["title"]["text"] for k in layout if k.startswith("xaxis")]
    assert titles and all("deletion AUC" in t for t in titles)  # captions under the axis (Plotly makes room)
    assert not [a for a in layout.get("annotations", []) if a.get("y", 0) < 0]  # none drawn over the ticks


def test_padding_is_hidden_in_uploaded_text_inputs(sequence_runs, monkeypatch):
    folder, ids = sequence_runs
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    for name in ("attention", "explain"):
        at = AppTest.from_file(str(APP), default_timeout=240)
        at.query_params["run"] = ids["texts"]
        at.run()
        at.switch_page(PAGE_FILES[name]).run()
        no_errors(at)
        padded = 0
        for index in range(4):  # short and long texts: the short ones are padded
            at.number_input(key=f"{name}_index").set_value(index).run()
            shown = [m.value for m in at.markdown if m.value.startswith("**Input**")]
            assert shown and "␀" not in shown[0], (name, shown)
            hide = [t for t in at.get("toggle") if t.proto.label.startswith("Hide the")]
            if name == "attention" and hide:  # "Hide the N padding tokens", on by default
                padded += 1
                assert hide[0].proto.default is True
        assert padded or name == "explain"
