"""Build: pick a family and a preset, tune the hyper-parameters, and see what the model costs — parameters,
FLOPs, memory, whether it fits this device — and what it looks like, before training it."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import ui

CUSTOM = "custom"
PREFIX = "build_f_"


def on_preset() -> None:
    """Load the chosen preset (or the family's defaults) into the form, with its intended dataset."""
    family, name = st.session_state["build_family"], st.session_state["build_preset"]
    if name in dlcore.PRESETS:
        config = dlcore.PRESETS[name].config
        st.session_state["build_data"] = dlcore.PRESETS[name].data
    else:
        config = dlcore.FAMILIES[family].config()
    st.session_state["build_model"] = dlcore.model_to_dict(config)
    st.session_state["build_reset"] = True
    st.session_state.pop("build_error", None)


def on_family() -> None:
    family = st.session_state["build_family"] or "cnn"
    st.session_state["build_family"] = family
    st.session_state["build_preset"] = dlcore.presets_of(family)[0]
    on_preset()


def apply_form(config, info, editable: list) -> None:
    try:
        values = ui.read_fields(editable, PREFIX)
        new = type(config).from_dict({**config.to_dict(), **values})
        dlcore.for_data(new, info)  # the data may rule it out (an image that shrinks to nothing)
    except dlcore.SpecError as e:
        st.session_state["build_error"] = (e.field, str(e))
        return
    st.session_state.pop("build_error", None)
    st.session_state["build_model"] = dlcore.model_to_dict(new)


if "build_family" not in st.session_state or "build_model" not in st.session_state:
    st.session_state["build_family"], st.session_state["build_preset"] = "cnn", "seed-cnn"
    on_preset()

st.title("Build")
c1, c2, c3 = st.columns([1, 1, 1]) if ui.presenting() else st.columns([3, 3, 2])
families = {f.name: f.label for f in dlcore.list_families()}
c1.segmented_control("Family", list(families), key="build_family", format_func=families.get, on_change=on_family)
family = st.session_state["build_family"]
options = dlcore.presets_of(family) + [CUSTOM]
if st.session_state.get("build_preset") not in options:
    st.session_state["build_preset"] = options[0]
c2.selectbox("Preset", options, key="build_preset", on_change=on_preset,
             format_func=lambda n: f"{n} (family defaults)" if n == CUSTOM else
             (f"{n} · tutorial" if n.startswith("seed-") else n))
names = dlcore.dataset_names()
if st.session_state.get("build_data") not in names:
    st.session_state["build_data"] = "mnist5k"
c3.selectbox("Dataset", names, key="build_data", format_func=ui.dataset_labels(names).get)
preset_name = st.session_state["build_preset"]
if preset_name in dlcore.PRESETS:
    p = dlcore.PRESETS[preset_name]
    st.caption(f"{p.description}. Meant for **{p.data}**"
               + (f"; recommended training: {', '.join(f'{k} {v}' for k, v in p.train.items())}." if p.train else "."))

config = dlcore.model_from_dict(st.session_state["build_model"])
try:
    info = ui.dataset(st.session_state["build_data"]).info
except dlcore.DataError as e:
    ui.user_error(e)
    st.stop()

fitted, fit_error = None, None
try:
    fitted = dlcore.for_data(config, info)
except dlcore.SpecError as e:
    fit_error = e

specs = dlcore.field_specs(type(config))
editable = [fs for fs in specs if not fs.from_data]
readonly = [fs for fs in specs if fs.from_data]
reset = st.session_state.pop("build_reset", False)
shown = (fitted or config).to_dict()

left, right = st.columns([1, 1] if ui.presenting() else [3, 2], gap="large")
with left:
    with st.form("build_form"):
        st.markdown("**Hyper-parameters**")
        n = 2 if ui.presenting() else 3
        grid = st.columns(n)
        for i, fs in enumerate(editable):
            with grid[i % n]:
                ui.field_widget(fs, PREFIX + fs.name, config.to_dict(), reset)
        st.markdown("**Training settings for the estimates**")
        t1, t2, _ = st.columns(3)
        if reset or "build_batch" not in st.session_state:
            st.session_state["build_batch"] = int(dlcore.PRESETS.get(preset_name, dlcore.PRESETS["seed-cnn"]).train.get(
                "batch_size", 32))
            st.session_state["build_epochs"] = 5
        t1.number_input("batch size", 1, 65_536, step=1, key="build_batch")
        t2.number_input("epochs", 1, 10_000, step=1, key="build_epochs")
        st.markdown(f"**Set from the data** ({info.name}, read-only)")
        ro = st.columns(n)
        for i, fs in enumerate(readonly):
            v = shown.get(fs.name)
            ro[i % n].text_input(fs.label, value=f"{v:.4g}" if isinstance(v, float) else str(v), disabled=True,
                                 help=fs.help or None, key=f"build_ro_{fs.name}_{info.name}_{v}")
        submitted = st.form_submit_button("Apply", type="primary", icon=":material/check:")
    if submitted:
        apply_form(config, info, editable)
        st.rerun()
    if err := st.session_state.get("build_error"):
        st.error(f"**{err[0]}**: {err[1]}", icon=":material/error:")

with right:
    if fit_error is not None:
        ui.user_error(fit_error)
        st.stop()
    summary = ui.summary(fitted, info)
    train = dlcore.TrainSpec(batch_size=int(st.session_state["build_batch"]),
                             epochs=int(st.session_state["build_epochs"]))
    report = dlcore.check_fit(config, info, train, ui.device())
    m1, m2 = st.columns(2)
    m1.metric("Parameters", f"{summary.params:,}", help=f"{summary.trainable:,} trainable")
    m2.metric("FLOPs per sample", viz.architecture.human(summary.flops_per_sample),
              help="Forward pass, a multiply-add counted as 2.")
    m3, m4 = st.columns(2)
    m3.metric("Training memory", ui.fmt_bytes(report.need_bytes),
              help=f"Weights, gradients, optimizer state and activations at batch {train.batch_size}; "
                   f"{ui.fmt_bytes(report.have_bytes)} usable on {report.device}.")
    m4.metric(f"Compute for {train.epochs} epoch(s)", ui.fmt_duration(report.est_seconds),
              help="A rough estimate from FLOPs and a nominal device speed.")
    if report.fits:
        st.success(report.message[:1].upper() + report.message[1:], icon=":material/check_circle:")
    else:
        tips = "".join(f"\n- {t}" for t in report.suggestions)
        st.warning(f"**This model will not fit {report.device}**: {report.message}. Try:{tips}",
                   icon=":material/warning:")
    if st.button("Train this model", icon=":material/model_training:", key="build_train", type="primary",
                 disabled=not report.fits):
        st.session_state["train_model"] = "__build__"
        st.session_state["train_data"] = st.session_state["build_data"]
        st.session_state["train_reset"] = True
        st.session_state["build_train_settings"] = {"batch_size": train.batch_size, "epochs": train.epochs}
        st.switch_page(ui.PAGE_FILES["train"])

tab1, tab2, tab3 = st.tabs(["Architecture", "Where the parameters are", "Layer table"])
with tab1:
    fig = viz.architecture_diagram(summary.layers, input_shape=info.input_shape,
                                   title=f"{preset_name if preset_name != CUSTOM else family} on {info.name}",
                                   per_row=4 if ui.presenting() else 7)  # fewer, wider boxes for large type
    ui.show_figure(fig, key="build_arch", filename=f"architecture-{preset_name}")
with tab2:
    ui.show_figure(viz.params_chart(summary.layers), key="build_params", filename=f"parameters-{preset_name}")
with tab3:
    table = pd.DataFrame([{"layer": lay["name"], "type": lay["type"],
                           "output shape": viz.architecture.shape_text(lay["output_shape"]),
                           "parameters": lay["params"]} for lay in summary.layers])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    st.caption(f"Total {summary.params:,} parameters; output shapes are per example (batch dimension left out).")
