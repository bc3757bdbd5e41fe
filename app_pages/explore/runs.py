"""Runs: every run in a table; compare runs' curves; for one run, its test results (confusion matrix,
per-class scores, the mistakes it makes) and its housekeeping (rename, delete, download the checkpoint)."""
from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import streamlit as st

import dlcore
from dlcore import evaluation, viz
from app_pages.common import identity, ui


STEP_LOSS = "loss (per step)"


def whose(run, me) -> str:
    """Whose a run is, as the Runs table says it: yours, the class's, or (shared, or to a teacher) its owner's."""
    if run.owner and run.owner == me.identity:
        return "yours · shared" if run.shared else "yours"
    owner = run.owner or "the class"
    return owner + (" · shared" if run.shared and run.owner else "") + (" · hidden" if run.hidden else "")


def runs_table(runs) -> pd.DataFrame:
    rows = []
    me = identity.viewer()
    for r in runs:
        metric = ui.dataset_metric(r) if r.summary else ""
        test = r.summary.get(f"test_{metric}") if metric else None
        rows.append({"status": r.status, "name": r.name,  # a table shows text as it is
                     "data": ui.dataset_title(r.data.name), "model": f"{dlcore.preset_of(r.model)} ({r.family})", "params": r.params,
                     "best val": f"{metric.replace('_', ' ')} {ui.fmt_metric(metric, ui.best_metric(r))}"
                     if ui.best_metric(r) is not None else "–",
                     "test": f"{ui.fmt_metric(metric, test)}" if test is not None else "–",
                     "epochs": f"{r.summary.get('epochs_done', '–')}/{r.train.epochs}",
                     "overfits": f"after epoch {r.summary['overfit_epoch']}" if r.summary.get("overfit_epoch")
                     else "–",
                     "duration": ui.fmt_duration(r.duration), "started": ui.since(r.created), "whose": whose(r, me),
                     "id": r.id})
    return pd.DataFrame(rows)


def spec_differences(runs) -> pd.DataFrame:
    """The settings in which the chosen runs differ (data-derived model fields left out)."""
    rows = {}
    for r in runs:
        skip = {fs.name for fs in dlcore.field_specs(type(r.model)) if fs.from_data}
        flat = {"data": ui.dataset_title(r.data.name), "family": r.family,
                **{f"model.{k}": v for k, v in r.model.to_dict().items() if k not in skip},
                **{f"train.{k}": v for k, v in r.train.to_dict().items()}}
        rows[f"{r.name} ({r.id[-6:]})"] = {k: str(v) for k, v in flat.items()}
    df = pd.DataFrame(rows)
    return df[df.nunique(axis=1) > 1]


def compare_section(runs) -> None:
    st.subheader("Compare runs", divider="gray")
    with_data = [r for r in runs if r.status != "queued"]
    if not with_data:
        st.caption("Runs appear here once they have started training.")
        return
    ids = [r.id for r in with_data]
    by_id = {r.id: r for r in with_data}
    done = [r for r in with_data if r.status == "completed"] or with_data
    anchor = by_id.get(ui.selected_run()) or done[0]  # the run in the URL, else the newest finished one
    default = [anchor.id] + [r.id for r in done if r.data.name == anchor.data.name and r.id != anchor.id][:2]
    st.session_state.setdefault("runs_compare", default)
    st.session_state["runs_compare"] = [i for i in st.session_state["runs_compare"] if i in ids]
    chosen = st.multiselect("Runs to compare", ids, key="runs_compare", format_func=lambda i: ui.run_label(by_id[i]))
    if not chosen:
        return
    store = dlcore.RunStore()
    epoch_rows = {i: ui.curve_rows(store.metrics(i, "epoch")) for i in chosen}
    columns = viz.comparable_columns(list(epoch_rows.values())) + [STEP_LOSS]
    col = st.selectbox("Curve", columns, key="runs_curve")
    labels = {i: ui.text(f"{by_id[i].name} ({i[-6:]})", "figure") for i in chosen}  # legend entries
    if col == STEP_LOSS:
        fig = viz.compare_curves({labels[i]: ui.curve_rows(store.metrics(i, "step"), by_id[i].train.log_every)
                                  for i in chosen}, "loss", x="epoch",
                                 title="Training loss per logged step")
    else:
        fig = viz.compare_curves({labels[i]: epoch_rows[i] for i in chosen}, col, x="epoch",
                                 title=col.replace("_", " ") + " per epoch")
    ui.show_figure(fig, key="runs_compare_fig", filename="compare-runs")
    if len(chosen) > 1:
        diff = spec_differences([by_id[i] for i in chosen])
        st.markdown("**Where they differ**" if not diff.empty else "**The chosen runs have identical settings.**")
        if not diff.empty:
            st.dataframe(diff, width="stretch")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "run"


