"""Data page: every kind of built-in dataset renders, uploads are checked with clear messages."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from tests.app.conftest import no_errors, open_page
from PIL import Image


def test_data_page_default_dataset_on_a_fresh_folder(fresh_dir):
    at = open_page("data")
    no_errors(at)
    assert at.selectbox(key="data_name").value == "mnist5k"
    assert at.subheader[0].value == "MNIST 5k"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # sample grid and class balance
    assert all(b.label == "Download HTML" for b in at.get("download_button"))
    tabs = [t.label for t in at.tabs]
    assert tabs == ["Images (zip)", "Table (CSV)", "Labelled texts (CSV)", "Plain text"]


@pytest.mark.parametrize("name, charts", [("sunspots", 2), ("reverse", 1), ("sentiment-synth", 1),
                                          ("mnist-rows", 2), ("pydoc-lm", 0)])
def test_data_page_shows_each_kind_of_data(fresh_dir, name, charts):
    at = open_page("data", data_name=name)
    no_errors(at)
    assert len(at.get("plotly_chart")) == charts
    if name in ("reverse", "sentiment-synth", "pydoc-lm"):
        assert len(at.dataframe) == 2  # sizes table and decoded examples


def test_an_optional_dataset_that_cannot_load_is_an_error_message(fresh_dir):
    at = open_page("data", data_name="tv-cifar10")
    assert not at.exception
    assert "CIFAR-10" in at.error[0].value and "mnist5k" in at.error[0].value


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 10), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_show_a_clear_error_then_import_and_preview(fresh_dir):
    at = open_page("data", data_name="digits")
    at.file_uploader(key="data_file_images").upload("bad.zip", b"not a zip at all", "application/zip")
    at.button[[b.label for b in at.button].index("Import")].click().run()
    assert not at.exception
    assert "not a readable zip" in at.error[0].value
    good = _zip({f"{c}/{i}.png": _png(20 * i + (0 if c == "dark" else 200)) for c in ("dark", "light")
                 for i in range(3)})
    at.file_uploader(key="data_file_images").upload("shapes.zip", good, "application/zip")
    at.button[[b.label for b in at.button].index("Import")].click().run()
    no_errors(at)
    assert "Imported: Uploaded images: 6 in 2 classes" in at.success[0].value
    assert at.selectbox(key="data_name").value.startswith("user-shapes-")
    assert at.subheader[0].value == "shapes"  # the preview of the new dataset
    assert any(b.label == "Delete" for b in at.button)


def test_table_csv_upload_with_a_non_numeric_column_is_refused(fresh_dir):
    at = open_page("data", data_name="digits")
    csv = b"a,b,label\n1,x,yes\n2,y,no\n3,z,yes\n4,w,no\n"
    at.file_uploader(key="data_file_table").upload("t.csv", csv, "text/csv")
    at.button[[b.label for b in at.button].index("Import") + 1].click().run()
    assert not at.exception
    assert "feature column 'b' is not numeric" in at.error[0].value
