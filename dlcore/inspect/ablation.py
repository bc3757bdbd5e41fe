"""Head knock-out: remove attention heads and measure the test metric again — evidence that a head matters, not
only that its pattern looks right.

A head's output is its slice of the input of the attention's output projection (``attn.proj``, (B, T, nh·hs)).
A forward pre-hook replaces that slice with zeros ("zero") or with its mean over reference inputs at each
position ("mean", which removes what the head reads from this input but keeps its average contribution).
Hooks are registered in ``try`` and removed in ``finally``.

Heads are (layer, head) pairs counted from 0 in the API; labels and the CLI count from 1, as the pages do
("1.2" = layer 1, head 2).

Example:
    >>> result = ablate(run_id, [(0, 1)])                  # {'metric': 'token_accuracy', 'before':…, 'after':…}
    >>> table = head_knockout(model, x_test, y_test, info).table   # per head: pattern score, drop
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlcore.data.base import DatasetInfo
from dlcore.evaluation import evaluate_model
from dlcore.inspect._hooks import model_lock
from dlcore.inspect.attention import Recorder, expected_attention, has_attention, pattern_scores
from dlcore.specs import SpecError

MODES = ("zero", "mean")


def head_label(layer: int, head: int) -> str:
    """"layer.head" counted from 1, as the pages show heads."""
    return f"{layer + 1}.{head + 1}"


def parse_heads(text: str, model: nn.Module | None = None) -> list[tuple[int, int]]:
    """``"1.2,2.1"`` (counted from 1) -> [(0, 1), (1, 0)]; checked against the model when given.

    Raises:
        SpecError: not LAYER.HEAD pairs, or a head the model does not have.
    """
    heads = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            layer, head = (int(v) for v in part.split("."))
        except ValueError:
            raise SpecError("heads", f"heads are LAYER.HEAD pairs counted from 1, e.g. 1.2,2.1; got {part!r}") from None
        heads.append((layer - 1, head - 1))
    if model is not None:
        _check_heads(model, heads)
    return heads


def _check_heads(model: nn.Module, heads: Sequence[tuple[int, int]]) -> None:
    if not has_attention(model):
        raise SpecError("heads", f"{type(model).__name__} has no attention heads (pick a Transformer run)")
    L, H = len(model.blocks), model.blocks[0].attn.n_heads
    for layer, head in heads:
        if not (0 <= layer < L and 0 <= head < H):
            raise SpecError("heads", f"head {layer + 1}.{head + 1} does not exist: the model has {L} layers × {H} "
                                     f"heads (1.1 … {L}.{H})")


def head_means(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
    """Per layer, the mean over examples of every head's output at each position: (T, nh·hs) tensors (inputs of
    another length are given the mean over positions)."""
    sums: list[torch.Tensor | None] = [None] * len(model.blocks)
    n = 0
    handles = []

    def make(i):
        def fn(_mod, args):
            s = args[0].detach().double().sum(0)  # (T, C)
            sums[i] = s if sums[i] is None else sums[i] + s
        return fn

    with model_lock(model), torch.no_grad():
        try:
            for i, block in enumerate(model.blocks):
                handles.append(block.attn.proj.register_forward_pre_hook(make(i)))
            for j in range(0, len(x), batch_size):
                xb = x[j: j + batch_size].to(_device(model))
                model(xb)
                n += len(xb)
        finally:
            for h in handles:
                h.remove()
    return [(s / max(n, 1)).float() for s in sums]


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def heads_ablated(model: nn.Module, heads: Sequence[tuple[int, int]], mode: str = "zero",
                  means: list[torch.Tensor] | None = None) -> Iterator[nn.Module]:
    """Inside the ``with`` block, the model runs with these heads knocked out; the hooks are always removed.

    Args:
        heads: (layer, head) pairs counted from 0.
        mode: "zero" or "mean" (needs ``means`` from :func:`head_means`).
    """
    if mode not in MODES:
        raise SpecError("mode", f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "mean" and means is None:
        raise SpecError("mode", "mean ablation needs the heads' mean outputs (head_means on reference inputs)")
    _check_heads(model, heads)
    by_layer: dict[int, list[int]] = defaultdict(list)
    for layer, head in heads:
        by_layer[layer].append(head)
    handles = []

    def make(layer: int, chosen: list[int]):
        attn = model.blocks[layer].attn
        nh = attn.n_heads

        def fn(_mod, args):
            y = args[0]  # (B, T, C): the heads' outputs side by side
            B, T, C = y.shape
            y = y.clone().view(B, T, nh, C // nh)  # (B, T, nh, hs)
            if mode == "zero":
                y[:, :, chosen] = 0.0
            else:
                m = means[layer].to(y.device, y.dtype)  # (T_ref, C)
                if m.shape[0] != T:  # not the reference length (e.g. one cached step): the mean over positions
                    m = m.mean(0, keepdim=True).expand(T, -1)
                y[:, :, chosen] = m.view(1, T, nh, C // nh)[:, :, chosen].expand(B, -1, -1, -1)
            return (y.view(B, T, C),) + tuple(args[1:])
        return fn

    with model_lock(model):
        try:
            for layer, chosen in by_layer.items():
                proj = model.blocks[layer].attn.proj
                handles.append(proj.register_forward_pre_hook(make(layer, sorted(set(chosen)))))
            yield model
        finally:
            for h in handles:
                h.remove()


def evaluate_metric(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: DatasetInfo) -> dict:
    """The trainer's own evaluation ({'loss', metric}) of a model on (x, y)."""
    return evaluate_model(model, x, y, info)


