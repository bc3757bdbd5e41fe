"""Filters & feature maps: what a trained CNN's kernels look like, what each layer makes of one input, and
how its activations are distributed (dead units show up here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore.viz import for_presentation
from dlcore.viz import inspect as vi
from pages import _common as ui

ui.require_navigation()  # a deep link as the server's first request still gets app.py's layout

PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


@st.cache_data(max_entries=16, show_spinner=False)
def _stats(run_id: str, root: str, n: int) -> list[dict]:
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
    x, _ = ins.examples(ds, range(min(n, ins.split_size(ds))))
    return ins.activation_stats(model, x)


def show(fig, key: str, filename: str) -> None:
    if st.session_state.get("app_present"):
        fig = for_presentation(fig)
    st.plotly_chart(fig, key=key, width="stretch",
                    config={**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}})


def no_run_message(what: str) -> None:
    st.info(f"No completed run fits this page: it needs {what}. Train one first — e.g. "
            "`python -m dlcore train --data mnist5k --model seed-cnn --epochs 5` (about a minute on a CPU).",
            icon=":material/info:")
    try:
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    except Exception:  # the page runs on its own (not under app.py's navigation)
        pass


st.title("Filters & feature maps")
st.caption("The kernels a convolutional network learned, the feature maps they produce for one input, and "
           "activation statistics per layer.")

root = str(dlcore.data_dir())
runs = [r for r in dlcore.list_runs() if r.status == "completed" and ins.unsuitable(r.model, "filters") is None]
if not runs:
    no_run_message(ins.VIEWS["filters"])
    st.stop()

ids = [r.id for r in runs]
wanted = st.query_params.get("run")
run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0, key="filters_run",
                      format_func=lambda i: next(f"{r.name} · {r.data.name} · {r.id}" for r in runs if r.id == i))
try:
    run, model = ui.run_model(run_id, root)
    ds = ui.run_dataset(run.data.to_json())
except (dlcore.CheckpointError, dlcore.DataError, dlcore.RunNotFound) as e:
    st.error(f"Cannot open this run: {e}")
    st.stop()
info = ds.info
layers = [name for name, _ in ins.conv_layers(model)]

st.subheader("Filters")
layer = st.selectbox("Conv layer", layers, key="filters_layer",
                     format_func=lambda n: f"{n} · {tuple(ins.kernels(model, n).shape)}")
w = ins.kernels(model, layer)  # (out, in, k, k)
n_out, n_in = w.shape[:2]
if n_in == 3:
    st.caption(f"{n_out} colour kernels of {w.shape[2]}×{w.shape[3]}, each rescaled to its own range.")
    show(vi.kernel_grid(w, title=f"{layer}: {n_out} filters"), "filters_kernels", f"filters-{layer}")
elif n_in == 1:
    st.caption(f"{n_out} kernels of {w.shape[2]}×{w.shape[3]} on the input image. Red weights respond to ink, "
               "blue to background: many first-layer filters are edge and stroke detectors.")
    show(vi.kernel_grid(w[:, 0], title=f"{layer}: {n_out} filters"), "filters_kernels", f"filters-{layer}")
else:
    st.caption(f"Each of the {n_out} filters of this layer has {n_in} kernels, one per input channel. "
               "Pick a filter to see its kernels, or an input channel to see how every filter reads it.")
    mode = st.radio("Show", ["one filter, all its input channels", "one input channel, all filters"],
                    horizontal=True, key="filters_mode")
    if mode.startswith("one filter"):
        f = st.number_input("Filter (output channel)", 0, n_out - 1, 0, key="filters_out")
        show(vi.kernel_grid(w[f], captions=[f"in {i}" for i in range(n_in)],
                            title=f"{layer}: filter {f}, {n_in} input channels"),
             "filters_kernels", f"filters-{layer}-{f}")
    else:
        c = st.number_input("Input channel", 0, n_in - 1, 0, key="filters_in")
        show(vi.kernel_grid(w[:, c], title=f"{layer}: input channel {c} in all {n_out} filters"),
             "filters_kernels", f"filters-{layer}-in{c}")
norms = np.sqrt((w.reshape(n_out, -1) ** 2).sum(1))
st.caption(f"Weight norm per filter: min {norms.min():.3f}, median {np.median(norms):.3f}, max {norms.max():.3f}.")

st.subheader("Feature maps")
n_test = ins.split_size(ds)
source = st.radio("Input", ["test example", "a misclassified example"], horizontal=True, key="filters_source")
index = 0
if source == "test example":
    index = st.number_input(f"Test example (0–{n_test - 1})", 0, n_test - 1, 0, key="filters_index")
else:
    with st.spinner("Finding the mistakes…"):
        wrong = ins.misclassified(model, ds)
    if not wrong:
        st.success("The model gets every test example right; showing example 0.")
    else:
        index = st.selectbox(f"Misclassified example ({len(wrong)} of {n_test})", wrong, key="filters_wrong")
x, y = ins.example(ds, int(index))
probs = ins.predict_proba(model, x, info)
c1, c2 = st.columns([1, 2])
with c1:
    show(vi.image_figure(x, title=f"true {ins.label_text(info, y)} · predicted "
                                  f"{ins.label_text(info, probs.argmax())} ({probs.max():.0%})"),
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
    show(vi.feature_map_grid(m[:max_ch], title=f"{name}: {m.shape[0]} maps of {m.shape[1]}×{m.shape[2]}"
                             + (f" (first {max_ch})" if m.shape[0] > max_ch else "")),
         f"filters_map_{name}", f"feature-maps-{name}")

st.subheader("Activation statistics")
n = st.select_slider("Test examples", [64, 128, 256, 512, 1000], 256, key="filters_nstats")
with st.spinner(f"Running {n} examples through the model…"):
    rows = _stats(run_id, root, int(n))
show(vi.activation_stats_figure(rows), "filters_stats", "activation-stats")
df = pd.DataFrame(rows)
df["shape"] = df["shape"].map(lambda s: "×".join(map(str, s)))
dead = df[(df["dead_units"] > 0)]
if len(dead):
    st.caption("Dead units (never active on these examples): " + ", ".join(
        f"{r.layer} {r.dead_units}/{r.units}" for r in dead.itertuples()))
st.dataframe(df, hide_index=True, width="stretch",
             column_config={"zero_fraction": st.column_config.ProgressColumn("zeros", min_value=0, max_value=1,
                                                                             format="percent")})
