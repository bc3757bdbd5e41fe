"""Data: every dataset in the registry — what it is, examples, class balance, sizes and shapes — and
uploads of your own images, tables and texts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import identity, ui


N_SAMPLES = 32


def sample_indices(n: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(st.session_state.get("data_seed", 0))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def class_names(info) -> list[str]:
    """Class names as figure text (an upload's folder or label names are the user's)."""
    return [ui.text(n, "figure") for n in info.class_names] or [str(i) for i in range(info.num_outputs)]


def show_overview(ds) -> None:
    info = ds.info
    st.subheader(ui.text(info.title), divider="gray")
    st.markdown(ui.text(info.description) + (f" — source: {ui.text(info.source)}" if info.source else ""))
    sizes = ds.sizes()
    outputs = {"forecasting": "steps ahead", "char-lm": "characters", "seq2seq": "tokens per step"}.get(info.task,
                                                                                                    "classes")
    facts = [("Task", f"{info.task.replace('-', ' ')} — {dlcore.TASKS.get(info.task, '')}"),
             ("One example", f"{info.input_kind}, shape {viz.architecture.shape_text(info.input_shape)}"),
             ("Outputs", f"{info.num_outputs} {outputs}"),
             ("Examples", " · ".join(f"{k} {v:,}" for k, v in sizes.items())),
             ("Metric", info.metric.replace("_", " "))]
    cols = st.columns([3, 2, 1.4, 2.6, 1.4])
    for col, (k, v) in zip(cols, facts):
        col.markdown(f"**{k}**  \n{v}")
    rows = [{"split": r["split"], "examples": r["examples"],
             "input shape": viz.architecture.shape_text(r["input_shape"]), "input type": r["input_type"],
             "target shape": viz.architecture.shape_text(r["target_shape"]), "target type": r["target_type"]}
            for r in ds.split_shapes()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if info.class_names and len(info.class_names) <= 50:
        st.caption("Classes: " + ui.text(", ".join(info.class_names)))


def show_samples(ds) -> None:
    info = ds.info
    n_train = ins.split_size(ds, "train")
    idx = sample_indices(n_train, N_SAMPLES if info.input_kind == "image" else 8)
    xs, ys = ins.example_batch(ds, idx, split="train")
    names = class_names(info)
    head, btn = st.columns([4, 1], vertical_alignment="bottom")
    head.markdown("#### Examples from the training set")
    if btn.button("Other examples", icon=":material/shuffle:", key="data_shuffle"):
        st.session_state["data_seed"] = st.session_state.get("data_seed", 0) + 1
        st.rerun()
    if info.input_kind == "image":
        fig = viz.image_grid(xs, [names[int(v)] for v in ys], cols=8,
                             title=ui.text(f"{info.title}: {len(idx)} examples", "figure"))
        ui.show_figure(fig, key="data_grid", filename=f"samples-{info.name}")
    elif info.task == "forecasting":
        if info.series:
            ui.show_figure(viz.series_plot(info.series, test_start=info.test_start,
                                           title=ui.text(f"{info.title}: the whole series", "figure")),
                           key="data_series", filename=f"series-{info.name}")
        fig = viz.sequence_lines(xs[:6], [f"window {int(i)}" for i in idx[:6]], targets=ys[:6], cols=3,
                                 title="Input windows (standardised) and the values to predict")
        ui.show_figure(fig, key="data_windows", filename=f"windows-{info.name}")
    elif info.input_kind == "sequence":
        if xs.shape[-1] > 6:  # many features per step (MNIST rows): a heat map reads better than lines
            fig = viz.image_grid(xs, [names[int(v)] for v in ys], cols=8,
                                 title="Each example is read top to bottom, one row (time step) at a time")
        else:
            fig = viz.sequence_lines(xs, [names[int(v)] for v in ys], title="Example sequences")
        ui.show_figure(fig, key="data_seq", filename=f"sequences-{info.name}")
    elif info.input_kind == "tokens":
        table = {"input": [viz.decode_tokens(r, info.vocab) for r in xs]}  # a table shows text as it is
        if info.per_step:
            table["target"] = [viz.decode_tokens(r, info.vocab) for r in ys]
        else:
            table["label"] = [info.class_names[int(v)] if int(v) < len(info.class_names) else str(int(v)) for v in ys]
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
        st.caption(f"Vocabulary of {len(info.vocab)} tokens: "
                   + ui.text(" ".join(repr(v)[1:-1] for v in info.vocab[:80])) + (" …" if len(info.vocab) > 80 else ""))
    elif info.input_kind == "tabular":
        feats = list(info.features) or [f"f{j}" for j in range(xs.shape[1])]
        df = pd.DataFrame(xs, columns=feats[: xs.shape[1]])  # CSV headers: plain text in a table
        df.insert(0, "label", [info.class_names[int(v)] if int(v) < len(info.class_names) else str(int(v)) for v in ys])
        st.dataframe(df, hide_index=True, width="stretch")
        x_all, _ = ins.example_batch(ds, np.arange(n_train), split="train")
        ui.show_figure(viz.feature_ranges(x_all, [ui.text(f, "figure") for f in feats],
                                          title="Feature spread (standardised)"),
                       key="data_features", filename=f"features-{info.name}")


def show_balance(ds) -> None:
    info = ds.info
    if info.loss != "ce" or info.task == "char-lm":
        return
    names = class_names(info)
    counts = ds.class_counts(len(names))
    what = "tokens per class" if info.per_step else "examples per class"
    ui.show_figure(viz.class_balance(counts, names, title=f"Class balance: {what}"), key="data_balance",
                   filename=f"balance-{info.name}")


UPLOADS = {
    "images": ("Images (zip)", ["zip"], "A zip of folders, one per class: `cat/1.png`, `dog/7.jpg` …"),
    "table": ("Table (CSV)", ["csv"], "Numeric feature columns and a label column (named `label`, or the last)."),
    "texts": ("Labelled texts (CSV)", ["csv"], "Two columns named `text` and `label`."),
    "corpus": ("Plain text", ["txt", "md", "py", "csv"], "Any UTF-8 text, for a character-level language model."),
}


def upload_form(kind: str) -> None:
    title, types, hint = UPLOADS[kind]
    with st.form(f"data_up_{kind}", clear_on_submit=True):
        st.caption(hint)
        file = st.file_uploader(title, type=types, key=f"data_file_{kind}")
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", key=f"data_upname_{kind}", placeholder="my data")
        extra = None
        if kind == "images":
            extra = c2.number_input("Resize images to (px)", 8, 128, 28, step=4, key="data_imgsize")
        elif kind == "table":
            extra = c2.text_input("Label column (optional)", key="data_labelcol")
        elif kind == "corpus":
            extra = c2.number_input("Context length (characters)", 8, 512, 64, step=8, key="data_window")
        go = st.form_submit_button("Import", icon=":material/upload:")
    if not go:
        return
    if file is None:
        st.error("Choose a file first.", icon=":material/error:")
        return
    data, name = file.getvalue(), (name or file.name.rsplit(".", 1)[0])
    owner = identity.viewer().identity  # the upload is this person's (listed for them, and shared if they say so)
    try:
        with st.spinner("Checking and converting the file…"):
            if kind == "images":
                info = dlcore.import_image_zip(data, name=name, image_size=int(extra), owner=owner)
            elif kind == "table":
                info = dlcore.import_table_csv(data, name=name, label_column=(extra or "").strip() or None,
                                               owner=owner)
            elif kind == "texts":
                info = dlcore.import_text_csv(data, name=name, owner=owner)
            else:
                info = dlcore.import_text_corpus(data, name=name, window=int(extra), owner=owner)
    except dlcore.DataError as e:
        ui.user_error(e)
        return
    st.session_state["data_pending"] = info.name
    st.session_state["data_imported"] = info.description
    st.rerun()


st.title("Data")
me = identity.viewer()
names = dlcore.dataset_names(me)  # built-in sets, this person's uploads and the shared ones
if pending := st.session_state.pop("data_pending", None):
    st.session_state["data_name"] = pending
if msg := st.session_state.pop("data_imported", None):
    st.success(f"Imported: {ui.text(msg)}. It is selected below and can be trained on like any other dataset: "
               "choose it on the **Build** or **Train** page.", icon=":material/check_circle:")
if st.session_state.get("data_name") not in names:
    st.session_state["data_name"] = "mnist5k"
st.selectbox("Dataset", names, key="data_name", format_func=ui.dataset_labels(names).get)

try:
    ds = ui.dataset(st.session_state["data_name"])
except dlcore.DataError as e:
    ui.user_error(e)
    ds = None
if ds is not None:
    show_overview(ds)
    show_samples(ds)
    show_balance(ds)

st.subheader("Add your own data", divider="gray")
tabs = st.tabs([UPLOADS[k][0] for k in UPLOADS])
for tab, kind in zip(tabs, UPLOADS):
    with tab:
        upload_form(kind)

uploaded = dlcore.list_user(me)
if uploaded:
    with st.expander(f"Uploaded datasets ({len(uploaded)})", icon=":material/folder:"):
        for info in uploaded:
            owner, shared = dlcore.dataset_access(info.name)
            mine = me.teacher or (owner and owner == me.identity)
            c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
            whose = "yours" if owner and owner == me.identity else (owner or "the class")
            c1.markdown(f"**{ui.text(info.title)}** — {ui.text(info.description)} · "
                        f"{ui.text(whose)}{' · shared' if shared else ''}")
            if not mine:
                continue
            if c2.toggle("Shared", value=shared, key=f"data_share_{info.name}",
                         help="Everyone in the class can then train on it (not delete it).") != shared:
                dlcore.share_user(info.name, not shared, viewer=me)
                st.rerun()
            if c3.button("Delete", key=f"data_del_{info.name}", icon=":material/delete:"):
                try:
                    dlcore.delete_user(info.name, viewer=me)
                except dlcore.USER_ERRORS as e:
                    ui.user_error(e)
                else:
                    st.rerun()
