"""The registered attribution methods: thin adapters from a :class:`Subject` to captum and shap (the libraries
do the work; nothing here re-implements them). Each ``_run_*`` takes inputs (B, ...) in attribution space."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcore.explain.registry import Method, choice, flag, number, register
from dlcore.explain.subject import Subject


# ---------------------------------------------------------------- applicability
def _last_conv(model: nn.Module) -> nn.Conv2d | None:
    """The last conv layer of a CNN's conv stack (``model.features``); None for models without one."""
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Module):
        return None
    convs = [m for m in feats.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def _needs_conv(model: nn.Module) -> str | None:
    return None if _last_conv(model) is not None else "Grad-CAM needs convolutional layers (a CNN)"


def _expand_baseline(b: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return b.expand_as(inputs) if b.shape[0] == 1 else b


def _baseline(subject: Subject, inputs: torch.Tensor, kind: str) -> torch.Tensor:
    return _expand_baseline(subject.baseline(kind), inputs)


# ---------------------------------------------------------------- gradients
def _run_saliency(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import Saliency

    return Saliency(s.forward).attribute(inputs, target=s.target, abs=p["absolute"])


def _run_ig(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import IntegratedGradients

    attr, delta = IntegratedGradients(s.forward).attribute(
        inputs, baselines=_baseline(s, inputs, p["baseline"]), target=s.target, n_steps=p["n_steps"],
        method=p["integration"], return_convergence_delta=True)
    return attr, {"convergence_delta": float(delta.abs().max())}


def _noise_std(inputs: torch.Tensor, noise: float) -> float:
    """SmoothGrad's noise as a share of the input's value range (Smilkov et al. 2017 use 10–20 %)."""
    span = float(inputs.max() - inputs.min())
    return noise * (span if span > 0 else 1.0)


def _run_smoothgrad(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import NoiseTunnel, Saliency

    return NoiseTunnel(Saliency(s.forward)).attribute(
        inputs, nt_type=p["nt_type"], nt_samples=p["nt_samples"], stdevs=_noise_std(inputs, p["noise"]),
        target=s.target, abs=p["absolute"])


def _run_grad_cam(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import LayerAttribution, LayerGradCam

    layer = _last_conv(s.model)
    cam = LayerGradCam(s.forward, layer).attribute(inputs, target=s.target, relu_attributions=p["relu"])  # (B, 1, h, w)
    size = tuple(inputs.shape[-2:])
    up = LayerAttribution.interpolate(cam, size, interpolate_mode=p["interpolation"])  # (B, 1, H, W)
    return up.expand_as(inputs) / inputs.shape[1]  # spread over channels so the channel sum is the CAM


# ---------------------------------------------------------------- perturbation
def _window(s: Subject, inputs: torch.Tensor, size: int, stride: int) -> tuple[tuple, tuple]:
    """Occlusion window and strides in attribution space for each input kind."""
    shape = tuple(inputs.shape[1:])
    if s.kind == "image":
        c, h, w = shape
        k = min(size, h, w)
        return (c, k, k), (c, min(stride, k), min(stride, k))
    if s.kind in ("tokens", "sequence"):  # a run of whole steps (all features / embedding dims)
        t, f = shape
        k = min(size, t)
        return (k, f), (min(stride, k), f)
    k = min(size, shape[0])
    return (k,), (min(stride, k),)


def _run_occlusion(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import Occlusion

    window, strides = _window(s, inputs, p["window"], p["stride"])
    return Occlusion(s.forward).attribute(inputs, sliding_window_shapes=window, strides=strides,
                                          baselines=_baseline(s, inputs, p["baseline"]), target=s.target,
                                          perturbations_per_eval=64)


def _superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels (scikit-image) of an (H, W) or (H, W, 3) image as integer labels from 0."""
    from skimage.segmentation import slic

    img = np.asarray(image, dtype=np.float64)
    span = img.max() - img.min()
    img = (img - img.min()) / span if span > 0 else img
    labels = slic(img, n_segments=n_segments, compactness=compactness, start_label=0,
                  channel_axis=-1 if img.ndim == 3 else None)
    _, labels = np.unique(labels, return_inverse=True)  # consecutive ids
    return labels.reshape(img.shape[:2])


def lime_feature_mask(s: Subject, n_segments: int = 50, compactness: float = 0.3) -> torch.Tensor:
    """LIME's interpretable features: superpixels for images, tokens or time steps for sequences, columns for tables."""
    if s.kind == "image":
        return s.feature_mask(_superpixels(s.display_input(), n_segments, compactness))
    return s.feature_mask()


def _interpretable_model(name: str, alpha: float):
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression, SkLearnRidge

    if name == "ridge":
        return SkLearnRidge(alpha=alpha)
    if name == "lasso":
        return SkLearnLasso(alpha=alpha)
    return SkLearnLinearRegression()


def _run_lime(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    mask = lime_feature_mask(s, p["n_segments"], p["compactness"])
    mask = mask.expand(inputs.shape[0], *mask.shape[1:])
    lime = Lime(s.forward, interpretable_model=_interpretable_model(p["surrogate"], p["alpha"]),
                similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=p["kernel_width"]))
    return lime.attribute(inputs, baselines=_baseline(s, inputs, "zero"), target=s.target, feature_mask=mask,
                          n_samples=p["n_samples"], perturbations_per_eval=min(p["n_samples"], 64))


# ---------------------------------------------------------------- SHAP
def _run_gradient_shap(s: Subject, inputs: torch.Tensor, p: dict):
    from captum.attr import GradientShap

    background = s.background_inputs(p["background"], seed=p["seed"])
    return GradientShap(s.forward).attribute(inputs, baselines=background, n_samples=p["n_samples"],
                                             stdevs=_noise_std(inputs, p["noise"]), target=s.target)


class TargetOutput(nn.Module):
    """A module returning one output column of a subject, (B, 1): shap's GradientExplainer explains every output
    of the model it gets, so handing it only the explained one costs one gradient per sample instead of K."""

    def __init__(self, subject: Subject):
        super().__init__()
        self.subject = subject
        self.model = subject.model  # registered so shap sees parameters (its framework check)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.subject.forward(inp)[:, self.subject.target: self.subject.target + 1]


def _run_shap_gradient(s: Subject, inputs: torch.Tensor, p: dict):
    import shap

    background = s.background_inputs(p["background"], seed=p["seed"])
    explainer = shap.GradientExplainer(TargetOutput(s), background, batch_size=p["batch_size"],
                                       local_smoothing=p["local_smoothing"])
    values = explainer.shap_values(inputs, nsamples=p["nsamples"], rseed=p["seed"])
    values = np.asarray(values)
    if values.ndim == inputs.dim() + 1:  # trailing output axis (one output)
        values = values[..., 0]
    return torch.as_tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------- the registry
_SEED = number("seed", 0, (0, 2**31 - 1), "random seed (the method's sampling is repeatable)")
_BASELINE = choice("baseline", "zero", ("zero", "mean"),
                   "reference input: zero (black image, zero embedding, series mean) or the training-set mean")

register(Method(
    "saliency", "Saliency", "captum",
    "Gradient of the output with respect to each input value (Simonyan et al. 2014): what would change the score most.",
    (flag("absolute", True, "show gradient magnitudes"),), _run_saliency))

register(Method(
    "integrated_gradients", "Integrated Gradients", "captum",
    "Gradients averaged along the straight path from a baseline to the input (Sundararajan et al. 2017); "
    "attributions add up to f(x) − f(baseline).",
    (number("n_steps", 50, (2, 1000), "integration steps"),
     choice("integration", "gausslegendre", ("gausslegendre", "riemann_trapezoid", "riemann_middle"),
            "integral approximation"),
     _BASELINE), _run_ig))

register(Method(
    "smoothgrad", "SmoothGrad", "captum",
    "Saliency averaged over noisy copies of the input (Smilkov et al. 2017, captum NoiseTunnel): less speckle.",
    (number("nt_samples", 25, (1, 500), "noisy samples"),
     number("noise", 0.15, (0.0, 1.0), "noise standard deviation as a share of the input's value range"),
     choice("nt_type", "smoothgrad", ("smoothgrad", "smoothgrad_sq", "vargrad"), "how the samples are combined"),
     flag("absolute", True, "average gradient magnitudes"), _SEED), _run_smoothgrad))

register(Method(
    "grad_cam", "Grad-CAM", "captum",
    "Last conv layer's feature maps weighted by their average gradient (Selvaraju et al. 2017), upsampled to the "
    "image.",
    (flag("relu", True, "keep only evidence for the class"),
     choice("interpolation", "bilinear", ("bilinear", "nearest"), "upsampling to the input size")),
    _run_grad_cam, applies=_needs_conv))

register(Method(
    "occlusion", "Occlusion", "captum",
    "Slide a patch of baseline values over the input and record how much the score drops (Zeiler & Fergus 2014).",
    (number("window", 4, (1, 64), "patch size (pixels, or steps/tokens)"),
     number("stride", 2, (1, 64), "step between patches"), _BASELINE), _run_occlusion))

register(Method(
    "gradient_shap", "GradientSHAP", "captum",
    "Expected gradients from random training examples as baselines (captum GradientShap): approximates SHAP values.",
    (number("n_samples", 20, (1, 1000), "random baseline/noise samples"),
     number("background", 20, (1, 500), "training examples used as baselines"),
     number("noise", 0.0, (0.0, 1.0), "input noise as a share of the value range"), _SEED), _run_gradient_shap))

register(Method(
    "shap_gradient", "SHAP GradientExplainer", "shap",
    "shap's expected-gradients explainer (Lundberg & Lee 2017) over a background of training examples.",
    (number("nsamples", 200, (10, 5000), "samples of (background, path position)"),
     number("background", 50, (1, 1000), "training examples in the background"),
     number("local_smoothing", 0.0, (0.0, 1.0), "noise added to the input (shap's local_smoothing)"),
     number("batch_size", 50, (1, 1000), "samples per gradient batch"), _SEED), _run_shap_gradient))

register(Method(
    "lime", "LIME", "captum",
    "Fit a linear surrogate to the model's scores on random on/off masks of interpretable features (Ribeiro et al. "
    "2016): SLIC superpixels for images, tokens or time steps for sequences, columns for tables.",
    (number("n_samples", 200, (10, 5000), "random masks evaluated"),
     number("n_segments", 50, (2, 1000), "superpixels (images)"),
     number("compactness", 0.3, (0.001, 100.0), "superpixel compactness (SLIC)"),
     number("kernel_width", 1.0, (0.01, 100.0), "width of the similarity kernel (cosine distance)"),
     choice("surrogate", "ridge", ("ridge", "lasso", "linear"), "interpretable model"),
     number("alpha", 1.0, (0.0, 1000.0), "regularisation of the surrogate (ridge/lasso)"), _SEED), _run_lime))
