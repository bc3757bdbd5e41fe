"""Internals: how a recurrent network's hidden state moves through time (PCA trajectories), what its LSTM/GRU
gates do at every step, and how any classifier arranges the test set in its penultimate layer (PCA / t-SNE)."""
from __future__ import annotations

import numpy as np
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import ui

TRAIN_LSTM = ("seed-lstm", "mnist-rows")  # a run that suits both views


@st.cache_data(max_entries=16, show_spinner=False)
def _embedding(run_id: str, root: str, n: int, method: str):
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
    idx = np.arange(min(n, ins.split_size(ds)))
    x, y = ins.example_batch(ds, idx)
    feats, out = ins.penultimate(model, x)
    return ins.project(feats, method), y, out.argmax(-1)


@st.cache_data(max_entries=16, show_spinner=False)
def _trajectories(run_id: str, root: str, n: int, layer: int):
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
    x, y = ins.example_batch(ds, np.arange(min(n, ins.split_size(ds))))
    h = ins.hidden_trajectories(model, x, layer=layer)
    pts, ev = ins.pca_trajectories(h, 2)
    return pts, y, ev


st.title("Internals")
root = str(dlcore.data_dir())
tab_rnn, tab_emb = st.tabs(["Recurrent state", "Embedding view"])

with tab_rnn:
    st.caption("The hidden state of a recurrent layer after each time step, projected to 2-D with PCA: examples of "
               "one class should travel to the same region by the last step. Below, the gates of one example, "
               "recomputed from the layer's weights.")
    opened = ui.pick_run("rnn", "internals_rnn_run", TRAIN_LSTM, what="view")
    if opened:
        run, model, ds = opened
        run_id, info, cfg = run.id, ds.info, model.config
        c1, c2 = st.columns(2)
        with c1:
            layer = st.selectbox("Layer", list(range(cfg.num_layers)), index=cfg.num_layers - 1,
                                 key="internals_layer", format_func=lambda i: f"layer {i + 1}")
        with c2:
            n = st.slider("Examples", 5, 100, 30, 5, key="internals_ntraj")
        with st.spinner("Running the examples step by step…"):
            pts, y, ev = _trajectories(run_id, root, n, layer)
        labels = y if info.loss == "ce" and np.ndim(y) == 1 else None
        title = f"Hidden-state trajectories, layer {layer + 1} ({cfg.cell.upper()})"
        ui.show_figure(viz.trajectory_figure(pts, labels, [ui.text(n, "figure") for n in info.class_names], title=title,
                                             explained=ev),
                       "internals_traj", "trajectories")

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
        title = ui.text(f"{states.cell.upper()} layer {layer + 1}, example {index} (true {ins.label_text(info, yy)})",
                        "figure")
        if not ins.GATES[states.cell]:
            st.caption("A plain RNN has no gates: only its hidden state is shown.")
        ui.show_figure(viz.gates_figure(layer_states, names, keys, max_units=max_units, title=title),
                       "internals_gates", "gates")
        if states.cell == "lstm":
            f = layer_states["f"]
            st.caption(f"Mean forget gate {f.mean():.2f} (1 keeps the cell state, 0 wipes it); mean input gate "
                       f"{layer_states['i'].mean():.2f}.")

with tab_emb:
    st.caption("Each test example's penultimate-layer representation (the input of the output layer), projected "
               "to 2-D. Well-trained classifiers separate the classes; crosses are misclassified examples. Click a "
               "point to see the example.")
    opened = ui.pick_run("embeddings", "internals_emb_run", TRAIN_LSTM, what="view")
    if opened:
        run, model, ds = opened
        run_id, info = run.id, ds.info
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
        names = [ui.text(n, "figure") for n in info.class_names]
        hover = [f"example {i}: true {names[int(t)] if int(t) < len(names) else t}"
                 + (f", predicted {names[int(p)] if int(p) < len(names) else p}" if pred is not None else "")
                 for i, (t, p) in enumerate(zip(y, pred if pred is not None else y))]
        title = f"{'t-SNE' if method == 'tsne' else 'PCA'} of the penultimate layer"
        event = ui.show_figure(viz.embedding_scatter(xy, y, names, predicted=pred, hover=hover, title=title),
                               "internals_emb", "embedding", on_select="rerun")
        points = (event or {}).get("selection", {}).get("points", []) if event else []
        if points:
            i = int(points[0]["customdata"] if np.ndim(points[0].get("customdata")) == 0
                    else points[0]["customdata"][0])
            x, yi = ins.example(ds, i)
            st.markdown(f"**Example {i}** · true {ui.text(ins.label_text(info, yi))}")
            if info.input_kind == "image":
                ui.show_figure(viz.image_figure(x), "internals_emb_example", f"example-{i}")
            else:
                st.code(ins.describe(info, x))
