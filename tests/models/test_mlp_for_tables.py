"""Tables train everywhere (issue 10): MLP presets exist, the CLI trains one on an uploaded table CSV, and a
family that cannot read some data names one that can (tried, not assumed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import dlcore
from dlcore.cli import main


def _table() -> str:
    x = np.random.default_rng(0).normal(size=(80, 3))
    rows = "\n".join(f"{a:.3f},{b:.3f},{c:.3f},{'yes' if a > b else 'no'}" for a, b, c in x)
    return dlcore.import_table_csv(("a,b,c,label\n" + rows).encode(), name="people").name


def test_the_mlp_family_has_presets_for_tables():
    assert dlcore.presets_of("mlp") == ["mlp-tiny", "mlp-small"]
    for name in dlcore.presets_of("mlp"):
        assert dlcore.PRESETS[name].data in dlcore.dataset_names()


def test_the_cli_trains_mlp_small_on_an_uploaded_table(fresh_dir, capsys):
    table = _table()
    rc = main(["train", "--data", table, "--model", "mlp-small", "--epochs", "2", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["data"] == table and "test_accuracy" in result


@pytest.mark.parametrize("preset, data, pick", [
    ("seed-cnn", "table", "pick the MLP family"), ("seed-lstm", "table", "pick the MLP family"),
    ("transformer-tiny", "table", "pick the MLP family"), ("mlp-small", "reverse", "pick the RNN or Transformer family"),
    ("mlp-small", "pydoc-lm", "pick the RNN or Transformer family"),
    ("seed-cnn", "sunspots", "pick the RNN, Transformer or MLP family")])
def test_a_refusal_names_a_family_that_can_read_the_data(fresh_dir, preset, data, pick):
    name = _table() if data == "table" else data
    info = dlcore.dataset_info(name)
    with pytest.raises(dlcore.SpecError, match=pick) as e:
        dlcore.for_data(dlcore.get_preset(preset), info)
    assert "user-" not in str(e.value)  # the upload's name, not its id
    family = pick.split("pick the ")[1].split(" ")[0].strip(",").lower()
    assert any(dlcore.for_data(dlcore.get_preset(p), info) for p in dlcore.presets_of(family)
               if _adapts(p, info))


def _adapts(preset: str, info) -> bool:
    try:
        dlcore.for_data(dlcore.get_preset(preset), info)
        return True
    except dlcore.SpecError:
        return False
