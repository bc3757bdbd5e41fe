"""The Language page through app.py: a tiny trained LM (distribution, generation, step attention, logit lens)
and a tiny trained sentiment classifier (typed text, an unknown character's error)."""
from __future__ import annotations

import pytest

import dlcore
from dlcore.train.worker import run_job
from tests.app.conftest import no_errors, open_page


@pytest.fixture(scope="module")
def lang_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dle-language")
    store = dlcore.RunStore(root)
    lm = store.create(dlcore.DataSpec(name="pydoc-lm", max_train=200), dlcore.get_preset("lm-tiny"),
                      dlcore.TrainSpec(epochs=1, seed=0, max_steps=5), name="tiny LM")
    assert run_job(lm, store) == "completed"
    clf = store.create(dlcore.DataSpec(name="sentiment-synth", max_train=200), dlcore.get_preset("transformer-tiny"),
                       dlcore.TrainSpec(epochs=1, seed=0, max_steps=5), name="tiny sentiment")
    assert run_job(clf, store) == "completed"
    rev = store.create(dlcore.DataSpec(name="reverse", max_train=256), dlcore.get_preset("transformer-tiny"),
                       dlcore.TrainSpec(epochs=1, seed=0, max_steps=5), name="tiny reverse")
    assert run_job(rev, store) == "completed"
    return root, lm, clf, rev


def _page(lang_store, monkeypatch, run_id):
    root, *_ = lang_store
    monkeypatch.setenv("DLE_DATA_DIR", str(root))
    return open_page("language", timeout=180, language_run=run_id)


def test_lm_generates_and_shows_distribution(lang_store, monkeypatch):
    at = _page(lang_store, monkeypatch, lang_store[1])
    no_errors(at)
    assert len(at.get("plotly_chart")) >= 2  # next-token distribution + logit lens
    at.slider(key=f"language_{lang_store[1]}_topk").set_value(3).run()
    no_errors(at)
    assert any("The cut removes" in c.value for c in at.caption)
    at.button(key=f"language_{lang_store[1]}_many").click().run()
    no_errors(at)
    assert at.code and at.code[0].value.startswith("def ")
    assert any(t.value.startswith("Step ") for t in at.text)
    at.button(key=f"language_{lang_store[1]}_next").click().run()
    no_errors(at)
    assert len(at.text_area(key=f"language_{lang_store[1]}_prompt").value) == 5


def test_typed_text_and_unknown_character(lang_store, monkeypatch):
    at = _page(lang_store, monkeypatch, lang_store[2])
    no_errors(at)
    assert any(t.value.startswith("Prediction:") for t in at.text)
    at.text_input(key=f"language_{lang_store[2]}_text").set_value("the film was €").run()
    assert at.error and "€" in at.error[0].value
    assert not at.exception


def test_head_knockout_on_reverse(lang_store, monkeypatch):
    rev = lang_store[3]
    at = _page(lang_store, monkeypatch, rev)
    no_errors(at)
    at.button(key=f"language_{rev}_ko_go").click().run()
    no_errors(at)
    table = at.dataframe[-1].value
    assert list(table["head"]) == [f"{layer}.{head}" for layer in (1, 2) for head in (1, 2, 3, 4)]
    at.multiselect(key=f"language_{rev}_ko_heads").set_value(["1.1", "1.2"]).run()
    no_errors(at)
    line = next(t.value for t in at.text if "without 1.1, 1.2" in t.value)
    expected = dlcore.inspect.ablate(rev, "1.1,1.2", limit=512)
    assert f"{expected['before']:.3f} with every head → {expected['after']:.3f}" in line
