"""The registry: declared parameters, validation, and which methods are offered for which model."""
from __future__ import annotations

import pytest

import dlcore
import dlcore.explain as ex
from tests.inspect.tiny import image_info, make


def test_every_method_declares_typed_parameters_with_valid_defaults():
    assert {"saliency", "integrated_gradients", "smoothgrad", "grad_cam", "occlusion", "gradient_shap",
            "shap_gradient", "lime"} <= set(ex.METHODS)
    for m in ex.METHODS.values():
        assert m.title and m.library in ("captum", "shap") and m.description
        for p in m.params:
            assert p.kind in ("int", "float", "bool", "str")
            assert p.check(p.default) == p.default  # every default lies within its own limits
    ig = ex.get_method("integrated_gradients")
    n_steps = next(p for p in ig.params if p.name == "n_steps")
    assert (n_steps.default, n_steps.range, n_steps.kind) == (50, (2, 1000), "int")


def test_parameter_validation_names_the_parameter():
    ig = ex.get_method("integrated_gradients")
    assert ig.resolve({"n_steps": 10.0})["n_steps"] == 10
    with pytest.raises(ValueError, match="n_steps must be 2..1000"):
        ig.resolve({"n_steps": 1})
    with pytest.raises(ValueError, match="n_steps must be a whole number"):
        ig.resolve({"n_steps": 2.5})
    with pytest.raises(ValueError, match="baseline must be one of zero, mean"):
        ig.resolve({"baseline": "blur"})
    with pytest.raises(ValueError, match="no parameter 'steps'.*n_steps"):
        ig.resolve({"steps": 3})
    with pytest.raises(KeyError, match="unknown explanation method"):
        ex.get_method("deeplift-9000")


def test_grad_cam_is_offered_for_conv_models_only(cnn, vit, encoder):
    assert "grad_cam" in [m.key for m in ex.available_methods(cnn)]
    mlp = make(dlcore.MLPConfig(in_features=5, num_outputs=3, hidden=(4,)))
    rnn = make(dlcore.RNNConfig(input_size=3, hidden_size=4, num_layers=1, num_outputs=4))
    for model in (mlp, rnn, encoder, vit):
        keys = [m.key for m in ex.available_methods(model)]
        assert "grad_cam" not in keys and "integrated_gradients" in keys
        assert "conv" in ex.unavailable_methods(model)["grad_cam"]


def test_explaining_with_a_method_that_does_not_apply_is_refused(images):
    mlp = make(dlcore.MLPConfig(in_features=64, num_outputs=10, hidden=(4,)))
    s = ex.Subject.build(mlp, image_info(), images[0])
    with pytest.raises(ValueError, match="Grad-CAM does not apply"):
        ex.explain(s, "grad_cam")
