"""Deletion/insertion curves and captum's infidelity and sensitivity, checked on models whose right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
import dlcore.explain as ex
from dlcore.data.base import DatasetInfo
from tests.inspect.tiny import image_info, make

REGRESSION = DatasetInfo("lin", "lin", "", "forecasting", "tabular", (12,), 1, metric="mae")


@pytest.fixture
def linear():
    """f(x) = w·x + b (an MLP without hidden layers) on a regression task: the explained output is f itself."""
    model = make(dlcore.MLPConfig(in_features=12, num_outputs=1, hidden=(), loss="mse"))
    x = np.random.default_rng(0).normal(size=12).astype(np.float32)
    return model, ex.Subject.build(model, REGRESSION, x)


def test_curves_run_from_the_input_to_the_baseline(linear):
    model, s = linear
    e = ex.explain(s, "integrated_gradients")
    f = ex.faithfulness(s, e, steps=12)
    with torch.no_grad():
        fx, fb = (float(v) for v in s.probability(torch.cat([s.inputs, s.baseline()])))
    assert f.fractions[0] == 0 and f.fractions[-1] == 1 and len(f.fractions) == 13
    assert f.deletion[0] == pytest.approx(fx, abs=1e-5) and f.deletion[-1] == pytest.approx(fb, abs=1e-5)
    assert f.insertion[0] == pytest.approx(fb, abs=1e-5) and f.insertion[-1] == pytest.approx(fx, abs=1e-5)
    # exact attributions (w·x for a linear model) remove the largest contributions first: the steepest fall
    assert f.deletion_auc < f.random_deletion_auc and f.insertion_auc > f.random_insertion_auc
    w = model.net[-1].weight.detach().numpy()[0]
    np.testing.assert_allclose(e.map, w * s.inputs[0].numpy(), rtol=1e-4, atol=1e-6)


def test_infidelity_and_sensitivity_of_exact_explanations_are_zero(linear):
    _, s = linear
    grad = ex.explain(s, "saliency", absolute=False)  # the gradient w explains every perturbation exactly
    assert ex.infidelity_score(s, grad.attributions) == pytest.approx(0.0, abs=1e-8)
    assert ex.sensitivity_score(s, "saliency", {"absolute": False}) == pytest.approx(0.0, abs=1e-6)
    noisy = grad.attributions + np.random.default_rng(1).normal(0, 1, grad.attributions.shape).astype(np.float32)
    assert ex.infidelity_score(s, noisy) > 1e-3


def test_faithfulness_of_an_image_explanation(cnn, images):
    """Each score against the same quantity computed by hand from its definition."""
    s = ex.Subject.build(cnn, image_info(), images[0])
    e = ex.explain(s, "occlusion", window=2, stride=2)
    f = ex.faithfulness(s, e, steps=8, sensitivity=True, n_perturb_samples=2)
    assert len(f.deletion) == len(f.insertion) == len(f.fractions) == 9
    x, t = s.inputs, s.target

    def prob(inp):
        with torch.no_grad():
            return float(cnn(inp)[0].softmax(-1)[0, t])

    # deletion: the k highest-ranked pixels set to the (zero) baseline; insertion: only those k kept
    order = np.argsort(-e.map.ravel(), kind="stable")  # ties (occlusion's 2×2 blocks) in pixel order
    for i, frac in enumerate(f.fractions):
        top = np.zeros(64, dtype=np.float32)
        top[order[: round(frac * 64)]] = 1
        top = torch.as_tensor(top.reshape(1, 1, 8, 8))
        assert f.deletion[i] == pytest.approx(prob(x * (1 - top)), abs=1e-6), frac
        assert f.insertion[i] == pytest.approx(prob(x * top), abs=1e-6), frac
    span = float(x.max() - x.min())

    # infidelity (Yeh et al., normalised): E[(β·Iᵀa − (f(x) − f(x − I)))²] with the optimal β, on the seeded
    # Gaussian perturbations I that infidelity_score draws (std 5 % of the input's range, 10 samples)
    pert = torch.randn((10, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 0.05 * span
    with torch.no_grad():
        df = (cnn(x)[0][:, t] - cnn(x - pert)[0][:, t]).double()
    ia = (pert * torch.as_tensor(e.attributions)).flatten(1).sum(1).double()
    beta = (ia * df).sum() / (ia * ia).sum()
    assert f.infidelity == pytest.approx(float(((beta * ia - df) ** 2).mean()), rel=1e-4)

    # max-sensitivity: the largest relative L2 change of the map over the seeded uniform perturbations of
    # radius 2 % of the input's range that captum's sensitivity_max draws
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        moves = torch.empty(2, 1, 8, 8).uniform_(-0.02 * span, 0.02 * span)
    changes = [np.linalg.norm(ex.explain(ex.Subject.build(cnn, image_info(), x[0] + d, target=t), "occlusion",
                                         window=2, stride=2).attributions - e.attributions)
               / np.linalg.norm(e.attributions) for d in moves]
    assert f.sensitivity == pytest.approx(max(changes), rel=1e-4) and f.sensitivity > 0
    assert set(f.summary()) == {"deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc",
                                "infidelity", "sensitivity"}
