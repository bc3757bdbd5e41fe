"""Compress: turn a finished run into a smaller one (pruning, int8 quantization, distillation) and see the
trade-off: accuracy against size and against CPU latency for the run and all its descendants."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import identity, ui

ERRORS = (dlcore.CompressionError, dlcore.SpecError, dlcore.RunNotFound, dlcore.CheckpointError, dlcore.DataError,
          dlcore.ResourceError, dlcore.TrainingError)
METHOD_HELP = {
    "prune": "Zero the smallest weights of the whole model (global magnitude pruning), then fine-tune briefly "
             "with the zeros kept.",
    "quantize": "Store the weights and activations as 8-bit integers (onnxruntime int8 of the ONNX export): about "
                "a quarter of the bytes.",
    "distill": "Train a smaller student to imitate this run's soft predictions at a temperature (knowledge "
               "distillation).",
}

st.title("Compress a model")
st.caption("Each compression makes a new run whose parent is the run you pick, so the Runs page compares it "
           "and the Look inside pages open it. Compression runs here, in this session, on the CPU.")

picked = ui.pick_run(None, "compress_run", ("seed-cnn", "mnist5k"))
if picked is None:
    st.stop()
run, model, dataset = picked
store = dlcore.RunStore()

method = st.segmented_control("Method", ["prune", "quantize", "distill"], default="prune", key="compress_method",
                              format_func=str.capitalize) or "prune"
st.caption(METHOD_HELP[method])
with st.form("compress_form"):
    if method == "prune":
        c1, c2 = st.columns(2)
        sparsity = c1.slider("Sparsity (share of weights set to zero)", 0.1, 0.95, 0.5, 0.05, key="compress_sparsity")
        ft = c2.number_input("Fine-tune epochs", 0, 20, 1, key="compress_ft",
                             help="0 = no fine-tuning: see what pruning alone costs.")
        opts = {"sparsity": float(sparsity), "finetune_epochs": int(ft)}
    elif method == "quantize":
        mode = st.radio("Mode", ["static", "dynamic"], horizontal=True, key="compress_mode",
                        help="static: activations calibrated on training images too; dynamic: weights only.")
        opts = {"mode": mode}
    else:
        family = run.model.family
        students = dlcore.presets_of(family) or ["cnn-tiny"]
        c1, c2 = st.columns(2)
        student = c1.selectbox("Student preset", students, index=0, key="compress_student",
                               help=f"A preset of the teacher's family ({family}); a smaller one compresses more.")
        epochs = c2.number_input("Epochs", 1, 100, max(1, min(run.train.epochs, 20)), key="compress_epochs")
        c3, c4 = st.columns(2)
        temperature = c3.slider("Temperature", 1.0, 10.0, 4.0, 0.5, key="compress_t",
                                help="Higher: softer teacher probabilities, more about which wrong classes look alike.")
        alpha = c4.slider("Alpha (weight of the teacher's soft targets)", 0.0, 1.0, 0.5, 0.05, key="compress_alpha")
        baseline = st.checkbox("Also train the same student without the teacher (same epochs and seed)",
                               key="compress_baseline")
        opts = {"student": student, "temperature": float(temperature), "alpha": float(alpha), "epochs": int(epochs),
                "baseline": bool(baseline)}
    go = st.form_submit_button(f"{method.capitalize()} this run", type="primary", icon=":material/compress:")

if go:
    started = time.time()
    try:
        with st.spinner(f"{method.capitalize()}… (this runs on the CPU and can take a minute)"):
            res = dlcore.compress_run(run.id, method, owner=identity.viewer().identity, **opts)
    except ERRORS as e:
        ui.user_error(e)
    else:
        st.session_state["compress_last"] = {"run": run.id, "res": res, "seconds": time.time() - started}

last = st.session_state.get("compress_last")
if last and last["run"] == run.id:
    res = last["res"]
    st.success(f"New run **{ui.text(res['run_id'])}** ({ui.text(res['method'])}) made in "
               f"{ui.fmt_duration(last['seconds'])}.", icon=":material/check_circle:")
    m = st.columns(4)
    acc, pacc = res.get("test_accuracy"), res.get("parent_test_accuracy")
    m[0].metric("Test accuracy", ui.fmt_metric("accuracy", acc),
                None if acc is None or pacc is None else f"{(acc - pacc) * 100:+.1f} points")
    m[1].metric("Size", ui.fmt_bytes(res.get("bytes")),
                f"{res['bytes'] / res['parent_bytes']:.2f}× of the original" if res.get("parent_bytes") else None,
                delta_color="off")
    m[2].metric("Non-zero parameters", f"{res.get('nonzero_params', 0):,}", f"of {res.get('params', 0):,}",
                delta_color="off")
    m[3].metric("CPU latency / example", f"{res['latency_ms']:.3g} ms" if res.get("latency_ms") else "–")

# ------------------------------------------------------------------ the run and its descendants
visible = {r.id for r in ui.runs()}  # another student's compression of a shared run is theirs: not listed
family = [run.id, *(d for d in dlcore.descendants(store, run.id) if d in visible)]
rows = []
parent_facts: dict = {}
for rid in family:
    try:
        r = store.get(rid)
    except dlcore.RunNotFound:
        continue
    s = r.summary or {}
    if rid != run.id and isinstance(s.get("parent_facts"), dict) and (s.get("lineage") or {}).get("parent") == run.id:
        parent_facts = {**s["parent_facts"], **parent_facts}
        fp32 = (s.get("latency") or {}).get("torch_fp32") if isinstance(s.get("latency"), dict) else None
        parent_facts.setdefault("latency_ms", fp32)  # measured side by side with the int8 model
        if parent_facts["latency_ms"] is None:
            parent_facts["latency_ms"] = fp32
    meth = (s.get("lineage") or {}).get("method") or s.get("method") or ("original" if rid == run.id else "trained")
    rows.append({"id": rid, "name": r.name, "method": meth, "accuracy": s.get("test_accuracy"),
                 "bytes": s.get("bytes"), "params": r.params, "latency_ms": s.get("latency_ms"),
                 "zeros": s.get("zero_share")})
if rows:  # the original's size and accuracy as its children measured them
    o = rows[0]
    o["accuracy"] = o["accuracy"] if o["accuracy"] is not None else parent_facts.get("test_accuracy")
    o["bytes"] = o["bytes"] or parent_facts.get("bytes")
    o["params"] = o["params"] or parent_facts.get("params")
    o["latency_ms"] = o["latency_ms"] or parent_facts.get("latency_ms")

st.subheader("Accuracy against size and latency")
if len(rows) <= 1:
    st.info("No compressed descendants of this run yet: choose a method above and press the button.",
            icon=":material/info:")
fig = viz.pareto_figure([ui.text(f"{x['name']} · {x['id']}", "figure") for x in rows], [x["method"] for x in rows],
                        [x["accuracy"] for x in rows], [x["bytes"] for x in rows], [x["latency_ms"] for x in rows])
ui.show_figure(fig, key="compress_pareto", filename=f"compression-{run.id}")
st.caption("Dashed: the Pareto front — the runs no other run beats on both accuracy and size (or latency). "
           "Latency: per example at batch 1 on one CPU thread (the original's: torch fp32, measured beside the int8 model "
           "when it was quantized). A pruned model is stored dense: its zeros save bytes only once the file is "
           "compressed or a sparse format is used.")
table = pd.DataFrame([{"run": ui.text(x["name"], "plain"), "id": x["id"], "method": x["method"],
                       "test accuracy": x["accuracy"], "size (KB)": None if x["bytes"] is None else x["bytes"] / 1024,
                       "parameters": x["params"], "zero weights": x["zeros"], "latency (ms)": x["latency_ms"]}
                      for x in rows])
st.dataframe(table, hide_index=True, width="stretch", key="compress_table",
             column_config={"test accuracy": st.column_config.NumberColumn(format="percent"),
                            "size (KB)": st.column_config.NumberColumn(format="%.1f"),
                            "zero weights": st.column_config.NumberColumn(format="percent"),
                            "latency (ms)": st.column_config.NumberColumn(format="%.3f")})
