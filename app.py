"""Deep Learning Explorer — the entry point: page set-up, navigation and the shared sidebar.

Run with ``streamlit run app.py``. Pages live in ``pages/``; the "Look inside" section lists the
inspection pages that are installed (filters, attention, explain, internals).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="Deep Learning Explorer", page_icon=":material/neurology:", layout="wide",
                   initial_sidebar_state="expanded")

import dlcore  # noqa: E402  (after set_page_config, so the first paint is not blank while torch imports)
from pages import _common as ui  # noqa: E402

ROOT = Path(__file__).resolve().parent

workflow = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    st.Page("pages/build.py", title="Build", icon=":material/construction:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_chart:"),
]
inspect_pages = [("filters", "Filters & feature maps", ":material/filter_center_focus:"),
                 ("attention", "Attention", ":material/visibility:"),
                 ("explain", "Explanations", ":material/lightbulb:"),
                 ("internals", "Internals", ":material/account_tree:")]
look_inside = [st.Page(f"pages/{name}.py", title=title, icon=icon)
               for name, title, icon in inspect_pages if (ROOT / "pages" / f"{name}.py").exists()]
sections = {"Explorer": workflow}
if look_inside:
    sections["Look inside"] = look_inside
page = st.navigation(sections)
ui.warm_up()

with st.sidebar:
    st.toggle("Presentation mode", key="app_present",
              help="Large type, large figures and no Streamlit chrome: for a projector in a classroom.")
    st.caption(f":material/memory: **Device** · {ui.device_text(ui.device())}")
    active = ui.runs(ui.ACTIVE)

    @st.fragment(run_every=2 if active else None)
    def runs_in_progress() -> None:
        now_active = ui.runs(ui.ACTIVE)
        if not now_active:
            st.caption("No runs in progress.")
            return
        st.markdown(f"**Runs in progress** ({len(now_active)})")
        for run in now_active:
            if run.status == "queued":
                pos = dlcore.queue_position(run.id)
                text = f"queued, #{pos} in line" if pos else "starting…"
            else:
                text = f"{run.progress:.0%}"
            st.progress(min(max(run.progress, 0.0), 1.0), text=f"{run.name} · {text}")
            st.page_link(ui.PAGE_FILES["train"], label="Watch", icon=":material/monitoring:",
                         query_params={"run": run.id})

    runs_in_progress()

if st.session_state.get("app_present"):
    st.html(ROOT / "assets" / "presentation.css")

page.run()
