"""Hidden states and gates recomputed from the weights agree with nn.LSTM / nn.GRU / nn.RNN."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
import dlcore.inspect as ins
from tests.inspect.tiny import make


def _previous(h: torch.Tensor, backward: bool) -> torch.Tensor:
    """The state each step starts from, (B, T, H): the neighbouring step's, zero at the sequence start."""
    zero = torch.zeros_like(h[:, :1])
    return torch.cat([h[:, 1:], zero], 1) if backward else torch.cat([zero, h[:, :-1]], 1)


def _documented_gates(rnn, cell: str, r: dict, inp: torch.Tensor) -> dict:
    """Gates from the equations in the nn.LSTM / nn.GRU docs, each from its own slice of the weights
    (LSTM rows i, f, g, o; GRU rows r, z, n), all steps at once from the reported previous states."""
    sfx = f"_l{r['layer']}" + ("_reverse" if r["direction"] == "backward" else "")
    H = rnn.hidden_size
    h_prev = _previous(r["h"], r["direction"] == "backward")

    def part(k):  # (input part, hidden part) of gate row block k
        rows = slice(k * H, (k + 1) * H)
        w_ih, w_hh = getattr(rnn, "weight_ih" + sfx)[rows], getattr(rnn, "weight_hh" + sfx)[rows]
        b_ih, b_hh = getattr(rnn, "bias_ih" + sfx)[rows], getattr(rnn, "bias_hh" + sfx)[rows]
        return inp @ w_ih.T + b_ih, h_prev @ w_hh.T + b_hh

    if cell == "lstm":
        i, f, g, o = (sum(part(k)) for k in range(4))
        return {"i": torch.sigmoid(i), "f": torch.sigmoid(f), "g": torch.tanh(g), "o": torch.sigmoid(o)}
    rg, zg = (torch.sigmoid(sum(part(k))) for k in range(2))
    xn, hn = part(2)
    return {"r": rg, "z": zg, "n": torch.tanh(xn + rg * hn)}


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("lstm", True), ("gru", False), ("gru", True),
                                                ("rnn", False)])
def test_recompute_matches_the_torch_module(cell, bidirectional):
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        3, 5, num_layers=2, batch_first=True, bidirectional=bidirectional).eval()
    x = torch.randn(4, 7, 3)
    with torch.no_grad():
        out, state = rnn(x)
        layers = ins.recompute(rnn, x)
    dirs = 2 if bidirectional else 1
    assert len(layers) == 2 * dirs
    top = torch.cat([r["h"] for r in layers[-dirs:]], dim=-1)
    torch.testing.assert_close(top, out, rtol=1e-5, atol=1e-5)
    h_n = state[0] if cell == "lstm" else state  # (layers * dirs, B, H)
    for k, r in enumerate(layers):
        last = r["h"][:, 0] if r["direction"] == "backward" else r["h"][:, -1]
        torch.testing.assert_close(last, h_n[k], rtol=1e-5, atol=1e-5)
        if cell == "lstm":
            c_last = r["c"][:, 0] if r["direction"] == "backward" else r["c"][:, -1]
            torch.testing.assert_close(c_last, state[1][k], rtol=1e-5, atol=1e-5)
        if cell != "rnn":  # gates as documented, and they produce the reported states
            inp = x if r["layer"] == 0 else torch.cat([q["h"] for q in layers[:dirs]], dim=-1)
            for g, ref in _documented_gates(rnn, cell, r, inp).items():
                torch.testing.assert_close(r[g], ref, rtol=1e-5, atol=1e-5, msg=f"{g} of {r['direction']} layer")
            h_prev = _previous(r["h"], r["direction"] == "backward")
            if cell == "lstm":
                c_prev = _previous(r["c"], r["direction"] == "backward")
                torch.testing.assert_close(r["c"], r["f"] * c_prev + r["i"] * r["g"], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(r["h"], r["o"] * torch.tanh(r["c"]), rtol=1e-5, atol=1e-5)
            else:
                torch.testing.assert_close(r["h"], (1 - r["z"]) * r["n"] + r["z"] * h_prev, rtol=1e-5, atol=1e-5)


def test_rnn_states_of_a_dlcore_model_reproduce_its_output():
    model = make(dlcore.RNNConfig(cell="lstm", input_size=3, hidden_size=6, num_layers=2, num_outputs=4))
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    st = ins.rnn_states(model, x)
    assert st.cell == "lstm" and [(r["layer"], r["direction"]) for r in st.layers] == [(0, "forward"), (1, "forward")]
    assert st.layers[0]["i"].shape == (7, 6)
    with torch.no_grad():
        logits = model.head(torch.as_tensor(st.layers[-1]["h"][-1]))
    np.testing.assert_allclose(logits.numpy(), st.output, rtol=1e-5, atol=1e-5)


def test_token_gru_trajectories_and_pca():
    model = make(dlcore.RNNConfig(cell="gru", vocab_size=10, embed_dim=4, hidden_size=5, num_layers=1,
                                  num_outputs=10, per_step=True))
    x = torch.randint(0, 10, (6, 8), generator=torch.Generator().manual_seed(0))
    h = ins.hidden_trajectories(model, x)
    with torch.no_grad():
        ref, _ = model.rnn(model.embed(x))
    np.testing.assert_allclose(h, ref.numpy(), rtol=1e-5, atol=1e-5)
    pts, ev = ins.pca_trajectories(h, 2)
    assert pts.shape == (6, 8, 2) and len(ev) == 2 and ev[0] >= ev[1]
    assert set(ins.rnn_states(model, x[0]).layers[0]) >= {"h", "r", "z", "n"}
    with pytest.raises(TypeError, match="recurrent"):
        ins.rnn_states(make(dlcore.MLPConfig(in_features=4)), np.zeros(4))
