"""Home page."""
from __future__ import annotations

from tests.app.conftest import no_errors, open_page


def test_home_on_a_fresh_data_folder(fresh_dir):
    at = open_page("home")
    no_errors(at)
    assert at.button(key="home_quickstart").label == "Train the tutorial CNN on MNIST"
    assert "seed-cnn" in at.markdown[1].value and "5 epochs, batch 32" in at.markdown[1].value
    assert not any("Recent runs" in s.value for s in at.subheader)


def test_home_lists_recent_runs(finished_run):
    at = open_page("home")
    no_errors(at)
    assert any("Recent runs" in s.value for s in at.subheader)
    assert any("tiny digits CNN" in m.value and "completed" in m.value for m in at.markdown)
