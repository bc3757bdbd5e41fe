"""Explain a prediction: pick a run and an input (a test example, a misclassified one, an uploaded image or a
digit drawn by hand), compare up to four attribution methods side by side with their faithfulness scores, and
run the sanity check that shows which methods depend on what the model learned. The epoch slider explains with
the weights of an earlier epoch (a snapshot), and "watch the explanation form" plays one method across them."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

import dlcore
import dlcore.explain as ex
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import ui

DEFAULT_METHODS = ["integrated_gradients", "grad_cam", "occlusion", "saliency", "shap_gradient", "lime"]


ANIMATED = ("integrated_gradients", "saliency", "grad_cam")  # fast enough for every epoch


@st.cache_data(max_entries=128, show_spinner=False)
def _explain(run_id: str, root: str, x: np.ndarray, target: int, position: int | None, key: str, params_json: str,
             sensitivity: bool, epoch: int | None = None, version: float = 0.0):
    """One explanation and its faithfulness (cached per run, weights, input, target, method and parameters)."""
    run, model = ui.run_model(run_id, root, epoch)
    s = ex.subject_for(model, ui.run_dataset(run.data.to_json()), x, target=target, position=position)
    e = ex.explain(s, key, **json.loads(params_json))
    return e, ex.faithfulness(s, e, sensitivity=sensitivity), s.display_input(), s.kind


@st.cache_data(max_entries=8, show_spinner=False)
def _misclassified(run_id: str, root: str, epoch: int | None = None, version: float = 0.0) -> list[int]:
    run, model = ui.run_model(run_id, root, epoch)
    return ins.misclassified_indices(model, ui.run_dataset(run.data.to_json()))


@st.cache_data(max_entries=512, show_spinner=False)
def _map(run_id: str, root: str, epoch: int, version: float, x: np.ndarray, target: int, position: int | None,
         key: str, params_json: str) -> np.ndarray:
    """The display map of one method with one epoch's snapshot, as 2-D (a row for tokens and tables)."""
    run, model = ui.run_model(run_id, root, epoch)
    s = ex.subject_for(model, ui.run_dataset(run.data.to_json()), x, target=target, position=position)
    m = np.asarray(ex.explain(s, key, **json.loads(params_json)).map, dtype=np.float64)
    return m if m.ndim == 2 else m.reshape(1, -1) if m.ndim == 1 else m.reshape(m.shape[0], -1)


def watch_the_explanation_form(run, x, target: int, position: int | None, keys: list[str], by_key: dict,
                               params: dict, keep: int | None) -> None:
    """One method's map for this input and target in every snapshot, played as an animation."""
    snaps = ui.snapshots(run.id, root)
    st.subheader("Watch the explanation form")
    fast = [k for k in keys if k in ANIMATED] or [k for k in ANIMATED if k in by_key][:1]
    if len(snaps) < 2 or not fast:
        st.caption("This run kept no per-epoch snapshots." if len(snaps) < 2 else
                   "None of the fast methods (saliency, Integrated Gradients, Grad-CAM) applies to this model.")
        return
    k = st.selectbox("Method", fast, key=f"explain_anim_method_{run.id}", format_func=lambda m: by_key[m].title)
    epochs = [s.epoch for s in snaps]
    pj = json.dumps(params.get(k, {}), sort_keys=True)
    with st.spinner(f"Explaining with {len(epochs)} snapshots…"):
        maps = [_map(run.id, root, e, ui.model_version(run.id, e), np.asarray(x), int(target), position, k, pj)
                for e in epochs]
    if keep:  # text: without its padding
        maps = [m[:, :keep] for m in maps]
    metric = next((m for m in snaps[-1].metrics if m.startswith("val_") and m != "val_loss"), "val_loss")
    notes = [f"{metric[4:]} {ui.fmt_metric(metric[4:], s.metrics[metric])}" if metric in s.metrics else ""
             for s in snaps]
    ui.show_figure(viz.map_animation(maps, epochs, labels=notes, signed=bool(np.nanmin(np.stack(maps)) < 0),
                                     title=by_key[k].title), "explain_anim", f"explanation-{k}-epochs")
    st.caption(f"Press ▶ Play, or drag the slider: {by_key[k].title} for this input and target with the weights of "
               f"{len(epochs)} snapshots, from the random start (epoch 0) to epoch {epochs[-1]}. Each frame is scaled "
               "to its own largest value, so the frames compare where the evidence lies, not how strong it is.")


def verdict(rho: float) -> str:
    if rho < 0.3:
        return "passes: the map changes with the model"
    if rho < 0.6:
        return "partly: some of the map survives randomisation"
    return "fails: the map barely depends on the weights"


