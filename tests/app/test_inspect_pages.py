"""AppTest of the inspection pages (filters, attention, explain, internals) on tiny runs trained through the
public API (dlcore.start_run → dlcore.wait) in a data folder of this module's own."""
from __future__ import annotations

import pytest
from tests.app.conftest import open_page
from streamlit.testing.v1 import AppTest

import dlcore


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four tiny completed runs: a CNN, an LSTM and a ViT on the 8×8 digits, an encoder on reverse."""
    folder = tmp_path_factory.mktemp("inspect-pages")
    digits = dlcore.DataSpec(name="digits")
    fast = dlcore.TrainSpec(epochs=1, max_steps=25, batch_size=64, lr=3e-3)
    specs = {
        "cnn": (digits, dlcore.CNNConfig(channels=(4, 8), pools=(2, 1), hidden=(16,))),
        "lstm": (digits, dlcore.RNNConfig(cell="lstm", hidden_size=8, num_layers=1)),
        "vit": (digits, dlcore.TransformerConfig(kind="vit", patch_size=4, d_model=16, n_heads=2, n_layers=1,
                                                 d_ff=32)),
        "reverse": (dlcore.DataSpec(name="reverse", seq_len=6, max_train=256),
                    dlcore.TransformerConfig(kind="encoder", d_model=16, n_heads=2, n_layers=1, d_ff=32)),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLE_DATA_DIR", str(folder))
        ids = {k: dlcore.start_run(data, model, fast, name=f"tiny {k}") for k, (data, model) in specs.items()}
        for k, rid in ids.items():
            run = dlcore.wait(rid, timeout=300)
            assert run.status == "completed", (k, run.error)
    return folder, ids


@pytest.fixture
def ids(runs, monkeypatch):
    folder, ids = runs
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    return ids


def page(name: str, run_id: str | None = None, key: str | None = None) -> AppTest:
    """The page reached through app.py's navigation, with a run picked in its run selector."""
    at = open_page(name, timeout=120)
    if run_id is not None:
        at.selectbox(key=key or f"{name}_run").set_value(run_id).run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.subheader])


def chart_keys(at: AppTest) -> set[str]:
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def test_pages_say_what_to_train_when_there_is_no_run(fresh_dir):
    """In words a browser user can follow (what to choose and press), with a button that fills in the Train
    form; never a command line."""
    for name, need, preset in (("filters", "a CNN", "seed-cnn"), ("attention", "a Transformer", "transformer-tiny"),
                               ("explain", "No completed run yet", "seed-cnn"), ("internals", "an RNN", "seed-lstm")):
        at = page(name)
        assert need in texts(at), name
        assert "Start training" in texts(at) and "python -m" not in texts(at), name
        assert not at.get("plotly_chart") or name == "internals", name
        setup = next(b for b in at.button if b.label.startswith("Set up"))
        assert preset in setup.label, name
    setup.click().run()  # the internals page's first button: the Train page, its form open for that run
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train_model").value == "seed-lstm" and at.selectbox(key="train_data").value == "mnist-rows"
    assert at.session_state["train_form_open"] is True


def test_filters_page(ids):
    at = page("filters", ids["cnn"])
    assert at.selectbox(key="filters_layer").options == ["features.0.0 · (4, 1, 3, 3)", "features.1.0 · (8, 4, 3, 3)"]
    assert {"filters_kernels", "filters_input", "filters_stats"} <= chart_keys(at)
    assert any(k.startswith("filters_map_") for k in chart_keys(at))
    at.selectbox(key="filters_layer").set_value("features.1.0").run()
    ok(at)
    assert at.radio(key="filters_mode").value == "one filter, all its input channels"
    at.radio(key="filters_source").set_value("a misclassified example").run()
    ok(at)
    assert at.dataframe[0].value["layer"].tolist()[:2] == ["features.0.0", "features.0.1"]
    vit = page("filters", ids["vit"])
    assert vit.selectbox(key="filters_layer").options == ["patch · (16, 1, 4, 4)"]


def test_attention_page_on_reverse_and_vit(ids):
    at = page("attention", ids["reverse"])
    assert "anti-diagonal" in texts(at) and "Best head" in texts(at)
    assert {"attention_scores", "attention_expected", "attention_heads", "attention_rollout"} <= chart_keys(at)
    at.number_input(key="attention_index").set_value(3).run()
    at.radio(key="attention_fusion").set_value("max").run()
    ok(at)
    vit = page("attention", ids["vit"])
    assert "attention_overlay" in chart_keys(vit) and "[CLS]" in texts(vit)


def _engine_scores(run_id: str, methods: list[str]) -> tuple[dict, dict]:
    """What dlcore gives for the Explain page's defaults (test example 0, its predicted class, each method's
    default parameters), by method title: the deletion AUC, and the sanity check's final rank correlation."""
    import dlcore.explain as ex

    run, model = dlcore.load_run_model(run_id)
    ds = dlcore.load_dataset(run.data)
    s = ex.subject_for(model, ds, dlcore.inspect.example(ds, 0)[0])
    title = {k: ex.get_method(k).title for k in methods}
    auc = {title[k]: ex.faithfulness(s, ex.explain(s, k)).deletion_auc for k in methods}
    rho = ex.cascading_randomization(s, methods).final_similarity()
    return auc, {title[k]: v for k, v in rho.items()}


def test_explain_page_with_sanity_check(ids):
    at = page("explain", ids["cnn"])
    methods = at.multiselect(key=f"explain_methods_{ids['cnn']}")
    assert "Grad-CAM (captum)" in methods.options and len(methods.value) == 4
    assert {"explain_input", "explain_probs", "explain_panels", "explain_curves"} <= chart_keys(at)
    table = at.dataframe[0].value
    auc, rho = _engine_scores(ids["cnn"], list(methods.value))  # the page shows what the engine computes
    assert len(table) == 4 and dict(zip(table["method"], table["deletion_auc"])) == pytest.approx(auc, abs=1e-9)
    at.button(key="explain_sanity_go").click().run()
    ok(at)
    assert "explain_sanity_fig" in chart_keys(at)
    verdicts = at.dataframe[1].value
    shown = dict(zip(verdicts["method"], verdicts["rank correlation, all layers random"]))
    assert len(verdicts) == 4 and shown == pytest.approx(rho, abs=1e-9)
    at.radio(key="explain_source").set_value("misclassified example").run()
    ok(at)


def test_explain_page_offers_only_applicable_methods(ids):
    at = page("explain", ids["reverse"])
    options = at.multiselect(key=f"explain_methods_{ids['reverse']}").options
    assert "Grad-CAM (captum)" not in options and "Integrated Gradients (captum)" in options
    assert "Grad-CAM" in texts(at)  # listed as not offered, with the reason
    assert at.slider(key=f"explain_position_{ids['reverse']}").value == 5  # per-step model: the step to explain
    assert "explain_panels" in chart_keys(at)
    assert "draw a digit" not in at.radio(key="explain_source").options


def test_internals_page(ids):
    at = page("internals", ids["lstm"], key="internals_rnn_run")
    assert {"internals_traj", "internals_gates", "internals_emb"} <= chart_keys(at)
    at.selectbox(key="internals_emb_run").set_value(ids["cnn"]).run()
    at.radio(key="internals_proj").set_value("tsne").run()
    ok(at)
