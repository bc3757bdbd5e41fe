"""Registry results equal direct captum / shap calls on the same model, input and seed; Integrated Gradients is
complete (attributions sum to f(x) − f(baseline)); token models are explained in embedding space."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
import dlcore.explain as ex
from tests.inspect.tiny import image_info, make, seq_info, tabular_info, token_info


@pytest.fixture
def subject(cnn, images):
    return ex.Subject.build(cnn, image_info(), images[0], background=images[1:])


def fwd(model):
    return lambda inp: model(inp)[0]


def seeded(fn, seed=0):
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            return fn()
        finally:
            np.random.set_state(state)


def test_registry_equals_direct_captum_calls(cnn, subject):
    from captum.attr import (GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel,
                             Occlusion, Saliency)

    x, t = subject.inputs, subject.target
    f = fwd(cnn)
    direct = {
        "saliency": Saliency(f).attribute(x, target=t, abs=True),
        "integrated_gradients": IntegratedGradients(f).attribute(x, baselines=torch.zeros_like(x), target=t,
                                                                 n_steps=50, method="gausslegendre"),
        "smoothgrad": seeded(lambda: NoiseTunnel(Saliency(f)).attribute(
            x, nt_type="smoothgrad", nt_samples=25, stdevs=0.15 * float(x.max() - x.min()), target=t, abs=True)),
        "occlusion": Occlusion(f).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0,
                                            target=t),
        "gradient_shap": seeded(lambda: GradientShap(f).attribute(
            x, baselines=subject.background_inputs(20, seed=0), n_samples=20, stdevs=0.0, target=t)),
    }
    cam = LayerGradCam(f, cnn.features[1][0]).attribute(x, target=t, relu_attributions=True)
    direct["grad_cam"] = LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    for key, ref in direct.items():
        got = ex.explain(subject, key).attributions
        np.testing.assert_allclose(got, ref[0].detach().numpy(), rtol=1e-4, atol=1e-6, err_msg=key)


def test_registry_equals_direct_shap_gradient_explainer(cnn, subject):
    import shap

    class Target(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = cnn

        def forward(self, x):
            return cnn(x)[0][:, subject.target: subject.target + 1]

    bg = subject.background_inputs(4, seed=7)  # the registry draws its background with the method seed
    ref = shap.GradientExplainer(Target(), bg).shap_values(subject.inputs, nsamples=40, rseed=7)
    got = ex.explain(subject, "shap_gradient", nsamples=40, background=4, seed=7).attributions
    np.testing.assert_allclose(got, np.asarray(ref)[0, ..., 0], rtol=1e-4, atol=1e-6)


def test_registry_equals_direct_captum_lime(cnn, subject):
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    mask = ex.lime_feature_mask(subject, n_segments=8, compactness=0.3)
    assert mask.shape == (1, 1, 8, 8) and 2 <= int(mask.max()) + 1 <= 16
    ref = seeded(lambda: Lime(fwd(cnn), interpretable_model=SkLearnRidge(alpha=1.0),
                              similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=1.0))
                 .attribute(subject.inputs, baselines=torch.zeros_like(subject.inputs), target=subject.target,
                            feature_mask=mask, n_samples=60, perturbations_per_eval=60))
    got = ex.explain(subject, "lime", n_samples=60, n_segments=8).attributions
    np.testing.assert_allclose(got, ref[0].numpy(), rtol=1e-4, atol=1e-6)
    # superpixel attributions are constant within each superpixel
    m = mask[0, 0].numpy()
    for seg in np.unique(m):
        assert np.ptp(got[0][m == seg]) < 1e-6


def test_seeded_methods_are_repeatable_and_leave_the_global_rng_alone(subject):
    torch.manual_seed(99)
    np.random.seed(99)
    before = torch.rand(1), np.random.rand()
    torch.manual_seed(99)
    np.random.seed(99)
    a = ex.explain(subject, "smoothgrad", nt_samples=5).attributions
    g = ex.explain(subject, "gradient_shap", n_samples=5).attributions
    after = torch.rand(1), np.random.rand()
    np.testing.assert_array_equal(a, ex.explain(subject, "smoothgrad", nt_samples=5).attributions)
    np.testing.assert_array_equal(g, ex.explain(subject, "gradient_shap", n_samples=5).attributions)
    assert torch.equal(before[0], after[0]) and before[1] == after[1]


def test_integrated_gradients_is_complete(images):
    # a smooth model (tanh, no max-pool): the path integral converges quickly, so completeness is tight
    model = make(dlcore.CNNConfig(in_channels=1, image_size=8, channels=(4, 6), pools=(1, 1), hidden=(12,),
                                  activation="tanh"))
    subject = ex.Subject.build(model, image_info(), images[0])
    e = ex.explain(subject, "integrated_gradients", n_steps=64)
    with torch.no_grad():
        scores = subject.forward(torch.cat([subject.inputs, subject.baseline()]))[:, subject.target]
    gap = float(scores[0] - scores[1])
    assert abs(gap) > 1e-3
    assert e.attributions.sum() == pytest.approx(gap, rel=1e-3, abs=1e-5)
    assert e.extras["convergence_delta"] == pytest.approx(abs(e.attributions.sum() - gap), abs=1e-5)
    assert e.extras["convergence_delta"] < 1e-3 * abs(gap) + 1e-5


def test_token_models_are_explained_per_token_in_embedding_space(encoder, tokens):
    s = ex.Subject.build(encoder, token_info(), tokens[0], position=2, background=tokens)
    assert s.kind == "tokens" and s.inputs.shape == (1, 6, 16)
    with torch.no_grad():  # the embedding swap reproduces the model's own output
        torch.testing.assert_close(s.forward(s.inputs), encoder(tokens[:1])[0][:, 2])
    e = ex.explain(s, "integrated_gradients", n_steps=100)
    assert e.map.shape == (6,)
    with torch.no_grad():
        sc = s.forward(torch.cat([s.inputs, s.baseline()]))[:, s.target]
    assert e.map.sum() == pytest.approx(float(sc[0] - sc[1]), rel=1e-2, abs=1e-3)
    for key in ("occlusion", "lime", "shap_gradient"):
        params = {"nsamples": 20, "background": 3} if key == "shap_gradient" else {}
        assert ex.explain(s, key, **params).map.shape == (6,)
    assert dlcore.inspect.hook_count(encoder) == 0


def test_sequences_tables_and_regression():
    rnn = make(dlcore.RNNConfig(input_size=3, hidden_size=4, num_layers=1, num_outputs=4))
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    s = ex.Subject.build(rnn, seq_info(), x)
    for key in ("saliency", "occlusion", "lime"):
        assert ex.explain(s, key).map.shape == (7, 3)
    mlp = make(dlcore.MLPConfig(in_features=5, num_outputs=3, hidden=(4,)))
    t = ex.Subject.build(mlp, tabular_info(), np.ones(5, np.float32), target=2)
    assert t.target == 2 and ex.explain(t, "integrated_gradients").map.shape == (5,)
    with pytest.raises(ValueError, match="target must be 0..2"):
        ex.Subject.build(mlp, tabular_info(), np.ones(5, np.float32), target=3)
