"""Attention: every head of every layer for one input, attention rollout across layers, the [CLS] rollout of a
ViT over its image, and — for the reverse and sort tasks — how closely each head follows the pattern the task
needs (reverse: the anti-diagonal). A running run shows its latest checkpoint and refreshes itself; the epoch
slider scrubs the per-epoch snapshots, and "watch the heads specialise" plays them."""
from __future__ import annotations

import numpy as np
import streamlit as st

import dlcore
import dlcore.inspect as ins
from dlcore import viz
from app_pages.common import ui


@st.cache_data(max_entries=256, show_spinner=False)
def _attention(run_id: str, root: str, epoch: int, version: float, x: np.ndarray) -> np.ndarray:
    """(layers, heads, T, T) attention of one epoch's snapshot for one input (cached per snapshot file)."""
    return ins.record_attention(ui.run_model(run_id, root, epoch)[1], x)[1]


def watch_heads_specialise(run, x: np.ndarray, keep: int, labels: list, expected) -> None:
    """One layer's heads for this input through the snapshots, played as an animation; with the share of
    attention on the expected keys per epoch when the task has a pattern."""
    snaps = ui.snapshots(run.id, root)
    st.subheader("Watch the heads specialise")
    if len(snaps) < 2:
        st.caption("This run kept no per-epoch snapshots" + (" yet: one is written at every epoch end."
                                                              if run.status == "running" else "."))
        return
    epochs = [s.epoch for s in snaps]
    with st.spinner(f"Loading {len(epochs)} snapshots…"):
        per_epoch = [_attention(run.id, root, e, ui.model_version(run.id, e), np.asarray(x)) for e in epochs]
    L = per_epoch[-1].shape[0]
    scores = [ins.pattern_scores(a, expected) for a in per_epoch] if expected is not None else None
    first = int(np.argmax(scores[-1].max(1))) if scores else L - 1  # the layer whose head learned the pattern
    li = st.selectbox("Layer", list(range(L)), index=first, key=f"attention_anim_layer_{run.id}",
                      format_func=lambda i: f"layer {i + 1}") if L > 1 else 0
    frames = [a[li, :, :keep, :keep] for a in per_epoch]
    notes = [f"best head {float(s[li].max()):.0%} on the expected keys" for s in scores] if scores else None
    ui.show_figure(viz.heads_animation(frames, epochs, labels=notes, title=f"layer {li + 1}"), "attention_anim",
                   f"attention-heads-epochs-layer{li + 1}")
    st.caption(f"Press ▶ Play, or drag the slider under the maps: the heads of layer {li + 1} for this input in "
               f"{len(epochs)} snapshots, from the random start (epoch 0, close to uniform) to epoch {epochs[-1]}.")


st.title("Attention")
st.caption("Which tokens each head looks at for one input. Rows are the attending positions (queries), columns "
           "the positions they read (keys); every row sums to 1.")

root = str(dlcore.data_dir())
opened = ui.pick_run("attention", "attention_run", ("transformer-tiny", "reverse"), running=True)
if opened is None:
    st.stop()