st.title("Explain a prediction")
st.caption("Attribution maps say which parts of the input drove one output. Faithfulness scores and the sanity "
           "check say how far to trust each map.")

root = str(dlcore.data_dir())
opened = ui.pick_run(None, "explain_run", ("seed-cnn", "mnist5k"), running=True)
if opened is None:
    st.stop()
run, model, ds = opened
run_id, info = run.id, ds.info
if run.status == "running":  # explaining is too slow to redo every few seconds: refreshed on the next rerun
    st.info("This run is training: explaining its latest checkpoint (a newer one is picked up when the page "
            "reruns).", icon=":material/directions_run:")
epoch = ui.epoch_picker(run, "explain_epoch", "the explanations")
if epoch is not None:
    try:
        run, model = ui.run_model(run_id, root, epoch)
    except dlcore.CheckpointError as e:
        st.error(f"Cannot open this epoch: {ui.message(e)}")
        st.stop()
version = ui.model_version(run_id, epoch)

# ---------------------------------------------------------------- the input
st.subheader("Input")
sources = ["test example", "misclassified example"]
if info.input_kind == "image":
    sources.append("upload an image")
    if info.input_shape[0] == 1:
        sources.append("draw a digit")
source = st.radio("Input", sources, horizontal=True, key="explain_source", label_visibility="collapsed")
n_test = ins.split_size(ds)
x, y = None, None
if source == "test example":
    index = int(st.number_input(f"Test example (0–{n_test - 1})", 0, n_test - 1, 0, key="explain_index"))
    x, y = ins.example(ds, index)
elif source == "misclassified example":
    with st.spinner("Finding the mistakes…"):
        wrong = _misclassified(run_id, root, epoch, version) if info.loss == "ce" else []
    if not wrong:
        st.info("No misclassified test example (or not a classification task); pick a test example instead.")
        st.stop()
    index = st.selectbox(f"Misclassified test example ({len(wrong)} of {n_test})", wrong, key="explain_wrong")
    x, y = ins.example(ds, int(index))
elif source == "upload an image":
    up = st.file_uploader("Image (PNG, JPEG, …)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
                          key="explain_upload")
    if up is None:
        st.info("Upload an image to explain the model's prediction for it.")
        st.stop()
    try:
        x = ins.image_from_bytes(up.getvalue(), info)
    except dlcore.DataError as e:
        ui.user_error(e)
        st.stop()
    except Exception as e:  # a file the image decoder refuses in its own words (not an image, too large, …)
        st.error(f"{ui.text(up.name)} cannot be read as an image: {ui.message(e)}", icon=":material/error:")
        st.stop()
else:  # draw a digit
    from streamlit_drawable_canvas import st_canvas

    st.caption("Draw one digit, large, in the middle. It is centred and scaled like the MNIST digits.")
    canvas = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280, width=280,
                       drawing_mode="freedraw", key="explain_canvas")
    data = None if canvas is None else canvas.image_data
    if data is None or np.asarray(data)[..., :3].max() == 0:
        st.info("Draw a digit on the black square.")
        st.stop()
    x = ins.image_input(np.asarray(data), info, invert=False)

x_id = hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()[:10]  # widgets that depend on the input
position = None
if info.per_step:
    T = int(np.asarray(x).shape[0])
    position = T - 1
    if T > 1:
        position = int(st.slider("Explain the output at step", 0, T - 1, T - 1, key=f"explain_position_{run_id}"))
probs = ins.predict_proba(model, x, info)
p_here = probs[position] if position is not None else probs
names = list(info.class_names or info.vocab or [str(i) for i in range(model.config.num_outputs)])  # plain text
fig_names = [ui.text(n, "figure") for n in names]
keep = dlcore.unpadded_length(info, x) if info.input_kind == "tokens" else None  # text before its padding
if info.loss == "ce":
    predicted = int(np.argmax(p_here))
    target = st.selectbox("Explain the score of", list(range(len(p_here))), index=predicted,
                          key=f"explain_target_{run_id}_{x_id}_{position}",
                          format_func=lambda k: f"{names[k] if k < len(names) else k}"
                                                + (" (predicted)" if k == predicted else ""))
else:
    target = st.selectbox("Explain forecast step", list(range(len(p_here))), key=f"explain_target_{run_id}",
                          format_func=lambda k: f"t+{k + 1}")