# format -> (button label, file extension, MIME type, what it is for)
EXPORTS = {"onnx": ("ONNX (.onnx)", ".onnx", "application/octet-stream",
                    "For onnxruntime, ONNX-capable tools and other languages; a dynamic batch dimension."),
           "torchscript": ("TorchScript (.pt)", ".pt", "application/octet-stream",
                           "torch.jit.load(file)(x) gives the model's output, without this code."),
           "safetensors": ("Weights + spec (.zip)", ".zip", "application/zip",
                           "safetensors weights and the JSON spec that rebuilds the model with dlcore.")}


def export_bytes(run_id: str, fmt: str) -> bytes:
    """The download's data, made when its button is clicked (in a thread of its own: ONNX takes seconds)."""
    return dlcore.export_run_bytes(run_id, fmt)[0]


def onnx_missing() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript"))


def sharing(run, me) -> None:
    """Share one's own run with the class (everyone may open it, read-only), or say whose it is."""
    if not dlcore.can_access(run, me, "share"):
        st.caption(f":material/visibility: {ui.text(whose(run, me))}: you can open this run and fine-tune it into "
                   "a run of your own; only its owner (or a teacher) can rename, resume or delete it.")
        return
    shared = st.toggle("Share with the class", value=run.shared, key=f"runs_share_{run.id}",
                       help="Everyone in the class can then see and open this run (not change or delete it).")
    if shared != run.shared:
        try:
            dlcore.share_run(run.id, shared, viewer=me)
        except dlcore.USER_ERRORS as e:
            ui.user_error(e)
        else:
            st.rerun()


def housekeeping(run) -> None:
    me = identity.viewer()
    sharing(run, me)
    files = dlcore.checkpoint_files(run.id)
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    mine = dlcore.can_access(run, me, "rename")
    with c1.form("runs_rename_form", border=False):
        a, b = st.columns([3, 1], vertical_alignment="bottom")
        new_name = a.text_input("Name", value=run.name, key=f"runs_rename_{run.id}", max_chars=120, disabled=not mine)
        if b.form_submit_button("Rename", disabled=not mine):
            try:
                dlcore.rename_run(run.id, new_name, viewer=me)
            except (ValueError, *dlcore.USER_ERRORS) as e:
                ui.user_error(e)
            else:
                st.rerun()
    with c2:
        if files:
            weights, spec = files
            base = f"{slug(run.name)}-{run.id}"
            st.download_button("Weights (.safetensors)", data=weights.read_bytes, file_name=f"{base}.safetensors",
                               mime="application/octet-stream", key="runs_dl_weights", icon=":material/download:",
                               on_click="ignore", help=f"{ui.fmt_bytes(weights.stat().st_size)}; weights only, no code")
            st.download_button("Spec (checkpoint.json)", data=spec.read_text(), file_name=f"{base}.json",
                               mime="application/json", key="runs_dl_spec", icon=":material/download:",
                               on_click="ignore", help="The model, data and training specs that rebuild it")
            with st.popover("Export the model", icon=":material/ios_share:"):
                st.caption("The latest checkpoint as a file other programs read; made when you click "
                           "(ONNX takes a few seconds).")
                for fmt, (label, ext, mime, why) in EXPORTS.items():
                    missing = fmt == "onnx" and onnx_missing()
                    st.download_button(label, data=functools.partial(export_bytes, run.id, fmt), file_name=f"{base}{ext}",
                                       mime=mime, key=f"runs_export_{fmt}", icon=":material/download:",
                                       on_click="ignore", disabled=missing,
                                       help="Needs the onnx and onnxscript packages: pip install -r requirements.txt"
                                       if missing else why)
        else:
            st.caption("No checkpoint yet: one is written at the end of every epoch.")
    with c3:
        st.page_link(ui.PAGE_FILES["train"], label="Open in Train", icon=":material/monitoring:",
                     query_params={"run": run.id})
        may_delete = dlcore.can_access(run, me, "delete")
        with st.popover("Delete", icon=":material/delete:", disabled=run.status in ui.ACTIVE or not may_delete,
                        help="Cancel a run before deleting it." if run.status in ui.ACTIVE else
                        None if may_delete else "Only its owner or a teacher can delete this run."):
            st.warning(f"Delete **{ui.text(run.name)}**, its curves and its checkpoint? This cannot be undone.")
            if st.button("Delete for good", type="primary", key="runs_delete"):
                try:
                    dlcore.delete_run(run.id, viewer=me)
                except dlcore.USER_ERRORS as e:  # it started meanwhile, the disk is full, not theirs: say so
                    ui.user_error(e)
                else:
                    st.session_state.pop("runs_detail", None)
                    ui.select_run(None)
                    st.rerun()