def body(run, model, ds, epoch: int | None) -> None:
    run_id, info, cfg = run.id, ds.info, model.config
    after = f" after epoch {epoch}" if epoch is not None else ""
    is_vit = cfg.kind == "vit"

    n_test = ins.split_size(ds)
    c1, c2 = st.columns([1, 1])
    with c1:
        index = int(st.number_input(f"Test example (0–{n_test - 1})", 0, n_test - 1, 0, key="attention_index"))
    x, y = ins.example(ds, index)
    pred, attn = ins.record_attention(model, x)  # attn (layers, heads, T, T)
    L, H, T = attn.shape[0], attn.shape[1], attn.shape[-1]

    keep = T
    if info.input_kind == "tokens":
        labels = [ui.text(t, "figure") for t in ins.token_labels(x, info.vocab)]  # the characters of a user's text
        keep = dlcore.unpadded_length(info, x)  # padded text: hide the padding after the text
        with c2:
            if keep < T and not st.toggle(f"Hide the {T - keep} padding tokens", True, key="attention_hidepad"):
                keep = T
        attn_shown, labels = attn[:, :, :keep, :keep], labels[:keep]
    else:
        labels = ins.position_labels(model, T)
        attn_shown = attn

    with c2:
        if info.loss == "ce":
            guess = pred.argmax(-1)
            shown_x, shown_y, shown_guess = x, y, guess
            if info.input_kind == "tokens":  # without the hidden padding
                shown_x = x[:keep]
                if info.per_step:
                    shown_y, shown_guess = y[:keep], guess[:keep]
            st.markdown(f"**Input** {ui.text(ins.describe(info, shown_x))}  \n"
                        f"**True** {ui.text(ins.label_text(info, shown_y))}  \n"
                        f"**Predicted** {ui.text(ins.label_text(info, shown_guess))}")
    if is_vit:
        st.caption(f"A ViT reads {T - 1} patches of {cfg.patch_size}×{cfg.patch_size} pixels plus a [CLS] token whose "
                   "final state is classified.")

    # ---------------------------------------------------------------- expected pattern (reverse / sort)
    task = info.expected_attention
    highlight, expected = {}, None
    if task:
        expected = ins.expected_attention(task, x)
        scores = ins.pattern_scores(attn, expected)
        best = np.unravel_index(np.argmax(scores), scores.shape)
        chance = float((expected > 0).sum(1).mean() / T)
        st.subheader(f"The pattern the {task} task needs")
        st.markdown(
            {"reverse": "Output position *i* must read input position *T−1−i*: a head doing this shows the "
                        "**anti-diagonal**.",
             "sort": "Output position *i* must read the inputs holding the *i*-th smallest digit."}.get(task, "")
            + f" Best head: **layer {best[0] + 1}, head {best[1] + 1}** puts **{scores[best]:.0%}** of its attention "
              f"on the expected keys (uniform attention would put {chance:.0%}).")
        highlight = {(li, hi): f"{scores[li, hi]:.0%}" for li in range(L) for hi in range(H)}
        p1, p2 = st.columns(2)
        with p1:
            ui.show_figure(viz.pattern_scores_figure(scores, chance), "attention_scores", "pattern-scores")
        with p2:
            ui.show_figure(viz.attention_matrix(expected, labels, title="Expected attention"), "attention_expected",
                           "expected")

    # ---------------------------------------------------------------- heads
    st.subheader("Heads" + after)
    default_layers = list(range(L)) if L * H <= 16 else [L - 1]
    chosen = st.multiselect("Layers", list(range(L)), default=default_layers, key=f"attention_layers_{run_id}",
                            format_func=lambda i: f"layer {i + 1}")
    if chosen:
        ui.show_figure(viz.attention_heads(attn_shown, labels, layers=sorted(chosen), highlight=highlight,
                                           title=f"{len(chosen)} layer(s) × {H} heads"),
                       "attention_heads", "attention-heads")
    watch_heads_specialise(run, x, len(labels), labels, expected)

    # ---------------------------------------------------------------- rollout
    st.subheader("Attention rollout")
    st.caption("Rollout (Abnar & Zuidema 2020) multiplies the layers' attention (heads fused, plus the residual "
               "path) to estimate how much each position draws on each input position through the whole network.")
    fusion = st.radio("Fuse heads by", ["mean", "max", "min"], horizontal=True, key="attention_fusion")
    roll = ins.attention_rollout(attn, head_fusion=fusion)
    if is_vit:
        g = cfg.image_size // cfg.patch_size
        grid = ins.cls_rollout_grid(roll, g)
        img = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        r1, r2 = st.columns(2)
        with r1:
            ui.show_figure(viz.vit_rollout_overlay(img, grid, title="[CLS] rollout over the image"),
                           "attention_overlay", "vit-rollout")
        with r2:
            ui.show_figure(viz.attention_matrix(roll, labels, title="Rollout (all tokens)"), "attention_rollout",
                           "rollout")
    else:
        keep = len(labels)
        ui.show_figure(viz.attention_matrix(roll[:keep, :keep], labels, title="Rollout"), "attention_rollout",
                       "rollout")


ui.inspect_run(opened[0], "attention_epoch", "the attention maps", body)
