"""Workspaces in the app (AppTest through app.py): two browser sessions with different names see only
their own runs and the shared ones; someone else's run in the URL is a clear message, not the run; the
Runs page shares one's own run and refuses changes to another's; a teacher gets the Class page; a login
through the identity provider is the identity; a typed name is kept in the URL across a reload."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import dlcore
from tests.app.conftest import APP
from app_pages.common.ui import PAGE_FILES

CLASS_PAGE = "app_pages/teacher/class_view.py"


def _session(who: str | None = None, page: str | None = None, run: str | None = None, user: dict | None = None):
    """A browser session: its URL carries the typed name (?who=) and the run (?run=), as after a reload."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    if who:
        at.query_params["who"] = who
    if run:
        at.query_params["run"] = run
    if user is not None:
        at.user = user
    at.run()
    if page:
        at.switch_page(PAGE_FILES.get(page, page)).run()
    return at


@pytest.fixture
def classroom(fresh_dir):
    """Ada's run, Ben's run and a class-wide (starter-like, shared) run, all finished."""
    store = dlcore.RunStore()
    made = {}
    for key, owner, shared in (("ada", "ada", False), ("ben", "ben", False), ("starter", "", True)):
        rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec(),
                           name=f"{key} private run" if owner else "starter run", owner=owner, shared=shared)
        store.update(rid, status="cancelled", error="cancelled before it started")
        made[key] = rid
    return made


def no_errors(at) -> None:
    """No exception and no error box but the Runs page's note that these checkpoint-less runs have no results."""
    assert not at.exception, [e.value for e in at.exception]
    assert all("no checkpoint" in e.value for e in at.error), [e.value for e in at.error]


def _listed(at) -> set[str]:
    return set(at.dataframe[0].value["id"])


def test_two_sessions_list_only_their_own_runs_and_the_shared_ones(classroom):
    ada, ben = _session("Ada", "runs"), _session("ben", "runs")
    no_errors(ada), no_errors(ben)
    assert _listed(ada) == {classroom["ada"], classroom["starter"]}
    assert _listed(ben) == {classroom["ben"], classroom["starter"]}
    assert "ada private run" not in str(ben.dataframe[0].value.to_dict())
    assert set(ada.dataframe[0].value["whose"]) == {"yours", "the class"}
    assert any("Runs of **Ada**" in c.value and "not security" in c.value for c in ada.sidebar.caption)


@pytest.mark.parametrize("page", ["train", "runs"])
def test_someone_elses_run_in_the_url_is_a_message_not_the_run(classroom, page):
    at = _session("ben", page, run=classroom["ada"])
    no_errors(at)
    assert any("was not found among the runs you can open" in w.value and "not shared" in w.value
               for w in at.warning)
    shown = " ".join(m.value for m in at.markdown) + str(at.dataframe[0].value.to_dict() if at.dataframe else "")
    assert "ada private run" not in shown
    key = "train_run" if page == "train" else "runs_detail"
    assert at.selectbox(key=key).value != classroom["ada"]


def test_share_with_the_class_then_the_other_sees_it_read_only(classroom):
    ada = _session("ada", "runs", run=classroom["ada"])
    assert ada.selectbox(key="runs_detail").value == classroom["ada"]
    ada.toggle(key=f"runs_share_{classroom['ada']}").set_value(True).run()
    no_errors(ada)
    assert dlcore.get_run(classroom["ada"]).shared
    ben = _session("ben", "runs", run=classroom["ada"])
    no_errors(ben)
    assert classroom["ada"] in _listed(ben) and ben.selectbox(key="runs_detail").value == classroom["ada"]
    assert ben.text_input(key=f"runs_rename_{classroom['ada']}").disabled  # read-only to Ben
    assert not [t for t in ben.toggle if t.key == f"runs_share_{classroom['ada']}"]
    assert any("only its owner" in c.value for c in ben.caption)
    assert dlcore.get_run(classroom["ada"]).name == "ada private run"


def test_the_owner_deletes_her_run_and_the_other_cannot_resume_it(classroom):
    ben = _session("ben", "train", run=classroom["ben"])
    assert [b for b in ben.button if b.key == "train_resume"]  # his own cancelled run: resumable
    dlcore.share_run(classroom["ada"], True)
    ben = _session("ben", "train", run=classroom["ada"])
    no_errors(ben)
    assert ben.selectbox(key="train_run").value == classroom["ada"]  # shared: he may watch it
    assert not [b for b in ben.button if b.key == "train_resume"]
    ada = _session("ada", "runs", run=classroom["ada"])
    ada.button(key="runs_delete").click().run()
    no_errors(ada)
    assert classroom["ada"] not in {r.id for r in dlcore.list_runs()}


def test_the_teacher_sees_every_run_and_the_class_page(classroom, monkeypatch):
    monkeypatch.setenv("DLE_TEACHERS", "mrs-t")
    store = dlcore.RunStore()
    store.update(classroom["ada"], status="completed", summary={"test_accuracy": 0.9})
    at = _session("Mrs-T", "runs")
    no_errors(at)
    assert _listed(at) == set(classroom.values())
    at.switch_page(CLASS_PAGE).run()
    no_errors(at)
    table = at.dataframe[0].value
    assert set(table["student"]) == {"ada", "ben", "the class (no owner)"}
    assert table[table["student"] == "ada"]["best test accuracy"].iloc[0] == 0.9
    assert any(c.proto.id.endswith("class_results_fig") for c in at.get("plotly_chart"))
    at.selectbox(key="class_run").set_value(classroom["ben"]).run()
    at.toggle(key=f"class_hide_{classroom['ben']}").set_value(True).run()
    no_errors(at)
    assert dlcore.get_run(classroom["ben"]).hidden
    ben = _session("ben", "runs")
    assert _listed(ben) == {classroom["starter"]}  # hidden from its owner too
    at.selectbox(key="class_run").set_value(classroom["ada"]).run()
    at.button(key="class_delete").click().run()
    no_errors(at)
    assert classroom["ada"] not in {r.id for r in dlcore.list_runs()}


