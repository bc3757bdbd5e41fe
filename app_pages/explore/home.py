"""Home: what the app does, a one-click quick start, and where to go next."""
from __future__ import annotations

import streamlit as st

import dlcore
from app_pages.common import identity, ui


QUICK_PRESET, QUICK_DATA, QUICK_EPOCHS, QUICK_BATCH = "seed-cnn", "mnist5k", 5, 32

st.title("Deep Learning Explorer")
st.markdown(
    "Build a convolutional, recurrent, Transformer or fully connected network from presets or your own "
    "settings, and see "
    "its size, cost and shape before it trains. "
    "Train it on the CPU or a GPU in the background and watch its loss and accuracy move live — close the "
    "tab, come back, the run is still there. "
    "Then look inside: compare runs, see what it gets wrong, and inspect its filters, attention and explanations.")

st.subheader("Quick start", divider="gray")
preset = dlcore.PRESETS[QUICK_PRESET]
settings = {**preset.train, "epochs": QUICK_EPOCHS, "batch_size": QUICK_BATCH}
col, info_col = st.columns([1, 2], vertical_alignment="center")
with col:
    clicked = st.button("Train the tutorial CNN on MNIST", type="primary", icon=":material/play_arrow:",
                        key="home_quickstart", width="stretch")
with info_col:
    st.markdown(f"**{QUICK_PRESET}** on **{QUICK_DATA}** — {preset.description}. "
                f"{QUICK_EPOCHS} epochs, batch {QUICK_BATCH}, learning rate {settings.get('lr', 1e-3):g}, "
                f"{settings.get('schedule', 'cosine')} schedule. You land on its live curves.")
if clicked:
    try:
        run_id = dlcore.start_run(dlcore.DataSpec(name=QUICK_DATA), preset.config, dlcore.TrainSpec(**settings),
                                  name="Tutorial CNN on MNIST", owner=identity.viewer().identity)
    except dlcore.USER_ERRORS as e:
        ui.user_error(e)
    else:
        ui.open_run(run_id)

st.subheader("Step by step", divider="gray")
cols = st.columns(4)
steps = [("data", "1 · Data", ":material/dataset:", "Browse the built-in datasets or upload images, a table or text."),
         ("build", "2 · Build", ":material/construction:",
          "Pick a family and preset, tune it, see parameters, FLOPs and memory."),
         ("train", "3 · Train", ":material/model_training:", "Start runs, watch live curves, cancel and resume."),
         ("runs", "4 · Runs", ":material/table_chart:",
          "Compare runs, confusion matrices and the mistakes a model makes.")]
for c, (key, label, icon, text) in zip(cols, steps):
    with c.container(border=True, height="stretch"):
        st.page_link(ui.PAGE_FILES[key], label=label, icon=icon)
        st.caption(text)

recent = ui.runs()[:5]
if recent:
    st.subheader("Recent runs", divider="gray")
    for run in recent:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        best = ui.best_metric(run)
        metric = ui.dataset_metric(run) if best is not None else ""
        c1.markdown(f"{ui.STATUS_ICONS.get(run.status, '')} **{ui.text(run.name)}** — {run.status}, "
                    f"{ui.text(ui.dataset_title(run.data.name))}, {ui.since(run.created)}"
                    + (f", best val {metric.replace('_', ' ')} {ui.fmt_metric(metric, best)}" if best is not None else ""))
        c2.page_link(ui.PAGE_FILES["train"], label="Open", icon=":material/monitoring:", query_params={"run": run.id})
