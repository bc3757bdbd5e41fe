"""One model shared by every session (the app caches models with ``st.cache_resource``): explanations,
attention captures and sanity checks running in several threads at once on the same model object give exactly
what they give one at a time, and leave the model as they found it."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dlcore.explain as ex
import dlcore.inspect as ins
from tests.inspect.tiny import token_info

N = 4  # calls of each kind per round


@pytest.fixture
def jobs(encoder, tokens):
    """Calls that each go through the shared encoder: the token path of an explanation swaps the embedding
    output with a hook, the attention recorder hooks every block and switches it to the explicit path, the
    sanity check deep-copies the model, and SmoothGrad draws from the global random generators."""
    info = token_info()

    def explain(i):
        s = ex.Subject.build(encoder, info, tokens[i % len(tokens)], position=i % 6)
        return [s.target, ex.explain(s, "integrated_gradients", n_steps=8).attributions]

    def smoothgrad(i):
        s = ex.Subject.build(encoder, info, tokens[i % len(tokens)])
        return [s.target, ex.explain(s, "smoothgrad", nt_samples=4, seed=i).attributions]

    def attention(i):
        return list(ins.record_attention(encoder, tokens[i % len(tokens)]))

    def sanity(i):
        s = ex.Subject.build(encoder, info, tokens[i % len(tokens)])
        res = ex.cascading_randomization(s, ["saliency"], max_layers=2, seed=i)
        return [res.original["saliency"], *res.maps["saliency"]]

    return {"explain": explain, "smoothgrad": smoothgrad, "attention": attention, "sanity": sanity}


def _same(got, want, what):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=what)


def test_concurrent_calls_on_one_model_give_their_single_threaded_results(encoder, jobs):
    alone = {(name, i): fn(i) for name, fn in jobs.items() for i in range(N)}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over often, so that unguarded steps interleave
    try:
        for _ in range(3):
            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = {(name, i): pool.submit(fn, i) for i in range(N) for name, fn in jobs.items()}
            for key, fut in futures.items():
                _same(fut.result(), alone[key], key)
    finally:
        sys.setswitchinterval(interval)
    assert ins.hook_count(encoder) == 0
    assert all(not b.attn.explicit for b in encoder.blocks)  # the fast attention path is back
