"""app.py: navigation, sidebar (device, runs in progress) and presentation mode."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tests.app.conftest import APP, PAGE_FILES, no_errors, open_page
from streamlit.testing.v1 import AppTest

import dlcore


def test_home_is_the_default_page_with_the_sidebar(fresh_dir):
    at = open_page()
    no_errors(at)
    assert at.title[0].value == "Deep Learning Explorer"
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    dev = dlcore.device_description()
    assert "Device" in sidebar and dev["name"] in sidebar
    assert "No runs in progress." in sidebar
    assert at.sidebar.toggle[0].label == "Presentation mode" and at.sidebar.toggle[0].value is False


def test_presentation_mode_enlarges_figures(fresh_dir):
    at = open_page("build")
    small = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"]
    at.sidebar.toggle[0].set_value(True).run()
    no_errors(at)
    big = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"]
    assert small < 24 <= big


def test_presentation_css_sets_large_type_and_hides_chrome():
    """The stylesheet app.py injects (its effect in a browser is checked by the e2e test)."""
    css = (APP.parent / "assets" / "presentation.css").read_text()
    sizes = [int(m) for m in re.findall(r"font-size:\s*(\d+)px", css)]
    assert sizes and min(sizes) >= 24
    assert 'header[data-testid="stHeader"]' in css and "display: none" in css


def test_sidebar_lists_a_queued_run_with_its_place_in_line(fresh_dir):
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny"), dlcore.TrainSpec(),
                       name="waiting run")  # queued, no worker: stays in line
    at = open_page()
    no_errors(at)
    assert "Runs in progress" in " ".join(m.value for m in at.sidebar.markdown)
    texts = [p.proto.text for p in at.sidebar.get("progress")]
    assert texts == ["waiting run · queued, #1 in line"]
    store.update(rid, status="cancelled")


def test_a_deep_link_on_a_fresh_server_still_runs_through_app_py(finished_run):
    """The first request after a restart may be /train?run=…: the page must not run without app.py."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = finished_run
    at.run()
    at.switch_page(PAGE_FILES["train"]).run()
    no_errors(at)
    assert at.sidebar.toggle[0].label == "Presentation mode"  # app.py's sidebar is there
    assert at.selectbox(key="train_run").value == finished_run


def test_pages_live_in_section_folders_outside_a_pages_folder():
    """Streamlit reads a ``pages/`` folder next to app.py as a legacy multipage app until the first
    ``st.navigation`` (tests/e2e/test_cold_start.py shows what that costs the first visitors)."""
    root = APP.parent
    assert not (root / "pages").exists()
    sections = {Path(p).parent.name for p in PAGE_FILES.values()}
    assert sections == {"explore", "learn", "look_inside", "advanced"}
    assert not list((root / "app_pages").glob("*.py"))  # no page outside a section, no __init__.py
    assert all((root / p).is_file() for p in PAGE_FILES.values())