def test_the_class_page_is_for_teachers_only(classroom, monkeypatch):
    monkeypatch.setenv("DLE_TEACHERS", "mrs-t")
    teacher = _session("mrs-t", CLASS_PAGE)
    assert [t.value for t in teacher.title] == ["Class"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        _session("ben", CLASS_PAGE)  # not in a student's navigation
    # reaching the file anyway (a guessed URL): refused, nothing listed
    page = AppTest.from_file(str(APP.parent / CLASS_PAGE), default_timeout=60)
    page.query_params["who"] = "ben"
    page.run()
    assert "for teachers" in page.error[0].value and not page.dataframe


def test_a_provider_login_is_the_identity(classroom):
    dlcore.RunStore().update(classroom["ada"], status="cancelled")
    store = dlcore.RunStore()
    mine = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec(),
                        name="oidc run", owner="ada@school.org")
    store.update(mine, status="cancelled")
    at = _session("ben", "runs", user={"is_logged_in": True, "email": "Ada@School.org", "name": "Ada L"})
    no_errors(at)
    assert _listed(at) == {mine, classroom["starter"]}  # the provider's identity, not ?who=ben
    assert any("Ada L" in c.value for c in at.sidebar.caption)
    assert [b.label for b in at.sidebar.button] == ["Log out"] and not at.sidebar.text_input


def test_a_typed_name_owns_new_runs_and_a_reload_keeps_it(fresh_dir):
    at = _session(page="train")
    assert not dlcore.list_runs()
    ask = next(t for t in at.text_input if t.key == "identity_ask")  # "who are you?" before training
    ask.set_value("Cleo").run()
    no_errors(at)
    assert at.sidebar.text_input(key="who").value == "Cleo"
    at.selectbox(key="train_model").set_value("rnn-tiny").run()
    at.selectbox(key="train_data").set_value("digits")
    at.number_input(key="train_f_epochs").set_value(1)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    no_errors(at)
    run_id = at.query_params["run"]
    assert dlcore.get_run(run_id).owner == "cleo"
    dlcore.wait(run_id, timeout=120)
    again = _session("Cleo", "runs")  # the reload: the name comes back from the URL
    assert again.sidebar.text_input(key="who").value == "Cleo" and _listed(again) == {run_id}
    assert not [t for t in again.text_input if t.key == "identity_ask"]
    dora = _session("dora", "runs")
    assert not dora.dataframe and "No runs yet" in dora.info[0].value  # Dora has none


def test_with_a_provider_configured_a_typed_name_counts_for_nothing(classroom):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 64,
                          "client_id": "id", "client_secret": "secret",
                          "server_metadata_url": "https://accounts.example.edu/.well-known/openid-configuration",
                          "university": {"client_id": "id2", "client_secret": "s2",
                                         "server_metadata_url": "https://idp.example.edu/.well-known/x"}}
    at.query_params["who"] = "ada"  # a name in the URL is not a login
    at.user = {"is_logged_in": False}
    at.run()
    at.switch_page(PAGE_FILES["runs"]).run()
    no_errors(at)
    assert _listed(at) == {classroom["starter"]}  # class-wide only, not Ada's
    assert [b.label for b in at.sidebar.button] == ["Log in", "Log in with university"]
    assert not at.sidebar.text_input and any("Not logged in" in c.value for c in at.sidebar.caption)


def test_an_upload_is_its_owners_until_she_shares_it(fresh_dir):
    ada = _session("ada", "data")
    csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{'xy'[i % 2]}\n".encode() for i in range(40))
    ada.file_uploader(key="data_file_table").upload("marks.csv", csv, "text/csv")
    ada.button[[b.label for b in ada.button].index("Import") + 1].click().run()
    no_errors(ada)
    name = ada.selectbox(key="data_name").value
    assert name.startswith("user-marks-") and dlcore.dataset_access(name) == ("ada", False)
    label = "marks (upload)"  # how the dataset boxes show it
    assert label in ada.selectbox(key="data_name").options
    ben = _session("ben", "data")
    assert label not in ben.selectbox(key="data_name").options
    assert not [t for t in ben.toggle if t.key == f"data_share_{name}"]
    ada.toggle(key=f"data_share_{name}").set_value(True).run()
    no_errors(ada)
    assert dlcore.dataset_access(name) == ("ada", True)
    ben = _session("ben", "data")
    assert label in ben.selectbox(key="data_name").options
    assert not [b for b in ben.button if b.key == f"data_del_{name}"]  # shared to train on, not to delete
    ben_train = _session("ben", "train")
    assert label in ben_train.selectbox(key="train_data").options


def test_a_guest_is_kept_in_the_url_and_keeps_its_runs_when_it_types_a_name(fresh_dir):
    at = _session(page="runs")
    guest = at.sidebar.text_input(key="who").value
    assert dlcore.is_guest(guest) and any("you are a guest" in c.value for c in at.sidebar.caption)
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec(),
                       name="quick start", owner=guest)  # as the Home page's quick start makes it
    store.update(rid, status="cancelled")
    again = _session(guest, "runs")  # the reload: the browser's URL has ?who=guest-…
    assert _listed(again) == {rid}
    again.sidebar.text_input(key="who").set_value("Ella").run()
    no_errors(again)
    assert dlcore.get_run(rid).owner == "ella" and _listed(again) == {rid}
    assert not _session(page="runs").dataframe  # another newcomer: another guest, nothing of Ella's
