"""Deep Learning Explorer — the entry point: page set-up, navigation and the shared sidebar.

Run with ``streamlit run app.py``. Pages live in ``app_pages/``, one subfolder per navigation section
(``explore/``, ``look_inside/``). The folder is not called ``pages/``: Streamlit treats an app with a
``pages/`` folder as a legacy multipage app until a session has called ``st.navigation``, so the first
visitors after a restart would get a file-name menu, or on a deep link a "Page not found" dialog.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="Deep Learning Explorer", page_icon=":material/neurology:", layout="wide",
                   initial_sidebar_state="expanded")

import dlcore  # noqa: E402  (after set_page_config, so the first paint is not blank while torch imports)
from app_pages.common import identity, ui  # noqa: E402

dlcore.configure_threads("server")  # this process's share of the cores (the rule is in dlcore/config.py)

ROOT = Path(__file__).resolve().parent

sections = {
    "Explorer": [
        st.Page(ui.PAGE_FILES["home"], title="Home", icon=":material/home:", default=True),
        st.Page(ui.PAGE_FILES["data"], title="Data", icon=":material/dataset:"),
        st.Page(ui.PAGE_FILES["build"], title="Build", icon=":material/construction:"),
        st.Page(ui.PAGE_FILES["train"], title="Train", icon=":material/model_training:"),
        st.Page(ui.PAGE_FILES["runs"], title="Runs", icon=":material/table_chart:"),
    ],
    "Learn": [st.Page(ui.PAGE_FILES["lessons"], title="Lessons", icon=":material/menu_book:")],
    "Look inside": [
        st.Page(ui.PAGE_FILES["filters"], title="Filters & feature maps", icon=":material/filter_center_focus:"),
        st.Page(ui.PAGE_FILES["attention"], title="Attention", icon=":material/visibility:"),
        st.Page(ui.PAGE_FILES["language"], title="Language", icon=":material/translate:"),
        st.Page(ui.PAGE_FILES["explain"], title="Explanations", icon=":material/lightbulb:"),
        st.Page(ui.PAGE_FILES["internals"], title="Internals", icon=":material/account_tree:"),
    ],
    "Advanced": [st.Page(ui.PAGE_FILES["compress"], title="Compress", icon=":material/compress:"),
                 st.Page(ui.PAGE_FILES["overfitting"], title="Overfitting & transfer", icon=":material/trending_up:")],
}
if identity.viewer().teacher:  # the class view: only for the identities in DLE_TEACHERS (not every visitor's nav)
    sections["Teacher"] = [st.Page(identity.CLASS_PAGE, title=identity.CLASS_TITLE, icon=":material/school:")]
page = st.navigation(sections, expanded=True)  # every page listed: no "View 3 more"
ui.warm_up()  # once per server: the quick start's dataset and a pre-imported training worker
ui.install_starters()  # once per server: the shipped starter runs, something to look inside at once


@ui.guarded  # an unexpected error: its message in the sidebar, the traceback only in the server log
def sidebar() -> None:
    with st.sidebar:
        # bound to the URL (?present=true): a reload or a shared link keeps presentation mode
        st.toggle("Presentation mode", key=ui.PRESENT, bind="query-params",
                  help="Large type, large figures and no Streamlit chrome: for a projector in a classroom.")
        identity.sidebar()  # who this is (runs and uploads are kept per person) and how to change it
        st.caption(f":material/memory: **Device** · {ui.device_text(ui.device())}")
        active = ui.runs(ui.ACTIVE)

        @st.fragment(run_every=2 if active else None)
        @ui.guarded
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
                st.progress(min(max(run.progress, 0.0), 1.0), text=f"{ui.text(run.name)} · {text}")
                st.page_link(ui.PAGE_FILES["train"], label="Watch", icon=":material/monitoring:",
                             query_params={"run": run.id})

        runs_in_progress()


sidebar()

if ui.presenting():
    st.html(ROOT / "assets" / "presentation.css")

ui.guarded(page.run)()  # an unexpected error: its message on the page, the traceback only in the server log
