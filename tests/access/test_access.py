"""Workspaces through the API: two students neither list, open, change nor delete each other's runs or
uploads; a shared run is visible to both (read-only to the other); a teacher sees and moderates all; a
hidden run is hidden from everyone but teachers; refusals are typed and name no one else's run."""
from __future__ import annotations

import sqlite3

import pytest

import dlcore
from dlcore import AccessDenied, DataSpec, RunStore, TrainSpec, Viewer, get_preset
from dlcore.access import can, check, class_results, teachers

MODEL = get_preset("rnn-tiny")
ADA, BEN, TEACHER = Viewer("ada"), Viewer("ben"), Viewer("mrs-t", teacher=True)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def _run(store, owner, name, status="completed", summary=None, data="digits", **kw):
    rid = store.create(DataSpec(name=data), MODEL, TrainSpec(), name=name, owner=owner, **kw)
    store.update(rid, status=status, summary=summary or {})
    return rid


def ids(runs):
    return {r.id for r in runs}


def test_neither_student_lists_or_opens_the_others_runs(store):
    a, b = _run(store, "ada", "ada's secret"), _run(store, "ben", "ben's secret")
    assert ids(store.list(viewer=ADA)) == {a} and ids(store.list(viewer=BEN)) == {b}
    assert ids(dlcore.list_runs(store, viewer=ADA)) == {a}
    assert ids(dlcore.list_runs(store)) == {a, b}  # no viewer: the CLI and scripts see everything, as before
    assert dlcore.get_run(a, store, viewer=ADA).name == "ada's secret"
    with pytest.raises(AccessDenied) as e:
        dlcore.get_run(a, store, viewer=BEN)
    assert a in str(e.value) and "ada's secret" not in str(e.value) and "not shared" in str(e.value)
    assert e.value.run_id == a and e.value.action == "view"


@pytest.mark.parametrize("action", ["delete", "rename", "resume", "cancel", "share"])
def test_neither_student_changes_the_others_runs(store, action):
    a = _run(store, "ada", "ada's run", status="cancelled")
    calls = {"delete": lambda v: dlcore.delete_run(a, store, viewer=v),
             "rename": lambda v: dlcore.rename_run(a, "mine now", store, viewer=v),
             "resume": lambda v: dlcore.resume_run(a, store, viewer=v),
             "cancel": lambda v: dlcore.cancel_run(a, store, viewer=v),
             "share": lambda v: dlcore.share_run(a, True, store, viewer=v)}
    before = store.get(a)
    with pytest.raises(AccessDenied) as e:
        calls[action](BEN)
    assert e.value.action == action and "ada's run" not in str(e.value)
    after = store.get(a)  # nothing changed
    assert (after.name, after.status, after.shared, after.cancel_requested) == \
        (before.name, before.status, before.shared, before.cancel_requested)


def test_the_owner_renames_shares_and_deletes_their_own(store):
    a = _run(store, "ada", "old")
    dlcore.rename_run(a, "new", store, viewer=ADA)
    dlcore.share_run(a, True, store, viewer=ADA)
    assert store.get(a).name == "new" and store.get(a).shared
    dlcore.delete_run(a, store, viewer=ADA)
    assert store.list() == []


def test_a_shared_run_is_visible_to_both_and_read_only_to_the_other(store):
    a, b = _run(store, "ada", "ada's"), _run(store, "ben", "ben's")
    store.set_shared(a, True)
    assert ids(store.list(viewer=ADA)) == {a} and ids(store.list(viewer=BEN)) == {a, b}
    assert dlcore.get_run(a, store, viewer=BEN).id == a
    assert can(store.get(a), BEN, "view") and not can(store.get(a), BEN, "delete")
    with pytest.raises(AccessDenied, match="shared it to look at"):
        dlcore.delete_run(a, store, viewer=BEN)
    dlcore.share_run(a, False, store, viewer=ADA)  # taken back
    assert ids(store.list(viewer=BEN)) == {b}


def test_class_wide_runs_are_visible_to_all_and_changed_by_teachers_only(store):
    c = _run(store, "", "starter CNN")
    assert c in ids(store.list(viewer=ADA)) and c in ids(store.list(viewer=BEN))
    with pytest.raises(AccessDenied, match="belongs to the whole class"):
        dlcore.delete_run(c, store, viewer=ADA)
    dlcore.rename_run(c, "starter", store, viewer=TEACHER)
    assert store.get(c).name == "starter"


def test_the_teacher_sees_both_and_hides_or_deletes_anything(store):
    a, b = _run(store, "ada", "ada's"), _run(store, "ben", "ben's")
    assert ids(store.list(viewer=TEACHER)) == {a, b}
    with pytest.raises(AccessDenied, match="only a teacher can hide"):
        dlcore.hide_run(a, True, store, viewer=ADA)  # not even one's own
    dlcore.hide_run(a, True, store, viewer=TEACHER)
    assert store.get(a).hidden
    assert ids(store.list(viewer=ADA)) == set() and ids(store.list(viewer=TEACHER)) == {a, b}
    with pytest.raises(AccessDenied, match="hidden by a teacher"):
        dlcore.get_run(a, store, viewer=ADA)
    dlcore.delete_run(b, store, viewer=TEACHER)
    assert ids(store.list()) == {a}


def test_a_hidden_shared_run_is_hidden_from_everyone_but_teachers(store):
    a = _run(store, "ada", "ada's", shared=True)
    assert store.get(a).shared and ids(store.list(viewer=BEN)) == {a}
    store.set_hidden(a, True)
    assert ids(store.list(viewer=BEN)) == set() and ids(store.list(viewer=ADA)) == set()
    store.set_hidden(a, False)
    assert ids(store.list(viewer=BEN)) == {a}


