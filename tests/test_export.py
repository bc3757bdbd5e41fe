"""Export: ONNX (checked with onnxruntime), TorchScript and safetensors + JSON, from a model or a stored run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlcore import DataSpec, build_model, for_data, get_preset, import_checkpoint, load_dataset
from dlcore.cli import main as cli
from dlcore.export import ExportError, example_batch, export_model

# the two tutorial models and a tiny Transformer, each on the data it was made for
CASES = {
    "seed-cnn": ("seed-cnn", DataSpec(name="mnist5k")),
    "seed-lstm": ("seed-lstm", DataSpec(name="mnist-rows")),
    "transformer": ("transformer-tiny", DataSpec(name="reverse", seq_len=8, max_train=64)),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    preset, data = CASES[request.param]
    config = for_data(get_preset(preset), load_dataset(data).info)
    torch.manual_seed(1234)
    model = build_model(config).eval()
    with torch.no_grad():  # non-trivial weights everywhere (biases start at zero)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return config, model


def _torch_out(model, x):
    with torch.no_grad():
        return model(x)[0].numpy()


def test_onnx_matches_torch_within_1e4(case, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    config, model = case
    path = tmp_path / "model.onnx"
    report = export_model(model, config, "onnx", path, check=False)
    assert report["files"] == [str(path)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # exported with a batch of 2: the batch dimension is dynamic
        x = example_batch(config, batch, seed=batch)
        out = sess.run(None, {"input": x.numpy()})[0]
        ref = _torch_out(model, x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["dlcore.model"])["config"] == config.to_dict()


def test_torchscript_matches_torch(case, tmp_path):
    config, model = case
    report = export_model(model, config, "torchscript", tmp_path / "model.pt")
    assert report["max_abs_diff"] < 1e-5
    loaded = torch.jit.load(report["files"][0])
    x = example_batch(config, 4, seed=7)
    np.testing.assert_allclose(loaded(x).detach().numpy(), _torch_out(model, x), atol=1e-5, rtol=0)


def test_safetensors_round_trips_through_import_checkpoint(case, tmp_path):
    config, model = case
    report = export_model(model, config, "safetensors", tmp_path / "weights.safetensors", metadata={"note": "x"})
    weights, spec = report["files"]
    assert spec.endswith("weights.json")
    config2, model2 = import_checkpoint(open(weights, "rb").read(), open(spec).read())
    assert config2 == config
    x = example_batch(config, 3)
    np.testing.assert_array_equal(_torch_out(model2, x), _torch_out(model, x))


def test_unknown_format_and_folder_output_are_refused(tmp_path):
    config = for_data(get_preset("cnn-tiny"), load_dataset(DataSpec(name="mnist5k")).info)
    model = build_model(config)
    with pytest.raises(ExportError, match="format must be one of"):
        export_model(model, config, "pickle", tmp_path / "m.pkl")
    with pytest.raises(ExportError, match="is a folder"):
        export_model(model, config, "onnx", tmp_path)


def test_cli_exports_a_trained_run(fresh_dir, capsys):
    assert cli(["train", "--data", "digits", "--model", "cnn-tiny", "--model-set", "padding=same",
                "--epochs", "1", "--max-steps", "3", "--quiet", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    out = fresh_dir / "export" / "w.safetensors"
    assert cli(["export", run_id, "--format", "safetensors", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "w.json" in text and "max |difference| 0.00e+00" in text
    spec = json.loads((fresh_dir / "export" / "w.json").read_text())
    assert spec["run_id"] == run_id and spec["class_names"][:2] == ["0", "1"]
    assert cli(["export", "no-such-run", "--format", "onnx", "--out", str(fresh_dir / "x.onnx")]) == 2
    assert "no run with id" in capsys.readouterr().err