def ablated_metric(model: nn.Module, heads: Sequence[tuple[int, int]], x: torch.Tensor, y: torch.Tensor,
                   info: DatasetInfo, mode: str = "zero", means: list[torch.Tensor] | None = None) -> dict:
    """{'loss', metric} of the model on (x, y) with the heads knocked out (none: the plain evaluation)."""
    with heads_ablated(model, heads, mode, means):
        return evaluate_metric(model, x, y, info)


def mean_pattern_scores(model: nn.Module, x: torch.Tensor, info: DatasetInfo) -> np.ndarray | None:
    """(layers, heads) pattern score of each head averaged over the examples x; None without a known pattern."""
    task = info.expected_attention
    if not task:
        return None
    with torch.no_grad():
        _, attn = Recorder(model)(x.to(_device(model)))  # (B, L, H, T, T)
    attn = attn.float().cpu().numpy()
    scores = [pattern_scores(a, expected_attention(task, t)) for a, t in zip(attn, x.cpu().numpy())]
    return np.mean(scores, axis=0)


@dataclass(frozen=True)
class Knockout:
    """Per head: its pattern score and the metric with that head knocked out.

    Attributes:
        metric: the task's metric name ("token_accuracy", "accuracy", "perplexity", ...).
        before: the metric with every head.
        table: one row per head: head ("1.2"), layer, index (both from 0), pattern_score (NaN without a known
            pattern), the metric after knocking it out, drop = before − after (for metrics where lower is
            better, such as perplexity, drop = after − before, so a larger drop always means a more needed head),
            and alone: the metric with the other heads of its layer knocked out instead. Heads that share a job
            show no drop one by one (each covers for the others) but a high "alone".
        mode: "zero" or "mean".
    """
    metric: str
    before: float
    table: pd.DataFrame
    mode: str


def head_knockout(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: DatasetInfo, mode: str = "zero",
                  reference: torch.Tensor | None = None, n_pattern: int = 256) -> Knockout:
    """Knock out each head, and each head's layer-mates, and re-measure the metric on (x, y); pattern scores
    from the first ``n_pattern`` examples.

    Args:
        reference: inputs for mean ablation (default: x itself).
    """
    _check_heads(model, [])
    means = head_means(model, reference if reference is not None else x) if mode == "mean" else None
    metric = info.metric
    before = evaluate_metric(model, x, y, info)[metric]
    scores = mean_pattern_scores(model, x[:n_pattern], info)
    sign = 1.0 if info.higher_is_better else -1.0
    rows = []
    L, H = len(model.blocks), model.blocks[0].attn.n_heads
    for layer in range(L):
        for head in range(H):
            after = ablated_metric(model, [(layer, head)], x, y, info, mode, means)[metric]
            others = [(layer, h) for h in range(H) if h != head]
            alone = ablated_metric(model, others, x, y, info, mode, means)[metric] if others else before
            rows.append({"head": head_label(layer, head), "layer": layer, "index": head,
                         "pattern_score": float(scores[layer, head]) if scores is not None else float("nan"),
                         metric: after, "drop": sign * (before - after), "alone": alone})
    return Knockout(metric=metric, before=before, table=pd.DataFrame(rows), mode=mode)


