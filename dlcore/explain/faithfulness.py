"""How faithful is an explanation to the model? Deletion and insertion curves (Petsiuk et al. 2018, RISE) with
their areas, and captum.metrics' infidelity and max-sensitivity (Yeh et al. 2019).

Deletion removes the most important features first (replacing them with the baseline): a faithful map makes the
score fall fast (low AUC). Insertion starts from the baseline and adds them back: the score should rise fast
(high AUC). A random ordering is measured alongside as the yardstick.

Example:
    >>> f = faithfulness(subject, explanation)
    >>> f.deletion_auc, f.insertion_auc, f.infidelity, f.sensitivity
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlcore.explain.registry import RNG_LOCK, Explanation, get_method, run_method
from dlcore.explain.subject import Subject
from dlcore.inspect._hooks import model_lock


@dataclass
class Faithfulness:
    """Scores of one explanation. Curves are the explained probability (or output, for regression) at each
    fraction of features removed (deletion) or restored (insertion)."""
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    infidelity: float | None = None
    sensitivity: float | None = None

    def summary(self) -> dict:
        """The scalar scores (for tables and captions)."""
        return {"deletion_auc": self.deletion_auc, "insertion_auc": self.insertion_auc,
                "random_deletion_auc": self.random_deletion_auc, "random_insertion_auc": self.random_insertion_auc,
                "infidelity": self.infidelity, "sensitivity": self.sensitivity}


def _auc(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if x[-1] > x[0] else float(y.mean())


def _unit_mask(subject: Subject, chosen: np.ndarray) -> torch.Tensor:
    """A boolean mask over display units (pixels, tokens, cells, columns) expanded to attribution space (1, ...)."""
    shape = tuple(subject.inputs.shape)
    m = torch.as_tensor(chosen)
    if subject.kind == "image":
        return m.view(1, 1, *shape[2:]).expand(*shape)
    if subject.kind == "tokens":
        return m.view(1, shape[1], 1).expand(*shape)
    return m.view(*shape)


def perturbation_curves(subject: Subject, attribution_map: np.ndarray, steps: int = 20, seed: int = 0,
                        baseline: str = "zero") -> dict:
    """Deletion, insertion and random-order curves for a display map (one batched forward per curve)."""
    units = np.asarray(attribution_map, dtype=np.float64).reshape(-1)
    n = units.size
    steps = max(1, min(steps, n))
    ks = np.unique(np.round(np.linspace(0, n, steps + 1)).astype(int))
    x, b = subject.inputs, subject.baseline(baseline)
    orders = {"ranked": np.argsort(-units, kind="stable"),
              "random": np.random.default_rng(seed).permutation(n)}
    out = {"fractions": ks / n}
    with model_lock(subject.model), torch.no_grad():
        for name, order in orders.items():
            masks = []
            for k in ks:
                chosen = np.zeros(n, dtype=bool)
                chosen[order[:k]] = True
                masks.append(_unit_mask(subject, chosen))
            m = torch.cat(masks)  # (S, ...) True = the top-k features
            deleted = torch.where(m, b.expand_as(m), x.expand_as(m))
            inserted = torch.where(m, x.expand_as(m), b.expand_as(m))
            out[f"{name}_deletion"] = subject.probability(deleted).float().cpu().numpy()
            out[f"{name}_insertion"] = subject.probability(inserted).float().cpu().numpy()
    return out


def infidelity_score(subject: Subject, attributions: np.ndarray, noise: float = 0.05, n_perturb_samples: int = 10,
                     seed: int = 0) -> float:
    """captum.metrics.infidelity with Gaussian input noise (std = ``noise`` × the input's value range) and
    ``normalize=True`` (attributions rescaled optimally), so methods of different scales compare."""
    from captum.metrics import infidelity

    x = subject.inputs
    span = float(x.max() - x.min()) or 1.0
    g = torch.Generator().manual_seed(seed)

    def perturb(inputs):
        pert = torch.randn(inputs.shape, generator=g) * noise * span
        return pert, inputs - pert

    attr = torch.as_tensor(attributions, dtype=torch.float32).unsqueeze(0)
    with model_lock(subject.model):
        val = infidelity(subject.forward, perturb, x, attr, target=subject.target,
                         n_perturb_samples=n_perturb_samples, normalize=True)
    return float(val.mean())


def sensitivity_score(subject: Subject, method: str, params: dict, radius: float = 0.02,
                      n_perturb_samples: int = 5, seed: int = 0) -> float:
    """captum.metrics.sensitivity_max: the largest relative change of the explanation when the input moves
    within an L∞ ball of ``radius`` × its value range. Re-runs the method ``n_perturb_samples`` times."""
    from captum.metrics import sensitivity_max

    m = get_method(method)
    p = m.resolve(params)
    x = subject.inputs
    span = float(x.max() - x.min()) or 1.0

    def explanation(inp):
        as_tuple = isinstance(inp, tuple)  # captum hands the inputs over as a tuple and expects one back
        out = run_method(m, subject, inp[0] if as_tuple else inp, p)
        out = out[0] if isinstance(out, tuple) else out  # (attributions, extras)
        return (out,) if as_tuple else out

    # captum draws the perturbations from torch's global generator: model lock first, then the RNG lock
    with model_lock(subject.model), RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        val = sensitivity_max(explanation, x, perturb_radius=radius * span, n_perturb_samples=n_perturb_samples)
    return float(val.mean())


def faithfulness(subject: Subject, explanation: Explanation, steps: int = 20, infidelity: bool = True,
                 sensitivity: bool = False, n_perturb_samples: int = 5, seed: int = 0) -> Faithfulness:
    """Every faithfulness score of one explanation.

    Args:
        steps: points on the deletion/insertion curves.
        infidelity: compute captum's infidelity (cheap: a few forward passes).
        sensitivity: compute captum's max-sensitivity (re-runs the method ``n_perturb_samples`` times).
    """
    c = perturbation_curves(subject, explanation.map, steps=steps, seed=seed)
    fr = c["fractions"]
    return Faithfulness(
        fractions=fr, deletion=c["ranked_deletion"], insertion=c["ranked_insertion"],
        random_deletion=c["random_deletion"], random_insertion=c["random_insertion"],
        deletion_auc=_auc(c["ranked_deletion"], fr), insertion_auc=_auc(c["ranked_insertion"], fr),
        random_deletion_auc=_auc(c["random_deletion"], fr), random_insertion_auc=_auc(c["random_insertion"], fr),
        infidelity=infidelity_score(subject, explanation.attributions, seed=seed) if infidelity else None,
        sensitivity=(sensitivity_score(subject, explanation.method, explanation.params,
                                       n_perturb_samples=n_perturb_samples, seed=seed) if sensitivity else None))
