"""Pieces shared by every model family: the config base (what a family says about itself), the loss and
the activation table."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from dlcore.specs import SpecError, _SpecMixin, data_fields

if TYPE_CHECKING:
    from dlcore.data.base import DatasetInfo

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}

# inspection view -> what a model needs for it (the sentence shown when a model lacks it)
VIEWS = {
    "filters": "a CNN (or a ViT, whose patch embedding is a convolution)",
    "attention": "a Transformer (encoder, ViT or decoder)",
    "rnn": "an RNN, LSTM or GRU",
    "embeddings": "a classifier with one label per example (any family)",
    "explain": "any model",
}


class ModelConfig(_SpecMixin):
    """Base of the per-family configs (frozen dataclasses registered with ``@register_family``).

    A family owns its behaviour through these methods, so that no code elsewhere switches on the family:
    how it fits a dataset (:meth:`adapt`), what it reads (:meth:`example_input`, :meth:`sequence_length`),
    what it costs (:meth:`flops_per_sample`) and which inspection views apply (:meth:`views`).
    """
    family: str = ""  # set by register_family

    @property
    def family_label(self) -> str:
        """The family's display name ("CNN")."""
        from dlcore.models.registry import FAMILIES

        fam = FAMILIES.get(self.family)
        return fam.label if fam else self.family

    # ------------------------------------------------------------ fitting a dataset
    def adapt(self, info: DatasetInfo) -> ModelConfig:
        """This config with its data fields filled in so that the model reads ``info``'s data.

        Raises:
            SpecError: the family cannot read this kind of data; the message says what to choose instead.
        """
        return self.replace(**self._outputs(info))

    def _outputs(self, info: DatasetInfo) -> dict:
        """The head's fields every family takes from the data: outputs, loss, and per-step outputs."""
        out = {"num_outputs": info.num_outputs, "loss": info.loss}
        if "per_step" in data_fields(type(self)):
            out["per_step"] = info.per_step
        return out

    def with_data_of(self, other: ModelConfig) -> ModelConfig:
        """This config fitted to the same data as ``other`` (its data fields copied, and whatever
        :meth:`adapt` derives from them): ``preset.with_data_of(run.model) == run.model`` when the run
        used that preset. Not validated; for comparisons."""
        return self.unchecked_replace(**{n: getattr(other, n) for n in data_fields(type(self))})

    # ------------------------------------------------------------ what the model reads and costs
    def example_input(self, batch: int = 1, device: str | torch.device = "cpu",
                      seq_len: int | None = None) -> torch.Tensor:
        """A zero input of the shape the model reads (token ids are long tensors).

        Args:
            seq_len: steps of a sequence model's example (its own length when None); ignored by others.
        """
        raise NotImplementedError(f"{type(self).__name__} does not say what its input looks like")

    def sequence_length(self, info: DatasetInfo) -> int | None:
        """The length of the sequence this model reads for that data (tokens, steps, image rows, patches);
        None for models that read no sequence."""
        return None

    def flops_per_sample(self, seq_len: int | None = None) -> int:
        """Forward FLOPs of one example (multiply-add = 2), counted on the meta device, cached per config.

        Args:
            seq_len: the sequence length read (:meth:`sequence_length`); None for the model's own.
        """
        from dlcore.models.summary import forward_flops

        return forward_flops(self, seq_len)

    # ------------------------------------------------------------ inspection views
    def views(self) -> frozenset[str]:
        """The inspection views (keys of ``VIEWS``) that apply to this model."""
        one_label = getattr(self, "loss", "ce") == "ce" and not getattr(self, "per_step", False)
        return frozenset({"explain"} | ({"embeddings"} if one_label else set()))

    def view_unavailable(self, view: str) -> str | None:
        """None when the view applies, else a sentence saying what it needs.

        Raises:
            ValueError: an unknown view.
        """
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
        return None if view in self.views() else f"this view needs {VIEWS[view]}"


_PROBING = [False]  # families_for() is asking every family: refusals then skip their own suggestions


def data_name(info: DatasetInfo) -> str:
    """The name a user knows a dataset by: an upload's given title, else the registry name."""
    return info.title if info.name.startswith("user-") and info.title else info.name


def families_for(info: DatasetInfo) -> list[str]:
    """Labels of the registered families of which a config (the defaults or a preset) can read this data:
    tried, not assumed."""
    from dlcore.models import PRESETS
    from dlcore.models.registry import list_families

    out, _PROBING[0] = [], True
    try:
        for fam in list_families():
            for config in [fam.config()] + [p.config for p in PRESETS.values() if p.config.family == fam.name]:
                try:
                    config.adapt(info)
                except (SpecError, ValueError):
                    continue
                out.append(fam.label)
                break
    finally:
        _PROBING[0] = False
    return out


def refuse(why: str, info: DatasetInfo, field: str = "family") -> None:
    """Raise SpecError saying why this family cannot read the data and which families can.

    Example:
        >>> refuse("a CNN needs image data; 'people' holds tabular data", info)
        SpecError: a CNN needs image data; 'people' holds tabular data: pick the MLP family
    """
    if _PROBING[0]:
        raise SpecError(field, why)
    names = families_for(info)
    if not names:
        raise SpecError(field, f"{why}; no model family can read it")
    pick = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise SpecError(field, f"{why}: pick the {pick} family")


def refuse_tables(config: ModelConfig, info: DatasetInfo) -> None:
    """Sequence and image models cannot read a row of features."""
    if info.input_kind == "tabular":
        refuse(f"{data_name(info)!r} is a table of features, which a {config.family_label} cannot read", info)


def read_as_sequence(info: DatasetInfo) -> dict:
    """Input fields of a model reading the data as a sequence (tokens, feature steps or image rows)."""
    shape = info.input_shape
    if info.input_kind == "tokens":
        return {"vocab_size": len(info.vocab), "max_len": shape[0]}
    if info.input_kind == "image":  # (C, H, W) read row by row: H steps of C×W values
        return {"vocab_size": 0, "input_size": shape[0] * shape[2], "max_len": shape[1]}
    return {"vocab_size": 0, "input_size": shape[1], "max_len": shape[0]}  # sequence (T, F)


def sequence_steps(info: DatasetInfo) -> int | None:
    """Steps of the data read as a sequence: tokens or steps, or rows of an image; None for tables."""
    kind, shape = info.input_kind, info.input_shape
    return shape[0] if kind in ("sequence", "tokens") else shape[1] if kind == "image" else None


def pixel_stats(info: DatasetInfo) -> dict:
    """Normalisation applied inside image models (inputs stay in pixel units outside)."""
    return {"input_mean": float(info.pixel_mean), "input_std": float(info.pixel_std)}


def compute_loss(output: torch.Tensor, targets: torch.Tensor | None, loss: str) -> torch.Tensor | None:
    """Cross-entropy (per example or per step) or mean-squared error; None without targets."""
    if targets is None:
        return None
    if loss == "ce":
        return F.cross_entropy(output.reshape(-1, output.size(-1)), targets.reshape(-1))
    if loss == "mse":
        return F.mse_loss(output.reshape(targets.shape), targets)
    raise SpecError("loss", f"loss must be ce or mse, got {loss!r}")


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for conv/dense layers, as Keras does: the tutorial models
    reach their published accuracy in fewer epochs with it than with PyTorch's default init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