def image_like(p) -> bool:
    x = p.x
    return p.info.input_kind == "image" or (p.info.input_kind == "sequence" and x.ndim == 3 and x.shape[-1] > 6)


def results(run) -> None:
    if run.status in ("queued",):
        st.caption("Results appear once the run has finished an epoch.")
        return
    try:
        p = ui.test_predictions(run.id)
    except dlcore.USER_ERRORS as e:
        ui.user_error(e)
        return
    info = p.info
    names = list(info.class_names) or list(info.vocab) or [str(i) for i in range(info.num_outputs)]
    fig_names = [ui.text(n, "figure") for n in names]  # class names are the user's in an upload
    note = " (latest checkpoint; the run is still training)" if run.status in ui.ACTIVE else ""
    if not p.is_classification:
        yt, yp = evaluation.denormalize(p.y_true, info), evaluation.denormalize(p.y_pred, info)
        st.metric("Test mean absolute error", f"{evaluation.forecast_mae(p):.4g}", help="In the series' own units")
        fig = viz.forecast_figure(yt, yp, title=f"Forecast one step ahead on the test span{note}")
        ui.show_figure(fig, key="runs_forecast", filename=f"forecast-{run.id}")
        return
    wrong = p.wrong()
    st.metric("Test accuracy" if not info.per_step else "Test token accuracy", f"{p.accuracy():.1%}",
              help=f"{int(wrong.sum()):,} of {len(wrong):,} test examples have a mistake{note}")
    tabs = st.tabs(["Confusion matrix", "Per class", "Mistakes"]) if info.task != "char-lm" else \
        [None, None, st.container()]
    cm = evaluation.confusion(p.y_true, p.y_pred, info.num_outputs)
    if tabs[0] is not None:
        with tabs[0]:
            what = "tokens" if info.per_step else "test examples"
            fig = viz.confusion_figure(cm, fig_names,
                                       title=f"Confusion matrix ({len(p.y_true.ravel()):,} {what}){note}")
            ui.show_figure(fig, key="runs_cm", filename=f"confusion-{run.id}")
        with tabs[1]:
            table = evaluation.per_class(cm, names)
            ui.show_figure(viz.per_class_figure(table.assign(**{"class": [ui.text(c, "figure") for c in table["class"]]}),
                                                "recall", title="Recall per class"), key="runs_perclass",
                           filename=f"recall-{run.id}")
            st.dataframe(table, hide_index=True, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="%.3f")
                                        for c in ("precision", "recall", "f1")})
    with tabs[2]:
        idx = evaluation.misclassified(p, limit=32)
        if idx.size == 0:
            st.success("No mistakes on the test set.")
        elif image_like(p) and not info.per_step:
            fig = viz.mistakes_gallery(p.x[idx], [fig_names[int(t)] for t in p.y_true[idx]],
                                       [fig_names[int(t)] for t in p.y_pred[idx]], p.confidence[idx],
                                       title=f"The {len(idx)} most confident mistakes (true → predicted)")
            ui.show_figure(fig, key="runs_gallery", filename=f"mistakes-{run.id}")
        elif info.input_kind == "tokens":
            rows = []
            for i in idx:
                row = {"input": viz.decode_tokens(p.x[i], info.vocab)}
                if info.per_step:
                    row.update({"target": viz.decode_tokens(p.y_true[i], info.vocab, pad=None),
                                "predicted": viz.decode_tokens(p.y_pred[i], info.vocab, pad=None),
                                "wrong tokens": int((p.y_true[i] != p.y_pred[i]).sum())})
                else:
                    row.update({"true": names[int(p.y_true[i])], "predicted": names[int(p.y_pred[i])],
                                "confidence": float(p.confidence[i])})
                rows.append(row)
            st.caption("The most confident mistakes first.")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        else:
            feats = list(info.features) or [f"x{j}" for j in range(int(np.prod(p.x.shape[1:])))]
            df = pd.DataFrame(p.x[idx].reshape(len(idx), -1), columns=feats[: int(np.prod(p.x.shape[1:]))])
            df.insert(0, "predicted", [names[int(t)] for t in p.y_pred[idx]])
            df.insert(0, "true", [names[int(t)] for t in p.y_true[idx]])
            st.dataframe(df, hide_index=True, width="stretch")


