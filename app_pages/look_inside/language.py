"""Language: for a character language model, the next-character distribution under temperature / top-k / top-p,
step-by-step generation with each step's attention, and the logit lens; for a token classifier (sentiment,
reverse, sort), typed text → prediction, attention, Integrated-Gradients attributions and an edit-and-compare view.
Typed and generated text is user text: shown with st.text / st.code, never as Markdown."""
from __future__ import annotations

import numpy as np
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import ui


st.title("Language")
st.caption("Type text and watch a Transformer read it: a language model's next character and how sampling cuts "
           "its distribution, or a classifier's prediction and which characters it relied on.")

opened = ui.pick_run("attention", "language_run", ("lm-tiny", "pydoc-lm"))
if opened is None:
    st.stop()
run, model, ds = opened
info = ds.info
if info.input_kind != "tokens":
    st.info("This page reads text: pick a run on a text dataset (pydoc-lm, sentiment-synth, reverse or sort).")
    st.stop()
K = f"language_{run.id}"


def _labels(ids) -> list[str]:
    return [ui.text(t, "figure") for t in ins.token_labels(np.asarray(ids), info.vocab)]


def _heads(attn, labels, key: str, title: str) -> None:
    L = attn.shape[0]
    layers = st.multiselect("Layers", list(range(L)), default=list(range(L)), key=f"{key}_layers",
                            format_func=lambda i: f"layer {i + 1}")
    if layers:
        ui.show_figure(viz.attention_heads(attn, labels, layers=sorted(layers), title=title), key, key)


# ================================================================ language model
if info.task == "char-lm":
    if f"{K}_pending_prompt" in st.session_state:  # "next token" extends the prompt (before the widget exists)
        st.session_state[f"{K}_prompt"] = st.session_state.pop(f"{K}_pending_prompt")
    prompt = st.text_area("Prompt", "def ", key=f"{K}_prompt", height=80)
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key=f"{K}_temp",
                            help="Divides the logits; 0 always picks the most likely character.")
    top_k = int(c2.slider("Top-k (0 = off)", 0, len(info.vocab), 0, key=f"{K}_topk"))
    top_p = c3.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key=f"{K}_topp")
    n_new = int(c4.number_input("N characters", 1, 400, 40, key=f"{K}_n"))
    try:
        tokens, before, after = dlcore.next_token_distribution(model, info, prompt, max(temperature, 1e-6),
                                                               top_k=top_k, top_p=top_p)
    except (dlcore.DataError, dlcore.SpecError) as e:
        st.error(f"Cannot read this prompt: {ui.message(e)}")
        st.stop()
    ui.show_figure(viz.next_token_figure([ui.text(t, "figure") for t in tokens], before, after),
                   f"{K}_dist", "next-token")
    removed = int(((before > 0) & (after == 0)).sum())
    st.caption(f"The cut removes {removed} of {len(tokens)} characters; the rest are renormalised.")

    b1, b2, b3 = st.columns([1, 1, 4])
    gen_key = f"{K}_gen"
    go_n = None
    if b1.button("Next token", key=f"{K}_next"):
        go_n = 1
    if b2.button(f"Generate {n_new}", key=f"{K}_many"):
        go_n = n_new
    if go_n:
        try:
            g = dlcore.generate(model, prompt, max_new_tokens=go_n, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=int(st.session_state.get(f"{K}_seed", 0)), info=info)
        except (dlcore.DataError, dlcore.SpecError) as e:
            st.error(f"Cannot generate: {ui.message(e)}")
            st.stop()
        st.session_state[f"{K}_seed"] = int(st.session_state.get(f"{K}_seed", 0)) + 1
        st.session_state[gen_key] = g
        if go_n == 1:  # "next token" extends the prompt, one character at a time
            st.session_state[f"{K}_pending_prompt"] = prompt + g.text
            st.rerun()
    g = st.session_state.get(gen_key)
    if g is not None:
        st.subheader("Generated")
        st.code(ui.text(g.prompt + g.text, "plain"), language=None)
        st.caption(f"{len(g.steps)} characters at {g.tokens_per_s:.0f} characters/s.")
        step = int(st.slider("Step", 0, len(g.steps) - 1, len(g.steps) - 1, key=f"{K}_step")
                   if len(g.steps) > 1 else 0)
        s = g.steps[step]
        st.text(f"Step {step + 1}: chose {s.token!r} with probability {s.prob:.1%} (model: {s.model_prob:.1%}); "
                "candidates: " + ", ".join(f"{t!r} {p:.0%}" for t, p in s.top[:5]))
        ctx = np.asarray(g.context_ids(step))
        _, attn = ins.record_attention(model, ctx)
        _heads(attn, _labels(ctx), f"{K}_stepattn", f"Attention while choosing step {step + 1}")

    st.subheader("Logit lens")
    st.caption("What each block's residual stream would predict if the model stopped there.")
    try:
        ids = np.asarray(dlcore.encode_text(info, prompt[-info.input_shape[0]:], pad=False))
        lens = ins.logit_lens(model, ids, info, include_embedding=True)
        ui.show_figure(viz.logit_lens_figure(lens.top_probs, [[ui.text(t, "figure") for t in r] for r in lens.top_tokens],
                                             lens.rows, _labels(ids)), f"{K}_lens", "logit-lens")
    except (dlcore.DataError, dlcore.SpecError) as e:
        st.error(f"Cannot run the logit lens: {ui.message(e)}")

