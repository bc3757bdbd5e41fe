"""Hidden states and gates recomputed from the weights agree with nn.LSTM / nn.GRU / nn.RNN."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
import dlcore.inspect as ins
from tests.inspect.tiny import make


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
            for g in "ifo":
                assert 0 <= float(r[g].min()) and float(r[g].max()) <= 1


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
