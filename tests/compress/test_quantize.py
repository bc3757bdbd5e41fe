"""int8 through onnxruntime: a smaller file with the parent's accuracy, a run whose torch weights are the
int8 values, and the deployable int8 ONNX next to its checkpoint."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import dlcore
from dlcore.compress import compress_run, dequantized_weights, ort_outputs, ort_session, quantize_onnx
from dlcore.export import to_onnx

from tests.compress.tiny import TEACHER


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_quantized_run(store, teacher_run, mode):
    parent, res = teacher_run
    out = compress_run(parent, "quantize", store=store, mode=mode, calibration=64, measure_latency=False)
    assert out["bytes"] < 0.5 * out["fp32_onnx_bytes"]
    assert abs(out["test_accuracy"] - res["test_accuracy"]) <= 0.03
    folder = store.run_dir(out["run_id"])
    assert (folder / "model.int8.onnx").stat().st_size == out["bytes"]
    assert store.get(out["run_id"]).summary["lineage"]["parent"] == parent
    assert set(out["int8_weights"]) == {"features.0.0.weight", "features.1.0.weight", "head.1.weight",
                                        "head.3.weight"}
    _, model = dlcore.load_run_model(out["run_id"], store)
    _, original = dlcore.load_run_model(parent, store)
    w, w0 = model.state_dict()["features.1.0.weight"], original.state_dict()["features.1.0.weight"]
    assert not torch.equal(w, w0) and (w - w0).abs().max() < 0.05 * w0.abs().max()


def test_dequantized_weights_are_int8_steps_of_the_file(tmp_path):
    torch.manual_seed(1234)
    cfg = dlcore.for_data(TEACHER, dlcore.dataset_info("digits"))
    model = dlcore.build_model(cfg).eval()
    fp32 = to_onnx(model, cfg, tmp_path / "m.onnx")
    x = torch.rand(64, 1, 8, 8)
    int8 = quantize_onnx(fp32, tmp_path / "q.onnx", "static", x)
    sd, names = dequantized_weights(int8, model)
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(int8)).graph.initializer}
    scale = init["model.features.0.0.weight_scale"]  # per output channel
    w = sd["features.0.0.weight"].numpy()
    steps = w / scale.reshape(-1, 1, 1, 1)
    assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(steps).max() <= 128
    w0 = model.state_dict()["features.0.0.weight"].numpy()
    assert np.all(np.abs(w - w0) <= scale.reshape(-1, 1, 1, 1) / 2 + 1e-7)
    # the file computes what the torch model with those weights computes, up to activation rounding
    ref = model(x)[0].detach().numpy()
    got = ort_outputs(ort_session(int8), x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    assert "head.3.weight" in names


def test_static_needs_calibration(tmp_path):
    cfg = dlcore.for_data(TEACHER, dlcore.dataset_info("digits"))
    fp32 = to_onnx(dlcore.build_model(cfg).eval(), cfg, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx(fp32, tmp_path / "q.onnx", "static", None)