def test_access_denied_is_a_typed_user_error(store):
    a = _run(store, "ada", "x")
    with pytest.raises(PermissionError):
        check(store.get(a), BEN, "rename")
    assert issubclass(AccessDenied, dlcore.USER_ERRORS)
    with pytest.raises(ValueError, match="action must be one of"):
        check(store.get(a), BEN, "steal")
    check(store.get(a), None, "delete")  # no viewer: no check (the CLI, the library)


def test_teachers_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DLE_TEACHERS", " Mrs.T@School.org , mr-b,, ")
    assert teachers() == {"mrs.t@school.org", "mr-b"}
    assert Viewer.of("mrs.t@school.org").teacher and Viewer.of("MR-B").teacher
    assert not Viewer.of("ada").teacher and not Viewer.of("").teacher
    monkeypatch.delenv("DLE_TEACHERS")
    assert teachers() == frozenset() and not Viewer.of("mr-b").teacher


def test_class_results_best_test_accuracy_per_student_and_task(store):
    _run(store, "ada", "a1", summary={"test_accuracy": 0.81})
    best = _run(store, "ada", "a2", summary={"test_accuracy": 0.93})
    _run(store, "ada", "a3", status="failed", summary={"test_accuracy": 0.99})  # not finished: not counted
    _run(store, "ben", "b1", data="reverse", summary={"test_token_accuracy": 0.5})
    _run(store, "ben", "b2", status="queued")
    rows = class_results(TEACHER, store)
    assert rows == [{"owner": "ada", "dataset": "digits", "best_test_accuracy": 0.93, "best_run": best, "runs": 3},
                    {"owner": "ben", "dataset": "digits", "best_test_accuracy": None, "best_run": "", "runs": 1},
                    {"owner": "ben", "dataset": "reverse", "best_test_accuracy": 0.5, "best_run": rows[2]["best_run"],
                     "runs": 1}]
    with pytest.raises(AccessDenied, match="only a teacher"):
        class_results(ADA, store)
    fig = dlcore.viz.class_results_figure(rows)
    assert [t.name for t in fig.data] == ["digits", "reverse"] and list(fig.data[0].y) == [0.93]


def test_an_old_store_gains_the_columns_and_its_runs_stay_class_wide(tmp_path):
    store = RunStore(tmp_path)
    rid = _run(store, "", "old run")
    with sqlite3.connect(tmp_path / "store.db") as con:  # as a store written before workspaces
        con.execute("ALTER TABLE runs DROP COLUMN shared")
        con.execute("ALTER TABLE runs DROP COLUMN hidden")
    store = RunStore(tmp_path)
    run = store.get(rid)
    assert (run.shared, run.hidden) == (False, False) and ids(store.list(viewer=ADA)) == {rid}
    store.set_shared(rid, True)
    assert store.get(rid).shared
    with pytest.raises(dlcore.RunNotFound):
        store.set_hidden("20000101-000000-nosuch", True)


def test_uploads_belong_to_their_owner_and_shared_ones_to_all(fresh_dir):
    csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{'xy'[i % 2]}\n".encode() for i in range(40))
    mine = dlcore.import_table_csv(csv, name="ada's table", owner="ada").name
    old = dlcore.import_table_csv(csv, name="class table").name  # no owner: the class's
    names = lambda v: {i.name for i in dlcore.list_user(v)}  # noqa: E731
    assert names(ADA) == {mine, old} and names(BEN) == {old} and names(TEACHER) == {mine, old}
    assert mine not in dlcore.dataset_names(BEN) and mine in dlcore.dataset_names(ADA)
    assert dlcore.dataset_access(mine) == ("ada", False)
    with pytest.raises(AccessDenied):
        dlcore.share_user(mine, True, viewer=BEN)
    with pytest.raises(AccessDenied):
        dlcore.delete_user(mine, viewer=BEN)
    dlcore.share_user(mine, True, viewer=ADA)
    assert names(BEN) == {mine, old} and dlcore.dataset_access(mine) == ("ada", True)
    with pytest.raises(AccessDenied):
        dlcore.delete_user(mine, viewer=BEN)  # shared to train on, not to delete
    with pytest.raises(AccessDenied):
        dlcore.delete_user(old, viewer=BEN)
    dlcore.delete_user(mine, viewer=ADA)
    dlcore.delete_user(old, viewer=TEACHER)
    assert dlcore.list_user() == []


def test_a_guest_who_types_a_name_keeps_what_they_made(fresh_dir):
    store = RunStore()
    guest, other = "guest-0a1b2c3d", "ben"
    mine, theirs = _run(store, guest, "guest's run"), _run(store, other, "ben's run")
    csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{'xy'[i % 2]}\n".encode() for i in range(40))
    upload = dlcore.import_table_csv(csv, name="guest table", owner=guest).name
    assert dlcore.is_guest(guest) and not dlcore.is_guest("ada") and not dlcore.is_guest("guest-ada")
    assert dlcore.adopt_guest(guest, "ada", store) == 1
    assert store.get(mine).owner == "ada" and store.get(theirs).owner == "ben"
    assert dlcore.dataset_access(upload) == ("ada", False)
    with pytest.raises(AccessDenied):
        dlcore.adopt_guest("ben", "ada", store)  # a named person's runs never move this way
    assert store.get(theirs).owner == "ben"