c_in, c_prob = st.columns([1, 1])
with c_in:
    truth = f"true {ins.label_text(info, y)} · " if y is not None else ""
    title = ui.text(f"{truth}predicted {names[int(np.argmax(p_here))]}", "figure") if info.loss == "ce" else None
    seq = np.asarray(x)
    if info.input_kind == "image":
        ui.show_figure(viz.image_figure(x, title=title), "explain_input", "input")
    elif info.input_kind == "sequence" and seq.ndim == 2 and seq.shape[1] > 6:  # rows of an image (MNIST rows)
        ui.show_figure(viz.image_figure(seq, title=title), "explain_input", "input")
    elif info.input_kind == "sequence":  # a few features per step: the series itself
        ui.show_figure(viz.sequence_lines(seq[None], [title or "input"], cols=1, title="Input"), "explain_input",
                       "input")
    else:
        shown = np.asarray(x)[:keep] if keep else x
        st.markdown(f"**Input** {ui.text(ins.describe(info, shown))}")
        if y is not None:
            yy = np.asarray(y)[:keep] if keep and info.per_step else y
            st.markdown(f"**True** {ui.text(ins.label_text(info, yy))}")
with c_prob:
    if info.loss == "ce":
        true_k = None
        if y is not None:
            yy = np.asarray(y)
            true_k = int(yy if yy.ndim == 0 else yy.reshape(-1)[position if position is not None else 0])
        at_step = f" at step {position}" if position is not None else ""
        ui.show_figure(viz.probabilities_figure(p_here, fig_names, true=true_k, title=f"Class probabilities{at_step}"),
                       "explain_probs", "probabilities")
    else:
        st.metric("Model output", f"{float(p_here[target]):.4g}")

# ---------------------------------------------------------------- methods and their parameters
st.subheader("Methods")
avail = ex.available_methods(model)
by_key = {m.key: m for m in avail}
skipped = ex.unavailable_methods(model)
default = [k for k in DEFAULT_METHODS if k in by_key][:4]
MAX_METHODS = 4
keys = st.multiselect(f"Up to {MAX_METHODS} methods", list(by_key), default=default, max_selections=MAX_METHODS,
                      key=f"explain_methods_{run_id}",
                      format_func=lambda k: f"{by_key[k].title} ({by_key[k].library})")
if len(keys) == MAX_METHODS and len(by_key) > MAX_METHODS:  # "Select all" keeps the first four without a word
    st.caption(f":material/info: {MAX_METHODS} of the {len(by_key)} methods are compared at once (side by side, "
               f"each with its faithfulness scores): remove one to add "
               + ", ".join(by_key[k].title for k in by_key if k not in keys) + " instead.")
if skipped:
    st.caption("Not offered for this model: "
               + "; ".join(f"{ex.get_method(k).title} — {why}" for k, why in skipped.items()))
if not keys:
    st.info("Pick at least one method.")
    st.stop()
with st.form("explain_form"):
    cols = st.columns(len(keys))
    params = {}
    for col, k in zip(cols, keys):
        m = by_key[k]
        with col:
            with st.expander(f"{m.title} settings", expanded=False):
                st.caption(m.description)
                for fs in m.params:
                    ui.field_widget(fs, f"explain_{k}_{fs.name}", {})
                params[k] = ui.read_fields(m.params, f"explain_{k}_")
    sensitivity = st.checkbox("Also compute max-sensitivity (re-runs each method 5 times)", False,
                              key="explain_sensitivity")
    st.form_submit_button("Explain", type="primary", icon=":material/lightbulb:")

# ---------------------------------------------------------------- explanations
panels, curves, results = [], {}, {}
labels = None
if info.input_kind == "tokens":
    labels = [ui.text(t, "figure") for t in ins.token_labels(x, info.vocab)]
elif info.input_kind == "tabular":
    labels = [ui.text(f, "figure") for f in info.features] or None
bar = st.progress(0.0, text="Explaining…")
for i, k in enumerate(keys):
    bar.progress(i / len(keys), text=f"{by_key[k].title}…")
    try:
        e, f, shown, kind = _explain(run_id, root, np.asarray(x), int(target), position, k,
                                     json.dumps(params[k], sort_keys=True), bool(sensitivity), epoch, version)
    except (ValueError, RuntimeError) as err:
        st.error(f"{by_key[k].title} failed on this input: {ui.message(err)}", icon=":material/error:")
        continue
    results[k] = (e, f)
    cap = [f"deletion AUC {f.deletion_auc:.2f} ({f.random_deletion_auc:.2f})",
           f"insertion AUC {f.insertion_auc:.2f} ({f.random_insertion_auc:.2f})",
           f"infidelity {f.infidelity:.2g}" + (f" · sens. {f.sensitivity:.2g}" if f.sensitivity is not None else ""),
           f"{e.seconds:.2f} s" + (f" · IG δ {e.extras['convergence_delta']:.1g}" if "convergence_delta" in e.extras
                                   else "")]
    panels.append(viz.Panel(e.title, shown, e.map, kind, labels, caption="<br>".join(cap)))
    curves[e.title] = {"fractions": f.fractions, "deletion": f.deletion, "insertion": f.insertion,
                       "random_deletion": f.random_deletion, "random_insertion": f.random_insertion,
                       "deletion_auc": f.deletion_auc, "insertion_auc": f.insertion_auc}