def detail_section(runs) -> None:
    st.subheader("One run in detail", divider="gray")
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    wanted = ui.selected_run()
    if wanted and wanted not in ids:
        st.warning(f"Run {ui.text(wanted)} was not found among the runs you can open: it does not exist, or it "
                   "belongs to someone else who has not shared it with the class.", icon=":material/block:")
    if st.session_state.get("runs_detail") not in ids:
        done = [r.id for r in runs if r.status == "completed"]
        st.session_state["runs_detail"] = wanted if wanted in ids else (done or ids)[0]
    run_id = st.selectbox("Run", ids, key="runs_detail", format_func=lambda i: ui.run_label(by_id[i]),
                          on_change=lambda: ui.select_run(st.session_state["runs_detail"]))
    run = by_id[run_id]
    st.markdown(f"{ui.STATUS_ICONS.get(run.status, '')} **Status: {run.status}** · {run.family} on "
                f"{ui.text(ui.dataset_title(run.data.name))} · "
                f"{run.params or 0:,} parameters · {run.device or 'no device yet'} · "
                f"trained {ui.fmt_duration(run.duration)} · started {ui.since(run.created)}")
    if run.error and run.status != "completed":
        (st.error if run.status == "failed" else st.warning)(ui.message(run.error))
    if run.summary.get("overfit_epoch"):
        st.warning(f"This run overfits after epoch {run.summary['overfit_epoch']}: its validation loss rose while "
                   "the training loss kept falling.", icon=":material/trending_up:")
        st.page_link(ui.PAGE_FILES["overfitting"], label="See the curves and try a remedy",
                     icon=":material/healing:", query_params={"run": run.id})
    housekeeping(run)
    results(run)


st.title("Runs")
all_runs = ui.runs()  # this person's runs and the class's shared ones (a teacher: everyone's)
if not all_runs:
    if ui.selected_run():
        st.warning(f"Run {ui.text(ui.selected_run())} was not found among the runs you can open: it does not exist, "
                   "or it belongs to someone else who has not shared it with the class.", icon=":material/block:")
    st.info("No runs yet. Use the quick start on the Home page or start one on the Train page.",
            icon=":material/info:")
    st.page_link(ui.PAGE_FILES["home"], label="Home: quick start", icon=":material/home:")
    st.stop()

n_active = sum(r.status in ui.ACTIVE for r in all_runs)
st.caption(f"{len(all_runs)} run{'s' if len(all_runs) != 1 else ''}" + (f", {n_active} in progress" if n_active else "")
           + ". Newest first.")
st.dataframe(runs_table(all_runs), hide_index=True, width="stretch",
             column_config={"params": st.column_config.NumberColumn("params", format="localized"),
                            "id": st.column_config.TextColumn("id", width="small")})
compare_section(all_runs)
detail_section(all_runs)
