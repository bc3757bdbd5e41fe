"""Overfitting & transfer: a run's losses with the epoch it starts to overfit marked, one-click remedy variants
compared on one chart, and a new run that starts from a finished run's weights (transfer learning)."""
from __future__ import annotations

import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import ui

START_ERRORS = (dlcore.SpecError, dlcore.ResourceError, dlcore.TrainingError, dlcore.DataError, dlcore.RunNotFound,
                dlcore.CheckpointError)

st.title("Overfitting & transfer")
st.caption("When the validation loss rises while the training loss keeps falling, the model memorises its "
           "training examples. Try a remedy as a variant run, or start a new task from a finished run's weights.")

picked = ui.pick_run(None, "overfit_run", ("seed-cnn", "mnist5k"))
if picked is None:
    st.stop()
run, model, dataset = picked
store = dlcore.RunStore()
epochs = ui.curve_rows(store.metrics(run.id, "epoch"))

# ------------------------------------------------------------------ curves, overfitting marked
found = dlcore.detect_overfitting(epochs)
if found:
    st.warning(ui.text(found[1]), icon=":material/trending_up:")
elif len(epochs) < 3:
    st.info("Too few epochs to judge overfitting (it needs at least 3).", icon=":material/info:")
else:
    st.success("No overfitting: the validation loss has not risen while the training loss fell.",
               icon=":material/check_circle:")
fig = viz.overfitting_figure([r.get("epoch") for r in epochs], [r.get("train_loss") for r in epochs],
                             [r.get("val_loss") for r in epochs], found[0] if found else None,
                             title=ui.text(f"Loss of {run.name}", "figure"))
ui.show_figure(fig, key="overfit_curves", filename=f"overfitting-{run.id}")

# ------------------------------------------------------------------ remedies as variant runs
st.subheader("Try a remedy")
st.caption("Each button starts a copy of this run with one change; its name is the run's name plus the remedy.")
remedies = list(dlcore.REMEDIES.values())
cols = st.columns(3)
for i, r in enumerate(remedies):
    needs_engine = bool(r.l1 or r.augment)  # TrainSpec does not carry these yet: a plain copy would mislead
    with cols[i % 3]:
        clicked = st.button(r.label, key=f"overfit_remedy_{r.name}", icon=":material/play_arrow:",
                            width="stretch", disabled=needs_engine,
                            help=(r.why[:1].upper() + r.why[1:] + "." if r.why else None) if not needs_engine else
                            "Not available as a run from the app yet: the training spec has no field for it.")
    if clicked:
        try:
            d, m, t = dlcore.remedy_specs(r.name, run.data, run.model, run.train.replace(init_from="", freeze=()))
            new_id = dlcore.start_run(d, m, t, name=f"{run.name} + {r.name}")
        except START_ERRORS as e:
            ui.user_error(e)
        else:
            st.toast(f"Started **{ui.text(run.name)} + {ui.text(r.name)}**", icon=":material/play_arrow:")
            st.session_state.setdefault("overfit_started", []).append(new_id)

prefix = f"{run.name} + "
variants = [v for v in dlcore.list_runs()
            if v.id != run.id and v.name.startswith(prefix)]  # remedy variants are named "<run> + <remedy>"
if variants:
    metric = st.radio("Compare", ["val_loss", "val_accuracy"], horizontal=True, key="overfit_compare_y",
                      format_func=lambda c: {"val_loss": "validation loss", "val_accuracy": "validation accuracy"}[c])
    curves = {ui.text(run.name, "figure") + " (original)": epochs}
    for v in variants:
        tag = v.name[len(prefix):]
        label = ui.text(f"+ {tag} ({v.status})", "figure")
        curves[label] = ui.curve_rows(store.metrics(v.id, "epoch"))
    cmp = viz.compare_curves(curves, metric, title="Remedies compared",
                             y_title={"val_loss": "validation loss", "val_accuracy": "validation accuracy"}[metric])
    ui.show_figure(cmp, key="overfit_compare", filename=f"remedies-{run.id}")
    if any(v.status in ui.ACTIVE for v in variants):
        st.caption("Some variants are still training: reload the page (or press R) to update the chart.")
else:
    st.caption("No variants of this run yet.")

# ------------------------------------------------------------------ transfer: start from a finished run
st.subheader("Start from a finished run (transfer learning)")
st.caption("A new run on this run's dataset that starts from this run's weights: keep only some classes, cap "
           "the labelled examples per class, and freeze the layers that should stay as they are.")
names = list(getattr(dataset.info, "class_names", ()) or [])
n_classes = len(names) or int(getattr(dataset.info, "num_outputs", 0) or 0)
with st.form("overfit_transfer"):
    classes = st.multiselect("Classes to keep (empty = all)", list(range(n_classes)), key="overfit_classes",
                             format_func=lambda c: ui.text(names[c] if c < len(names) else str(c), "plain"))
    c1, c2 = st.columns(2)
    per_class = c1.number_input("Labelled examples per class (0 = all)", 0, 100_000, 20, key="overfit_per_class")
    t_epochs = c2.number_input("Epochs", 1, 200, max(1, run.train.epochs), key="overfit_t_epochs")
    groups = dlcore.freeze_groups(model)
    freeze = st.multiselect("Freeze", groups, default=["body"] if "body" in groups else [], key="overfit_freeze",
                            help="'body': everything but the output layer; 'all': nothing is trained; or layer names.")
    submitted = st.form_submit_button("Start fine-tuning", type="primary", icon=":material/model_training:")
if submitted:
    try:
        data = run.data.replace(classes=tuple(int(c) for c in classes), per_class=int(per_class))
        train = run.train.replace(init_from=run.id, freeze=tuple(freeze), epochs=int(t_epochs))
        new_id = dlcore.start_run(data, run.model, train, name=f"{run.name} → fine-tune")
    except START_ERRORS as e:
        ui.user_error(e)
    else:
        st.success(f"Started **{ui.text(run.name)} → fine-tune** ({ui.text(new_id)}).", icon=":material/check_circle:")
        if st.button("Watch it on the Train page", key="overfit_watch", icon=":material/monitoring:"):
            ui.open_run(new_id)