bar.empty()
if panels:
    target_name = fig_names[target] if info.loss == "ce" and target < len(names) else f"t+{target + 1}"
    fig = viz.attribution_panels(panels, title=f"Why “{target_name}”"
                                 + (f" at step {position}" if position is not None else ""),
                                 height=400 if info.input_kind == "image" else 440)
    ui.show_figure(fig, "explain_panels", f"explanations-{run_id}")
    st.caption("Red pushes the score up, blue down (unsigned maps: darker = more important). Under each map: deletion "
               "removes the most important features first — a faithful map makes the score collapse (low AUC); "
               "insertion adds them to a blank input — the score should rise fast (high AUC); in brackets the same "
               "for a random order. Infidelity (captum, lower is better) checks the map against the model's response "
               "to small random perturbations; δ is Integrated Gradients' completeness error.")
    curves_fig = viz.curves_figure(curves, ylabel="probability" if info.loss == "ce" else "output")
    ui.show_figure(curves_fig, "explain_curves", f"deletion-insertion-{run_id}")
    table = pd.DataFrame([{"method": e.title, **f.summary(), "seconds": e.seconds} for e, f in results.values()])
    table = table.dropna(axis=1, how="all")  # scores not computed (max-sensitivity unless asked for): no column
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3g") for c in table.columns if c != "method"})
watch_the_explanation_form(run, x, int(target), position, keys, by_key, params, keep)

# ---------------------------------------------------------------- sanity check
st.subheader("Sanity check")
st.caption("Cascading randomisation (Adebayo et al. 2018): re-initialise the layers one after another from the output "
           "down and explain again. A map that reflects what the model learned should change (rank correlation → 0); "
           "one that stays the same is showing the input, not the model.")
sig = json.dumps([run_id, epoch, version, x_id, int(target), position, keys,
                  {k: params[k] for k in keys}], sort_keys=True, default=str)
if st.button("Run the sanity check", icon=":material/science:", key="explain_sanity_go"):
    s = ex.subject_for(model, ds, x, target=int(target), position=position)
    prog = st.progress(0.0, text="Randomising layers…")
    res = ex.cascading_randomization(s, keys, params={k: params[k] for k in keys},
                                     progress=lambda frac, text: prog.progress(min(1.0, frac), text=text))
    prog.empty()
    st.session_state["explain_sanity"] = (sig, res)
saved = st.session_state.get("explain_sanity")
if saved and saved[0] == sig:
    res = saved[1]
    titles = {k: ex.get_method(k).title for k in res.similarity}
    ui.show_figure(viz.sanity_figure(res.layers, {titles[k]: v for k, v in res.similarity.items()}),
                   "explain_sanity_fig", "sanity-check")
    final = res.final_similarity()
    st.dataframe(pd.DataFrame([{"method": titles[k], "rank correlation, all layers random": v,
                                "verdict": verdict(v), "same, with signs": res.signed_similarity[k][-1]}
                               for k, v in final.items()]), hide_index=True, width="stretch")
    st.caption("Maps that multiply by the input (Integrated Gradients, occlusion, SHAP with a zero baseline) are zero "
               "wherever the input is zero, so they keep the input's outline even on a random model — the failure "
               "Adebayo et al. report for Gradient⊙Input. Their magnitude ranks then say more about the input than "
               "about the model; the signed correlation shows whether at least the direction of the evidence changed.")
    kind = panels[0].kind if panels else ("image" if info.input_kind == "image" else info.input_kind)
    shown = panels[0].input if panels else np.asarray(x)
    for k in res.similarity:
        ui.show_figure(viz.sanity_maps(shown, res.original[k], res.maps[k], res.layers, kind, labels,
                                       title=titles[k], similarity=res.similarity[k]),
                       f"explain_sanity_{k}", f"sanity-{k}")
elif saved:
    st.caption("The input, target or methods changed since the last check: run it again.")
