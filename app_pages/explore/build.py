"""Build: pick a family and a preset, tune the hyper-parameters, and see what the model costs — parameters,
FLOPs, memory, whether it fits this device — and what it looks like, before training it."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import identity, ui

CUSTOM = "custom"
PREFIX = "build_f_"
TRAIN_BUILD = "__build__"  # the Train page's name for the model configured here


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
    st.session_state["build_preset"] = (dlcore.presets_of(family) or [CUSTOM])[0]  # a family may have no preset
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


def to_train_page(train) -> None:
    """Hand the model to the Train page: its start form open with this model, no older run watched."""
    st.session_state["build_train_settings"] = {"batch_size": train.batch_size, "epochs": train.epochs}
    ui.prepare_training(TRAIN_BUILD, st.session_state["build_data"])


if "build_family" not in st.session_state or "build_model" not in st.session_state:
    st.session_state["build_family"], st.session_state["build_preset"] = "cnn", "seed-cnn"
    on_preset()

st.title("Build")
c1, c2, c3 = st.columns([1, 1, 1]) if ui.presenting() else st.columns([3, 3, 2])
families = {f.name: f.label for f in dlcore.list_families()}
# persist_state: the model being built survives a visit to another page (widget state is dropped otherwise)
c1.segmented_control("Family", list(families), key="build_family", format_func=families.get, on_change=on_family,
                     persist_state="session")
family = st.session_state["build_family"]
options = dlcore.presets_of(family) + [CUSTOM]
if st.session_state.get("build_preset") not in options:
    st.session_state["build_preset"] = options[0]
c2.selectbox("Preset", options, key="build_preset", on_change=on_preset, persist_state="session",
             format_func=lambda n: f"{n} (family defaults)" if n == CUSTOM else
             (f"{n} · tutorial" if n.startswith("seed-") else n))
names = dlcore.dataset_names(identity.viewer())  # uploads: this person's and the shared ones
if st.session_state.get("build_data") not in names:
    st.session_state["build_data"] = "mnist5k"
c3.selectbox("Dataset", names, key="build_data", format_func=ui.dataset_labels(names).get, persist_state="session")
preset_name = st.session_state["build_preset"]
if preset_name in dlcore.PRESETS:
    p = dlcore.PRESETS[preset_name]
    st.caption(f"{p.description}. Meant for **{ui.text(ui.dataset_title(p.data))}**"
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
data_title = ui.dataset_title(info.name)

specs = dlcore.field_specs(type(config))
editable = [fs for fs in specs if not fs.from_data]
readonly = [fs for fs in specs if fs.from_data]
reset = st.session_state.pop("build_reset", False)
shown = (fitted or config).to_dict()

left, right = st.columns([1, 1] if ui.presenting() else [3, 2], gap="large")
if reset:
    st.session_state.pop("build_error", None)
error = st.session_state.get("build_error")  # (field, message) of the last Apply that was refused
shown_at_field = False
with left:
    with st.form("build_form"):
        st.markdown("**Hyper-parameters**")
        n = 2 if ui.presenting() else 3
        grid = st.columns(n)
        for i, fs in enumerate(editable):
            with grid[i % n]:
                known = error[1] if error and error[0].split("[")[0] == fs.name else None
                if ui.field_widget(fs, PREFIX + fs.name, config.to_dict(), reset, problem=known):
                    shown_at_field = True
        st.markdown("**Training settings for the estimates**")
        t1, t2, _ = st.columns(3)
        if reset or "build_batch" not in st.session_state:
            st.session_state["build_batch"] = int(dlcore.PRESETS.get(preset_name, dlcore.PRESETS["seed-cnn"]).train.get(
                "batch_size", 32))
            st.session_state["build_epochs"] = 5
        estimate_fields = {f.name: f for f in dlcore.field_specs(dlcore.TrainSpec) if f.name in ("batch_size", "epochs")}
        with t1:
            bad_batch = ui.field_widget(estimate_fields["batch_size"], "build_batch", {})
        with t2:
            bad_epochs = ui.field_widget(estimate_fields["epochs"], "build_epochs", {})
        st.markdown(f"**Set from the data** ({ui.text(data_title)}, read-only)")
        ro = st.columns(n)
        for i, fs in enumerate(readonly):
            v = shown.get(fs.name)
            ro[i % n].text_input(fs.label, value=f"{v:.4g}" if isinstance(v, float) else str(v), disabled=True,
                                 help=fs.help or None, key=f"build_ro_{fs.name}_{info.name}_{v}")
        submitted = st.form_submit_button("Apply", type="primary", icon=":material/check:")
    if submitted:
        apply_form(config, info, editable)
        st.rerun()
    if error and not shown_at_field:  # a rule across fields, or one the data sets
        st.error(f"**{ui.text(error[0])}**: {ui.text(error[1])}", icon=":material/error:")
    elif error:
        st.error("Not applied: fix the value marked above. The estimates are for the last model that was valid.",
                 icon=":material/error:")

with right:
    if fit_error is not None:
        ui.user_error(fit_error)
        st.stop()
    summary = ui.summary(fitted, info)
    last_good = st.session_state.setdefault("build_estimate_settings", {"batch_size": 32, "epochs": 5})
    if not bad_batch and not bad_epochs:  # an invalid entry keeps the last valid settings (and says so above)
        last_good.update(batch_size=int(st.session_state["build_batch"]), epochs=int(st.session_state["build_epochs"]))
    train = dlcore.TrainSpec(**last_good)
    report = dlcore.check_fit(config, info, train, ui.device())
    m1, m2 = st.columns(2)
    m1.metric("Parameters", f"{summary.params:,}", help=f"{summary.trainable:,} trainable")
    m2.metric("FLOPs per sample", viz.architecture.human(summary.flops_per_sample),
              help="Forward pass, a multiply-add counted as 2.")
    m3, m4 = st.columns(2)
    m3.metric("Training memory", ui.fmt_bytes(report.need_bytes),
              help=f"Weights, gradients, optimizer state and activations at batch {train.batch_size}; "
                   f"{ui.fmt_bytes(report.have_bytes)} usable on {report.device}.")
    m4.metric(f"Time for {train.epochs} epoch(s)", ui.fmt_duration(report.est_seconds),
              help=f"Estimated from the model's FLOPs and {report.speed.describe(report.device)}."
              if report.speed else "A rough estimate from FLOPs and a nominal device speed.")
    if report.fits:
        st.success(report.message[:1].upper() + report.message[1:], icon=":material/check_circle:")
    else:
        tips = "".join(f"\n- {t}" for t in report.suggestions)
        st.warning(f"**This model will not fit {report.device}**: {report.message}. Try:{tips}",
                   icon=":material/warning:")
    if st.button("Train this model", icon=":material/model_training:", key="build_train", type="primary",
                 disabled=not report.fits):
        to_train_page(train)

tab1, tab2, tab3 = st.tabs(["Architecture", "Where the parameters are", "Layer table"])
with tab1:
    fig = viz.architecture_diagram(summary.layers, input_shape=info.input_shape,
                                   title=ui.text(f"{preset_name if preset_name != CUSTOM else family} on {data_title}",
                                                 "figure"),
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