# ================================================================ token classifier / seq2seq
else:
    n_steps = info.input_shape[0]  # reverse/sort read exactly this many digits
    default = {"reverse": "1234567890" * 26, "sort": "3141592653" * 26}.get(info.name)
    default = default[:n_steps] if default else "the film was not good"
    typed_text = st.text_input("Text", default, key=f"{K}_text")
    try:
        r = ins.explain_text(model, info, typed_text)
    except (dlcore.DataError, dlcore.SpecError) as e:
        st.error(f"Cannot read this text: {ui.message(e)}")
        st.stop()
    st.text(f"Prediction: {r.prediction}   ({r.target_name}: {r.target_prob:.1%})")
    labels = _labels(r.ids)[: r.n_text]
    if r.attention is not None:
        st.subheader("Attention per head")
        _heads(r.attention[:, :, : r.n_text, : r.n_text], labels, f"{K}_attn", "Attention")
    st.subheader("Which characters mattered (Integrated Gradients)")
    panel = viz.Panel("Integrated Gradients", np.asarray(r.tokens), np.asarray(r.attributions), "tokens", labels,
                      caption=f"deletion AUC {r.deletion_auc:.2f} (random {r.random_deletion_auc:.2f}; lower = more faithful)")
    ui.show_figure(viz.attribution_figure(panel), f"{K}_ig", "attributions")
    st.caption(f"Deletion score: replacing the most important characters first drops the probability to an "
               f"average of {r.deletion_auc:.2f}, against {r.random_deletion_auc:.2f} in random order.")

    st.subheader("Edit and compare")
    edited = st.text_input("Edited text", typed_text, key=f"{K}_edited")
    try:
        cmp = ins.compare_texts(model, info, typed_text, edited)
    except (dlcore.DataError, dlcore.SpecError) as e:
        st.error(f"Cannot read the edited text: {ui.message(e)}")
        st.stop()
    panels = []
    for name, res in (("Before", cmp.before), ("After", cmp.after)):
        lab = _labels(res.ids)[: res.n_text]
        panels.append(viz.Panel(name, np.asarray(res.tokens), np.asarray(res.attributions), "tokens", lab,
                                caption=ui.text(f"{res.prediction} · {res.target_prob:.1%}", "figure")))
    ui.show_figure(viz.attribution_panels(panels), f"{K}_cmp", "edit-compare")
    st.text(f"Probability change: {cmp.prob_change:+.1%}" + ("  — the prediction flips" if cmp.flipped else ""))

    if info.per_step:  # reverse / sort: does the head that looks right actually matter?
        st.subheader("Head knock-out")
        st.caption("Knock out one head at a time (its output set to zero) and measure the test metric again, "
                   "next to how closely the head follows the task's known pattern. Heads that share a job show "
                   "no drop one by one; the 'alone' column keeps only that head in its layer.")
        if st.button("Measure every head", key=f"{K}_ko_go", icon=":material/science:"):
            with st.spinner("Evaluating the test set once per head…"):
                st.session_state[f"{K}_ko"] = (run.id, ins.run_knockout(run.id))
        ko_run, ko = st.session_state.get(f"{K}_ko", (None, None))
        if ko is not None and ko_run == run.id:
            ui.show_figure(viz.knockout_figure(ko.table, ko.metric, ko.before), f"{K}_ko_fig", "head-knockout")
            st.dataframe(ko.table[["head", "pattern_score", ko.metric, "drop", "alone"]], hide_index=True)
            chosen = st.multiselect("Knock out several heads together", list(ko.table["head"]), key=f"{K}_ko_heads")
            if chosen:
                res = ins.ablate(run.id, ",".join(chosen), limit=512)
                st.text(f"{res['metric']}: {res['before']:.3f} with every head → {res['after']:.3f} without "
                        f"{', '.join(res['heads'])} (drop {res['drop']:+.3f}, {res['examples']} test examples)")

