"""Class: the teacher's view — every run by student, the class's results (best test accuracy per student
and task) and moderation (hide a run from the class, or delete it). Listed in the navigation only for the
identities in DLE_TEACHERS, and refused to anyone else who reaches it."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import identity, ui

st.title("Class")
me = identity.viewer()
if not me.teacher:
    st.error("This page is for teachers: the identities listed in DLE_TEACHERS (docs/security.md).",
             icon=":material/block:")
    st.stop()

runs = ui.runs()  # a teacher's viewer: every run, hidden ones included
owners = sorted({r.owner for r in runs})
students = sum(1 for o in owners if o)
st.caption(f"{len(runs)} run{'s' if len(runs) != 1 else ''} by {students} student{'s' if students != 1 else ''}. "
           f"You are **{ui.text(identity.name())}** (teacher).")


def whom(owner: str) -> str:
    return owner or "the class (no owner)"


st.subheader("Results", divider="gray")
rows = dlcore.class_results(me)
if rows:
    table = pd.DataFrame([{"student": whom(r["owner"]), "dataset": ui.dataset_title(r["dataset"]),
                           "best test accuracy": r["best_test_accuracy"], "runs": r["runs"], "best run": r["best_run"]}
                          for r in rows])
    st.dataframe(table, hide_index=True, width="stretch",  # a table shows text as it is
                 column_config={"best test accuracy": st.column_config.NumberColumn(format="percent")})
    names = {r["owner"]: ui.text(whom(r["owner"]), "figure") for r in rows} | \
        {r["dataset"]: ui.text(ui.dataset_title(r["dataset"]), "figure") for r in rows}
    if any(r["best_test_accuracy"] is not None for r in rows):
        ui.show_figure(viz.class_results_figure(rows, labels=names), key="class_results_fig",
                       filename="class-results")
    else:
        st.caption("No completed run reports a test accuracy yet.")
else:
    st.info("No runs yet: the students' runs appear here as they start them.", icon=":material/info:")
    st.stop()

st.subheader("Every run, by student", divider="gray")
for owner in owners:
    theirs = [r for r in runs if r.owner == owner]
    with st.expander(f"{ui.text(whom(owner))} · {len(theirs)} run{'s' if len(theirs) != 1 else ''}",
                     icon=":material/person:"):
        st.dataframe(pd.DataFrame([{"status": r.status, "name": r.name, "data": ui.dataset_title(r.data.name),
                                    "test": r.summary.get(f"test_{ui.dataset_metric(r)}") if r.summary else None,
                                    "shared": r.shared, "hidden": r.hidden, "started": ui.since(r.created),
                                    "id": r.id} for r in theirs]),
                     hide_index=True, width="stretch")

st.subheader("Moderate one run", divider="gray")
by_id = {r.id: r for r in runs}
run_id = st.selectbox("Run", list(by_id), key="class_run",
                      format_func=lambda i: ui.text(f"{whom(by_id[i].owner)} · {by_id[i].name} · {i}", "plain"))
run = by_id[run_id]
c1, c2, c3 = st.columns(3, vertical_alignment="center")
hidden = c1.toggle("Hidden from the class", value=run.hidden, key=f"class_hide_{run.id}",
                   help="A hidden run is listed and opened by teachers only, its owner included.")
if hidden != run.hidden:
    try:
        dlcore.hide_run(run.id, hidden, viewer=me)
    except dlcore.USER_ERRORS as e:
        ui.user_error(e)
    else:
        st.rerun()
c2.page_link(ui.PAGE_FILES["train"], label="Open in Train", icon=":material/monitoring:", query_params={"run": run.id})
with c3.popover("Delete", icon=":material/delete:", disabled=run.status in ui.ACTIVE,
                help="Cancel a run before deleting it." if run.status in ui.ACTIVE else None):
    st.warning(f"Delete **{ui.text(run.name)}** of {ui.text(whom(run.owner))}, its curves and its checkpoint? "
               "This cannot be undone.")
    if st.button("Delete for good", type="primary", key="class_delete"):
        try:
            dlcore.delete_run(run.id, viewer=me)
        except dlcore.USER_ERRORS as e:
            ui.user_error(e)
        else:
            st.session_state.pop("class_run", None)
            st.rerun()
