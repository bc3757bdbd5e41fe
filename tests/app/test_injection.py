"""User-supplied strings are shown as text, never read as Markdown or HTML (issue 10, hostile Medium 1).

Markdown and HTML payloads go in as a run name, a dataset name, class names, CSV headers, image folder
names and the ``?run=`` query parameter, and every page that shows them is rendered through app.py. Every
Markdown-reading text of the page (markdown, captions, alerts, titles, widget labels, radio options,
progress and metric texts) must hold the payloads escaped (``app_pages.common.ui.text``) and none raw, and
no figure may carry a live HTML tag.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from tests.app.conftest import APP, PAGE_FILES, open_page
from PIL import Image
from streamlit.testing.v1 import AppTest

import dlcore
from app_pages.common import ui
from dlcore.train.worker import run_job

LINK, IMAGE, HTML, BOLD, MATH, COLOR = ("[x](http://evil)", "![i](http://127.0.0.1:9/x.png)", "<img src=x>", "**b**",
                                        "$x$", ":red[x]")
PAYLOADS = (LINK, IMAGE, HTML, BOLD, MATH, COLOR)
NAME = " ".join(PAYLOADS)  # 77 characters: a run name, a dataset name
PLAIN_TYPES = {"arrow_data_frame", "plotly_chart", "code", "text", "json", "exception"}  # shown verbatim
OPTIONS_PLAIN = {"selectbox", "multiselect", "select_slider",  # their options are plain text; labels are not
                 "text_input", "text_area"}  # what is typed in a box is plain text too


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _strings(msg, skip: set[str] = frozenset()):
    """Every string field of a protobuf message, recursively (skipping the named fields)."""
    for field, value in msg.ListFields():
        if field.name in skip:
            continue
        repeated = not isinstance(value, (str, bytes)) and not hasattr(value, "ListFields") and hasattr(value, "__iter__")
        values = list(value) if repeated else [value]
        for v in values:
            if isinstance(v, str):
                yield v
            elif hasattr(v, "ListFields"):
                yield from _strings(v, skip)


def rendered(at: AppTest) -> tuple[list[str], list[str]]:
    """(the Markdown-reading texts of the page, the strings inside its figures)."""
    markdown, figures = [], []
    for node in _walk(at._tree):
        kind, proto = getattr(node, "type", None), getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        if kind == "plotly_chart":
            def strings(x):
                if isinstance(x, str):
                    yield x
                elif isinstance(x, dict):
                    for v in x.values():
                        yield from strings(v)
                elif isinstance(x, list):
                    for v in x:
                        yield from strings(v)
            figures += list(strings(json.loads(proto.spec)))
        elif kind not in PLAIN_TYPES:
            skip = {"options", "default", "value", "raw_value", "raw_values", "id", "form_id", "placeholder"} \
                if kind in OPTIONS_PLAIN \
                else {"id", "form_id"}
            markdown += list(_strings(proto, skip))
    return markdown, figures


def assert_shown_as_text(at: AppTest, payloads=PAYLOADS, expect: int = 1) -> None:
    assert not at.exception, [e.value for e in at.exception]
    markdown, figures = rendered(at)
    for text in markdown:
        for p in payloads:
            assert p not in text, f"{p!r} read as Markdown in {text!r}"
        assert "](http" not in text.replace("\\](", "")  # no link syntax left unescaped
    shown = sum(ui.text(p) in t for t in markdown for p in payloads)
    assert shown >= expect, "the payloads were not shown at all: the test would pass vacuously"
    for s in figures:
        assert "<img" not in s and "<a " not in s.lower(), f"live HTML in a figure: {s!r}"


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 10), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A data folder with hostile names everywhere: a table upload (title, class names, CSV headers), an image
    upload (class folders), a finished MLP and CNN run named with the payloads, and a queued run."""
    import os

    root = tmp_path_factory.mktemp("dle-hostile")
    old = os.environ.get("DLE_DATA_DIR")
    os.environ["DLE_DATA_DIR"] = str(root)
    try:
        rng = np.random.default_rng(0)
        header = f'"{HTML}","{MATH}",extra,label'
        rows = "\n".join(f'{a:.3f},{b:.3f},{c:.3f},"{LINK if a > 0 else BOLD}"' for a, b, c in rng.normal(size=(40, 3)))
        table = dlcore.import_table_csv(f"{header}\n{rows}".encode(), name=NAME)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for c, base in ((COLOR, 10), ("![i](x.png)", 220)):
                for i in range(6):
                    zf.writestr(f"{c}/{i}.png", _png(base + i))
        images = dlcore.import_image_zip(buf.getvalue(), name=NAME, image_size=16)
        store = dlcore.RunStore(root)
        runs = {}
        for key, data, preset in (("mlp", table.name, "mlp-tiny"), ("cnn", images.name, "cnn-tiny")):
            cfg = dlcore.get_preset(preset)
            rid = store.create(dlcore.DataSpec(name=data), cfg.replace(padding="same") if key == "cnn" else cfg,
                               dlcore.TrainSpec(epochs=1, max_steps=3), name=NAME)
            assert run_job(rid, store) == "completed", store.get(rid).error
            runs[key] = rid
        runs["queued"] = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"),
                                      dlcore.TrainSpec(), name=NAME)  # no worker: stays in the sidebar
        yield {"root": root, "table": table.name, "images": images.name, **runs}
        store.update(runs["queued"], status="cancelled")
    finally:
        if old is None:
            os.environ.pop("DLE_DATA_DIR", None)
        else:
            os.environ["DLE_DATA_DIR"] = old