def ablate(model_or_run_id, heads: Sequence[tuple[int, int]] | str, mode: str = "zero", *,
           data: tuple[torch.Tensor, torch.Tensor] | None = None, info: DatasetInfo | None = None,
           limit: int | None = None) -> dict:
    """The test metric before and after knocking out some heads.

    Args:
        model_or_run_id: a run id (its checkpoint and test set are loaded) or a model with ``data`` and ``info``.
        heads: (layer, head) pairs from 0, or text "1.2,2.1" counted from 1.
        mode: "zero" or "mean" (mean over the training inputs).
        limit: evaluate on at most this many test examples.

    Returns:
        {"metric", "before", "after", "drop", "heads" (labels), "mode", "examples"}.
    """
    reference = None
    if isinstance(model_or_run_id, str):
        import dlcore

        run, model = dlcore.load_run_model(model_or_run_id)
        ds = dlcore.load_dataset(run.data)
        info, data, reference = ds.info, ds.test, ds.train[0][:1024]
    else:
        model = model_or_run_id
        if data is None or info is None:
            raise TypeError("ablate(model, ...) needs data=(x, y) and info=")
    if isinstance(heads, str):
        heads = parse_heads(heads, model)
    x, y = data
    if limit:
        x, y = x[:limit], y[:limit]
    means = head_means(model, reference if reference is not None else x) if mode == "mean" else None
    before = evaluate_metric(model, x, y, info)[info.metric]
    after = ablated_metric(model, heads, x, y, info, mode, means)[info.metric]
    sign = 1.0 if info.higher_is_better else -1.0
    return {"metric": info.metric, "before": before, "after": after, "drop": sign * (before - after),
            "heads": [head_label(layer, head) for layer, head in heads], "mode": mode, "examples": len(x)}


def run_knockout(run_id: str, mode: str = "zero", limit: int | None = 512) -> Knockout:
    """:func:`head_knockout` of a stored run on (at most ``limit`` of) its test set, for pages and scripts.

    Example:
        >>> run_knockout(run_id).table[["head", "pattern_score", "drop"]]
    """
    import dlcore

    run, model = dlcore.load_run_model(run_id)
    ds = dlcore.load_dataset(run.data)
    x, y = ds.test
    if limit:
        x, y = x[:limit], y[:limit]
    return head_knockout(model, x, y, ds.info, mode=mode, reference=ds.train[0][:1024] if mode == "mean" else None)


# ---------------------------------------------------------------------------------------------------- CLI
def run_cli(args) -> int:
    """``python -m dlcore ablate``: the metric before and after, optionally the per-head table."""
    import json

    result = ablate(args.run_id, args.heads, args.mode, limit=args.limit)
    if args.table:
        import dlcore

        run, model = dlcore.load_run_model(args.run_id)
        ds = dlcore.load_dataset(run.data)
        x, y = ds.test if not args.limit else (ds.test[0][: args.limit], ds.test[1][: args.limit])
        k = head_knockout(model, x, y, ds.info, args.mode, reference=ds.train[0][:1024])
        result["table"] = k.table.to_dict(orient="records")
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    print(f"{result['metric']}: {result['before']:.4f} → {result['after']:.4f} with head(s) "
          f"{', '.join(result['heads'])} knocked out ({result['mode']}; drop {result['drop']:+.4f}, "
          f"{result['examples']} test examples)")
    if args.table:
        print(pd.DataFrame(result["table"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


__all__ = ["MODES", "head_label", "parse_heads", "head_means", "heads_ablated", "evaluate_metric", "ablated_metric",
           "mean_pattern_scores", "Knockout", "head_knockout", "ablate", "run_cli"]
