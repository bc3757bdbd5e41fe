"""Filters & feature maps: what a trained CNN's kernels look like, what each layer makes of one input, and
how its activations are distributed (dead units show up here). A running run shows its latest checkpoint and
refreshes itself; the epoch slider scrubs the per-epoch snapshots, and "watch the filters form" plays them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import ui



@st.cache_data(max_entries=16, show_spinner=False)
def _stats(run_id: str, root: str, n: int, epoch: int | None, version: float) -> list[dict]:
    run, model = ui.run_model(run_id, root, epoch)
    ds = ui.run_dataset(run.data.to_json())
    x, _ = ins.example_batch(ds, range(min(n, ins.split_size(ds))))
    return ins.activation_stats(model, x)


@st.cache_data(max_entries=256, show_spinner=False)
def _kernels(run_id: str, root: str, epoch: int, version: float, layer: str) -> np.ndarray:
    """One conv layer's kernels in one epoch's snapshot (cached per snapshot file)."""
    return ins.kernels(ui.run_model(run_id, root, epoch)[1], layer)


def _shown(w: np.ndarray, mode: str, f: int, c: int) -> np.ndarray:
    """The (N, k, k) tiles the page shows of a layer's (out, in, k, k) weights: the first layer's kernels,
    colour kernels averaged over their channels, or one filter / one input channel of a deeper layer."""
    if w.shape[1] == 1:
        return w[:, 0]
    if w.shape[1] == 3:
        return w.mean(1)
    return w[f] if mode.startswith("one filter") else w[:, c]


def watch_filters_form(run, layer: str, mode: str, f: int, c: int) -> None:
    """The snapshots of one layer played as an animation, with the validation metric of each epoch."""
    snaps = ui.snapshots(run.id, root)
    st.subheader("Watch the filters form")
    if len(snaps) < 2:
        st.caption("This run kept no per-epoch snapshots" + (" yet: one is written at every epoch end."
                                                              if run.status == "running" else "."))
        return
    epochs = [s.epoch for s in snaps]
    with st.spinner(f"Loading {len(epochs)} snapshots…"):
        frames = [_shown(_kernels(run.id, root, e, ui.model_version(run.id, e), layer), mode, f, c) for e in epochs]
    metric = next((k for k in snaps[-1].metrics if k.startswith("val_") and k != "val_loss"), "val_loss")
    labels = [ui.fmt_metric(metric[4:], s.metrics[metric]) if metric in s.metrics else "" for s in snaps]
    labels = [f"{metric[4:]} {lab}" if lab else "" for lab in labels]
    ui.show_figure(viz.filters_animation(frames, epochs, labels=labels, title=layer), "filters_anim",
                   f"filters-{layer}-epochs")
    st.caption(f"Press ▶ Play, or drag the slider under the grid: {len(epochs)} snapshots from the random start "
               f"(epoch 0) to epoch {epochs[-1]}, on one colour scale" + (" (colour kernels averaged over their "
                                                                         "three channels)" if mode == "rgb" else "")
               + f". The run keeps at most {ui.fmt_bytes(dlcore.LIMITS.snapshot_bytes)} of snapshots (now "
               f"{ui.fmt_bytes(sum(s.bytes for s in snaps))}).")


st.title("Filters & feature maps")
st.caption("The kernels a convolutional network learned, the feature maps they produce for one input, and "
           "activation statistics per layer.")

root = str(dlcore.data_dir())
opened = ui.pick_run("filters", "filters_run", ("seed-cnn", "mnist5k"), running=True)
if opened is None:
    st.stop()


def body(run, model, ds, epoch: int | None) -> None:
    run_id, info = run.id, ds.info
    version = ui.model_version(run_id, epoch)
    layers = [name for name, _ in ins.conv_layers(model)]

    st.subheader("Filters" + (f" after epoch {epoch}" if epoch is not None else ""))
    layer = st.selectbox("Conv layer", layers, key="filters_layer",
                         format_func=lambda n: f"{n} · {tuple(ins.kernels(model, n).shape)}")
    w = ins.kernels(model, layer)  # (out, in, k, k)
    n_out, n_in = w.shape[:2]
    mode, f, c = ("rgb" if n_in == 3 else "first"), 0, 0
    if n_in == 3:
        st.caption(f"{n_out} colour kernels of {w.shape[2]}×{w.shape[3]}, each rescaled to its own range.")
        ui.show_figure(viz.kernel_grid(w, title=f"{layer}: {n_out} filters"), "filters_kernels", f"filters-{layer}")
    elif n_in == 1:
        st.caption(f"{n_out} kernels of {w.shape[2]}×{w.shape[3]} on the input image. Red weights respond to ink, "
                   "blue to background: many first-layer filters are edge and stroke detectors.")
        ui.show_figure(viz.kernel_grid(w[:, 0], title=f"{layer}: {n_out} filters"), "filters_kernels",
                       f"filters-{layer}")
    else:
        st.caption(f"Each of the {n_out} filters of this layer has {n_in} kernels, one per input channel. "
                   "Pick a filter to see its kernels, or an input channel to see how every filter reads it.")
        mode = st.radio("Show", ["one filter, all its input channels", "one input channel, all filters"],
                        horizontal=True, key="filters_mode")
        if mode.startswith("one filter"):
            f = int(st.number_input("Filter (output channel)", 0, n_out - 1, 0, key="filters_out"))
            ui.show_figure(viz.kernel_grid(w[f], captions=[f"in {i}" for i in range(n_in)],
                                           title=f"{layer}: filter {f}, {n_in} input channels"),
                           "filters_kernels", f"filters-{layer}-{f}")
        else:
            c = int(st.number_input("Input channel", 0, n_in - 1, 0, key="filters_in"))
            ui.show_figure(viz.kernel_grid(w[:, c], title=f"{layer}: input channel {c} in all {n_out} filters"),
                           "filters_kernels", f"filters-{layer}-in{c}")
    norms = np.sqrt((w.reshape(n_out, -1) ** 2).sum(1))
    st.caption(f"Weight norm per filter: min {norms.min():.3f}, median {np.median(norms):.3f}, "
               f"max {norms.max():.3f}.")
    watch_filters_form(run, layer, mode, f, c)

    st.subheader("Feature maps")
    n_test = ins.split_size(ds)
    source = st.radio("Input", ["test example", "a misclassified example"], horizontal=True, key="filters_source")
    index = 0
    if source == "test example":
        index = st.number_input(f"Test example (0–{n_test - 1})", 0, n_test - 1, 0, key="filters_index")
    else:
        with st.spinner("Finding the mistakes…"):
            wrong = ins.misclassified_indices(model, ds)
        if not wrong:
            st.success("The model gets every test example right; showing example 0.")
        else:
            index = st.selectbox(f"Misclassified example ({len(wrong)} of {n_test})", wrong, key="filters_wrong")
    x, y = ins.example(ds, int(index))
    probs = ins.predict_proba(model, x, info)
    c1, c2 = st.columns([1, 2])
    with c1:
        ui.show_figure(viz.image_figure(x, title=ui.text(f"true {ins.label_text(info, y)} · predicted "
                                                         f"{ins.label_text(info, probs.argmax())} ({probs.max():.0%})",
                                                         "figure")),
                       "filters_input", "input")
    with c2:
        maps = ins.feature_maps(model, x)
        names = list(maps)
        acts = [n for n in names if n not in layers]  # after the non-linearity / pooling: what the next layer reads
        picked = st.multiselect("Layers", names, default=(acts or names)[:3], key=f"filters_maplayers_{run_id}",
                                help="Every layer of the conv stack, in forward order.")
        max_ch = st.slider("Channels per layer", 4, 128, 32, 4, key="filters_maxch")
    for name in picked:
        m = maps[name]
        title = f"{name}: {m.shape[0]} maps of {m.shape[1]}×{m.shape[2]}" + (
            f" (first {max_ch})" if m.shape[0] > max_ch else "")
        ui.show_figure(viz.feature_map_grid(m[:max_ch], title=title),
                       f"filters_map_{name}", f"feature-maps-{name}")

    st.subheader("Activation statistics")
    n = st.select_slider("Test examples", [64, 128, 256, 512, 1000], 256, key="filters_nstats")
    with st.spinner(f"Running {n} examples through the model…"):
        rows = _stats(run_id, root, int(n), epoch, version)
    ui.show_figure(viz.activation_stats_figure(rows), "filters_stats", "activation-stats")
    df = pd.DataFrame(rows)
    df["shape"] = df["shape"].map(lambda s: "×".join(map(str, s)))
    dead = df[(df["dead_units"] > 0)]
    if len(dead):
        st.caption("Dead units (never active on these examples): " + ", ".join(
            f"{r.layer} {r.dead_units}/{r.units}" for r in dead.itertuples()))
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={"zero_fraction": st.column_config.ProgressColumn("zeros", min_value=0, max_value=1,
                                                                                 format="percent")})


ui.inspect_run(opened[0], "filters_epoch", "the filters and feature maps", body)
