"""Internals: how a recurrent network's hidden state moves through time (PCA trajectories), what its LSTM/GRU
gates do at every step, and how any classifier arranges the test set in its penultimate layer (PCA / t-SNE)."""
from __future__ import annotations

import numpy as np
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore.viz import for_presentation
from dlcore.viz import inspect as vi
from pages import _common as ui

ui.require_navigation()  # a deep link as the server's first request still gets app.py's layout

PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d"]}


@st.cache_data(max_entries=16, show_spinner=False)
def _embedding(run_id: str, root: str, n: int, method: str):
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
    idx = np.arange(min(n, ins.split_size(ds)))
    x, y = ins.examples(ds, idx)
    feats, out = ins.penultimate(model, x)
    return ins.project(feats, method), y, out.argmax(-1)


@st.cache_data(max_entries=16, show_spinner=False)
def _trajectories(run_id: str, root: str, n: int, layer: int):
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
    x, y = ins.examples(ds, np.arange(min(n, ins.split_size(ds))))
    h = ins.hidden_trajectories(model, x, layer=layer)
    pts, ev = ins.pca_trajectories(h, 2)
    return pts, y, ev


def show(fig, key: str, filename: str, **kwargs):
    if st.session_state.get("app_present"):
        fig = for_presentation(fig)
    return st.plotly_chart(fig, key=key, width="stretch", **kwargs,
                           config={**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "filename": filename,
                                                                          "scale": 2}})


def pick_run(view: str, key: str):
    runs = [r for r in dlcore.list_runs() if r.status == "completed" and ins.unsuitable(r.model, view) is None]
    if not runs:
        st.info(f"No completed run fits this view: it needs {ins.VIEWS[view]}. Train one first — e.g. "
                "`python -m dlcore train --data mnist-rows --model seed-lstm`.", icon=":material/info:")
        return None
    ids = [r.id for r in runs]
    wanted = st.query_params.get("run")
    return st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0, key=key,
                        format_func=lambda i: next(f"{r.name} · {r.data.name} · {r.id}" for r in runs if r.id == i))


st.title("Internals")
root = str(dlcore.data_dir())
tab_rnn, tab_emb = st.tabs(["Recurrent state", "Embedding view"])

with tab_rnn:
    st.caption("The hidden state of a recurrent layer after each time step, projected to 2-D with PCA: examples of "
               "one class should travel to the same region by the last step. Below, the gates of one example, "
               "recomputed from the layer's weights.")
    run_id = pick_run("rnn", "internals_rnn_run")
    if run_id:
        run, model = ui.run_model(run_id, root)
        ds = ui.run_dataset(run.data.to_json())
        info, cfg = ds.info, model.config
        c1, c2 = st.columns(2)
        with c1:
            layer = st.selectbox("Layer", list(range(cfg.num_layers)), index=cfg.num_layers - 1,
                                 key="internals_layer", format_func=lambda i: f"layer {i + 1}")
        with c2:
            n = st.slider("Examples", 5, 100, 30, 5, key="internals_ntraj")
        with st.spinner("Running the examples step by step…"):
            pts, y, ev = _trajectories(run_id, root, n, layer)
        labels = y if info.loss == "ce" and np.ndim(y) == 1 else None
        show(vi.trajectory_figure(pts, labels, info.class_names,
                                  title=f"Hidden-state trajectories, layer {layer + 1} ({cfg.cell.upper()})",
                                  explained=ev), "internals_traj", "trajectories")

        n_test = ins.split_size(ds)
        index = int(st.number_input(f"Gates of test example (0–{n_test - 1})", 0, n_test - 1, 0,
                                    key="internals_index"))
        x, yy = ins.example(ds, index)
        states = ins.rnn_states(model, x)
        layer_states = next(s for s in states.layers if s["layer"] == layer and s["direction"] == "forward")
        keys = list(ins.GATES[states.cell]) + ["h"] + (["c"] if states.cell == "lstm" else [])
        names = {**ins.GATE_NAMES, "h": "hidden state h", "c": "cell state c"}
        max_units = cfg.hidden_size
        if cfg.hidden_size > 8:
            max_units = st.slider("Units shown", 8, cfg.hidden_size, min(64, cfg.hidden_size), key="internals_units")
        title = f"{states.cell.upper()} layer {layer + 1}, example {index} (true {ins.label_text(info, yy)})"
        if not ins.GATES[states.cell]:
            st.caption("A plain RNN has no gates: only its hidden state is shown.")
        show(vi.gates_figure(layer_states, names, keys, max_units=max_units, title=title), "internals_gates", "gates")
        if states.cell == "lstm":
            f = layer_states["f"]
            st.caption(f"Mean forget gate {f.mean():.2f} (1 keeps the cell state, 0 wipes it); mean input gate "
                       f"{layer_states['i'].mean():.2f}.")

with tab_emb:
    st.caption("Each test example's penultimate-layer representation (the input of the output layer), projected "
               "to 2-D. Well-trained classifiers separate the classes; crosses are misclassified examples. Click a "
               "point to see the example.")
    run_id = pick_run("embeddings", "internals_emb_run")
    if run_id:
        run, model = ui.run_model(run_id, root)
        ds = ui.run_dataset(run.data.to_json())
        info = ds.info
        c1, c2 = st.columns(2)
        with c1:
            method = st.radio("Projection", ["pca", "tsne"], horizontal=True, key="internals_proj",
                              format_func=lambda m: {"pca": "PCA", "tsne": "t-SNE"}[m])
        with c2:
            n = st.select_slider("Test examples", [200, 500, 1000], 500, key="internals_nemb")
        with st.spinner("Computing representations and the projection (t-SNE takes a few seconds)…"):
            xy, y, pred = _embedding(run_id, root, int(n), method)
        if np.ndim(y) > 1:  # per-step labels: colour by the predicted first token is meaningless; use none
            y = np.zeros(len(xy), dtype=int)
            pred = None
        names = list(info.class_names)
        hover = [f"example {i}: true {names[int(t)] if int(t) < len(names) else t}"
                 + (f", predicted {names[int(p)] if int(p) < len(names) else p}" if pred is not None else "")
                 for i, (t, p) in enumerate(zip(y, pred if pred is not None else y))]
        event = show(vi.embedding_scatter(xy, y, names, predicted=pred, hover=hover,
                                          title=f"{'t-SNE' if method == 'tsne' else 'PCA'} of the penultimate layer"),
                     "internals_emb", "embedding", on_select="rerun", selection_mode="points")
        points = (event or {}).get("selection", {}).get("points", []) if event else []
        if points:
            i = int(points[0]["customdata"] if np.ndim(points[0].get("customdata")) == 0
                    else points[0]["customdata"][0])
            x, yi = ins.example(ds, i)
            st.markdown(f"**Example {i}** · true `{ins.label_text(info, yi)}`")
            if info.input_kind == "image":
                show(vi.image_figure(x), "internals_emb_example", f"example-{i}")
            else:
                st.code(ins.describe(info, x))