@pytest.fixture
def world(hostile, monkeypatch):
    monkeypatch.setenv("DLE_DATA_DIR", str(hostile["root"]))
    return hostile


def _at(page: str | None, run: str | None = None, timeout: float = 180, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if run:
        at.query_params["run"] = run
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(PAGE_FILES[page]).run()
    return at


def test_home_and_the_sidebar_show_run_and_dataset_names_as_text(world):
    at = _at(None)
    assert_shown_as_text(at, expect=3)  # recent runs (name and dataset) and the sidebar's progress text
    assert any(ui.text(NAME) in p.proto.text for p in at.sidebar.get("progress"))


@pytest.mark.parametrize("which", ["mlp", "cnn", "queued"])
def test_train_page_shows_the_watched_run_as_text(world, which):
    at = _at("train", world[which])
    assert_shown_as_text(at, expect=2)


def test_a_hostile_query_parameter_is_shown_as_text(world):
    at = _at("train", run=f"{LINK} {IMAGE} Your session expired: sign in again")
    warning = at.warning[0].value
    assert "was not found" in warning and LINK not in warning and ui.text(LINK) in warning
    assert_shown_as_text(at)


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_runs_page_shows_names_and_classes_as_text(world, which):
    at = _at("runs", world[which])
    assert_shown_as_text(at, expect=2)


@pytest.mark.parametrize("data", ["table", "images"])
def test_data_page_shows_uploads_as_text(world, data):
    at = _at("data", data_name=world[data])
    assert_shown_as_text(at, expect=2)  # title, description, class names, the uploads list


@pytest.mark.parametrize("data", ["table", "images"])
def test_build_page_shows_the_dataset_as_text(world, data):
    family = {"table": "mlp", "images": "cnn"}[data]
    at = _at("build")
    at.segmented_control(key="build_family").set_value(family).run()
    at.selectbox(key="build_data").set_value(world[data]).run()
    assert_shown_as_text(at, expect=1)


@pytest.mark.parametrize("page, which", [("explain", "mlp"), ("explain", "cnn"), ("filters", "cnn"),
                                         ("internals", "mlp"), ("compress", "mlp"), ("overfitting", "mlp")])
def test_inspection_pages_show_classes_and_features_as_text(world, page, which):
    at = _at(page, world[which])
    assert_shown_as_text(at, expect=0)  # class names and features are in figures there
    assert at.get("plotly_chart")


def test_the_helper_escapes_every_payload_and_keeps_plain_text():
    for p in PAYLOADS:
        md = ui.text(p)
        assert p not in md and md.replace("\\", "").replace("\u2060", "") == p  # reads the same, typed as text
    assert ui.text("mnist5k · cnn on digits, 93% (5 epochs)") == "mnist5k · cnn on digits, 93% (5 epochs)"
    assert ui.text("<a href='http://evil'>x</a>", "figure") == "&lt;a href='http://evil'&gt;x&lt;/a&gt;"
    assert ui.text(LINK, "plain") == LINK
    assert "\u2060" in ui.text("see http://evil.example") and "\u2060" in ui.text("mail a@b.example")
    assert ui.text("1. first\n# second") == "1\\. first # second"  # only a line start makes a list or heading
