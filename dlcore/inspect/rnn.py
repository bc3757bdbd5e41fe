"""Recurrent internals: hidden states of every layer at every step, and LSTM/GRU gate activations.

``nn.LSTM`` returns only the top layer's outputs and no gates, so the recurrence is recomputed here from the
module's own weights (``weight_ih_l{k}``, ``weight_hh_l{k}``, biases; PyTorch's gate order i, f, g, o for LSTM
and r, z, n for GRU). The tests check the result against ``nn.LSTM``/``nn.GRU``/``nn.RNN`` outputs.

Example:
    >>> st = rnn_states(model, x)          # x: one example (T, F) or (T,) tokens
    >>> st.layers[0]["h"].shape            # (T, hidden) of layer 0, forward direction
    >>> st.layers[0]["i"]                  # LSTM input gate, (T, hidden)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlcore.inspect._hooks import model_lock, to_batch

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ()}
GATE_NAMES = {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate",
              "r": "reset gate", "z": "update gate", "n": "new state candidate"}


@dataclass
class RNNStates:
    """Per layer and direction: {"layer", "direction", "h": (T, H), "c": (T, H) for LSTM, gates: (T, H)}."""
    cell: str
    layers: list[dict] = field(default_factory=list)
    output: np.ndarray | None = None  # the model's output for the example


def _cell_of(rnn: nn.RNNBase) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    return "rnn"


def _run_direction(rnn: nn.RNNBase, cell: str, x: torch.Tensor, layer: int, reverse: bool) -> dict:
    """One layer, one direction over x (B, T, in) from zero state; returns tensors (B, T, H) per quantity."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
    b_ih = getattr(rnn, "bias_ih" + sfx) if rnn.bias else torch.zeros(w_ih.shape[0], dtype=x.dtype, device=x.device)
    b_hh = getattr(rnn, "bias_hh" + sfx) if rnn.bias else torch.zeros(w_hh.shape[0], dtype=x.dtype, device=x.device)
    if getattr(rnn, "proj_size", 0):
        raise ValueError("LSTMs with proj_size are not supported by the gate view")
    B, T, _ = x.shape
    H = rnn.hidden_size
    h = torch.zeros(B, H, dtype=x.dtype, device=x.device)
    c = torch.zeros(B, H, dtype=x.dtype, device=x.device)
    xi = x @ w_ih.T + b_ih  # (B, T, gates*H): the input part of every gate at once
    steps = range(T - 1, -1, -1) if reverse else range(T)
    out = {k: [None] * T for k in ("h", "c", *GATES[cell])}
    for t in steps:
        hh = h @ w_hh.T + b_hh  # (B, gates*H)
        if cell == "lstm":
            i, f, g, o = (xi[:, t] + hh).chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            vals = {"i": i, "f": f, "g": g, "o": o, "c": c}
        elif cell == "gru":
            xr, xz, xn = xi[:, t].chunk(3, dim=1)
            hr, hz, hn = hh.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            vals = {"r": r, "z": z, "n": n}
        else:
            act = torch.relu if rnn.nonlinearity == "relu" else torch.tanh
            h = act(xi[:, t] + hh)
            vals = {}
        out["h"][t] = h
        for k, v in vals.items():
            out[k][t] = v
    return {k: torch.stack(v, dim=1) for k, v in out.items() if v[0] is not None}  # each (B, T, H)


def recompute(rnn: nn.RNNBase, x: torch.Tensor) -> list[dict]:
    """Every layer and direction of a batch-first ``nn.RNN/LSTM/GRU`` over x (B, T, in), from zero state.

    Returns a list (layer-major, forward before backward) of dicts of tensors (B, T, H): "h", LSTM "c" and
    the gates. Layer outputs feed the next layer as in PyTorch (dropout is off in eval mode).
    """
    if not rnn.batch_first:
        raise ValueError("expected a batch_first recurrent module")
    cell = _cell_of(rnn)
    res, inp = [], x
    for layer in range(rnn.num_layers):
        dirs = [_run_direction(rnn, cell, inp, layer, False)]
        if rnn.bidirectional:
            dirs.append(_run_direction(rnn, cell, inp, layer, True))
        for d, r in enumerate(dirs):
            res.append({"layer": layer, "direction": "backward" if d else "forward", **r})
        inp = torch.cat([r["h"] for r in dirs], dim=-1)  # (B, T, H * dirs)
    return res


def _rnn_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the model feeds its recurrent module (embeddings for tokens, rows for images)."""
    if getattr(model, "embed", None) is not None:
        return model.embed(x)  # (B, T, E)
    if x.dim() == 4:
        return x.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W): image rows as steps
    return x


def rnn_states(model: nn.Module, x) -> RNNStates:
    """Hidden states (and gates) of every layer of a dlcore RNN for one example.

    Args:
        model: a dlcore RNN (``model.rnn`` is an nn.RNN, nn.LSTM or nn.GRU, batch-first).
        x: one example: (T, F) features, (T,) token ids or (C, H, W) image read row by row.
    """
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, nn.RNNBase):
        raise TypeError(f"{type(model).__name__} has no recurrent layer (expected model.rnn to be an RNN/LSTM/GRU)")
    xb = to_batch(x, model, single=True)
    with model_lock(model), torch.no_grad():
        layers = recompute(rnn, _rnn_input(model, xb))
        out = model(xb)[0]
    cell = _cell_of(rnn)
    return RNNStates(cell, [{k: (v[0].float().cpu().numpy() if isinstance(v, torch.Tensor) else v)
                             for k, v in r.items()} for r in layers], out[0].float().cpu().numpy())


def hidden_trajectories(model: nn.Module, xs, layer: int = -1, direction: str = "forward") -> np.ndarray:
    """Hidden states of one layer for several examples: (N, T, H) — the input to a PCA trajectory plot."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, nn.RNNBase):
        raise TypeError(f"{type(model).__name__} has no recurrent layer")
    xb = to_batch(xs, model, single=False)
    with model_lock(model), torch.no_grad():
        layers = recompute(rnn, _rnn_input(model, xb))
    layer = layer % rnn.num_layers
    for r in layers:
        if r["layer"] == layer and r["direction"] == direction:
            return r["h"].float().cpu().numpy()
    raise ValueError(f"no {direction} direction in layer {layer}")


def pca_trajectories(h: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project hidden states (N, T, H) with one PCA fitted on all steps of all examples.

    Returns:
        (points (N, T, n_components), explained variance ratio per component).
    """
    from sklearn.decomposition import PCA

    N, T, H = h.shape
    k = min(n_components, H, N * T)
    pca = PCA(n_components=k, random_state=0)
    flat = pca.fit_transform(h.reshape(N * T, H))
    return flat.reshape(N, T, k), pca.explained_variance_ratio_
