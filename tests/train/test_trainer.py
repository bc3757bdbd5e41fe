"""The trainer: seeded reproducibility, exact resume, early stopping, schedules, optimizers, clipping, callbacks."""
from __future__ import annotations

import functools
import math

import pytest
import torch

from dlcore import (DataSpec, MLPConfig, RNNConfig, Trainer, TrainingError, TrainSpec, TransformerConfig,
                    get_preset, load_dataset)
from dlcore.data.base import Dataset
from dlcore.runs.checkpoint import load_checkpoint, save_checkpoint

TINY_CNN = get_preset("cnn-tiny").replace(padding="same")  # 3.7K params on 8×8 digits, no dropout or batch-norm
TINY_MLP = MLPConfig(hidden=(16,))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread, and do not fight the job processes of other tests for cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.lru_cache(maxsize=None)
def _digits(max_train: int = 256, val_fraction: float = 0.1) -> Dataset:
    return load_dataset(DataSpec(name="digits", max_train=max_train, val_fraction=val_fraction))


def _train(model=TINY_CNN, data=None, state=None, record=("on_step_end",), stop_at=None, **spec):
    """Fit and return (trainer, summary, {event: [payloads]}); ``stop_at`` stops after that optimizer step."""
    spec.setdefault("log_every", 1)
    spec.setdefault("device", "cpu")  # exact comparisons: no GPU kernels or bf16 autocast even where a GPU exists
    t = Trainer(model, data or _digits(), TrainSpec(**spec), state=state)
    seen = {e: [] for e in record}
    for event in record:
        t.add_callback(event, lambda tr, row, e=event: seen[e].append(dict(row)))
    if stop_at is not None:
        def stop(tr, row):
            if row["step"] >= stop_at:
                tr.stop_requested = True
        t.add_callback("on_step_end", stop)
    return t, t.fit(), seen


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.raw_model.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


# ---------------------------------------------------------------- reproducibility
def test_same_seed_gives_the_same_losses_and_weights():
    runs = [_train(epochs=1, seed=7, lr=3e-3) for _ in range(2)]
    losses = [[r["loss"] for r in seen["on_step_end"]] for _, _, seen in runs]
    assert len(losses[0]) == 8  # 230 training examples / batch 32
    assert losses[0] == losses[1]
    _assert_same_weights(_weights(runs[0][0]), _weights(runs[1][0]))
    assert runs[0][1]["test_accuracy"] == runs[1][1]["test_accuracy"]
    other = _train(epochs=1, seed=8, lr=3e-3)[2]["on_step_end"]
    assert [r["loss"] for r in other] != losses[0]


def test_training_learns_digits():
    _, summary, _ = _train(data=_digits(0), epochs=2, lr=5e-3, log_every=50)
    assert summary["completed"] and summary["test_accuracy"] > 0.8, summary


# ---------------------------------------------------------------- resume == uninterrupted
@pytest.mark.parametrize("stop_at", [5, 8], ids=["mid-epoch", "epoch-boundary"])
def test_resume_from_checkpoint_reaches_the_same_weights(stop_at, tmp_path):
    spec = dict(epochs=2, seed=3, lr=3e-3, schedule="cosine", warmup_steps=3, weight_decay=0.01)
    full, full_summary, _ = _train(**spec)

    first, summary, _ = _train(stop_at=stop_at, **spec)
    assert not summary["completed"] and first.step == stop_at
    tensors, meta = first.checkpoint_state()
    save_checkpoint(tmp_path, tensors, meta, model_config=first.config)  # through safetensors + JSON
    state = load_checkpoint(tmp_path)

    second, summary2, seen = _train(state=state, **spec)
    assert seen["on_step_end"][0]["step"] == stop_at + 1  # continues, does not start over
    assert summary2["completed"] and second.step == full.step == 16
    _assert_same_weights(_weights(second), _weights(full))
    assert summary2["test_accuracy"] == full_summary["test_accuracy"]
    assert [h["epoch"] for h in second.history] == [1, 2]


# ---------------------------------------------------------------- early stopping
def test_early_stopping_ends_after_patience_epochs_without_improvement():
    # SGD at lr 1e-7 leaves the model as it is: the first epoch stays the best one
    spec = dict(epochs=6, optimizer="sgd", momentum=0.0, lr=1e-7, schedule="constant", log_every=50)
    t, summary, seen = _train(early_stop_patience=2, record=("on_epoch_end",), **spec)
    assert summary["early_stopped"] and summary["epochs_done"] == 3 and summary["best_epoch"] == 1
    assert summary["completed"] and "test_accuracy" in summary  # an early stop is a normal end
    assert len(seen["on_epoch_end"]) == 3
    _, summary, _ = _train(early_stop_patience=0, **{**spec, "epochs": 3})
    assert not summary["early_stopped"] and summary["epochs_done"] == 3


# ---------------------------------------------------------------- schedules and optimizers
def _lrs(**spec):
    _, summary, seen = _train(data=_digits(128), epochs=2, **spec)  # 4 steps per epoch, 8 in all
    return [r["lr"] for r in seen["on_step_end"]], summary


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_every_optimizer_and_schedule_trains(optimizer, schedule):
    lrs, summary = _lrs(optimizer=optimizer, schedule=schedule, lr=1e-2)
    assert summary["completed"] and summary["steps"] == 8 and math.isfinite(summary["test_loss"])
    if schedule == "constant":
        assert lrs == pytest.approx([1e-2] * 8)
    elif schedule == "cosine":
        assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-2 and lrs[-1] == pytest.approx(0, abs=1e-9)
    else:  # one-cycle: up to the peak, then down far below it
        peak = lrs.index(max(lrs))
        assert 0 < peak < 7 and max(lrs) <= 1e-2 + 1e-12 and lrs[-1] < max(lrs) / 10 and lrs[0] < max(lrs)


def test_warmup_rises_linearly_to_the_peak():
    lrs, _ = _lrs(schedule="constant", warmup_steps=4, lr=1e-2)
    rise = [lr for lr in lrs if lr < 1e-2 - 1e-12]
    assert 2 <= len(rise) <= 4 and lrs[len(rise):] == pytest.approx([1e-2] * (8 - len(rise)))
    steps = [b - a for a, b in zip(rise, rise[1:] + [1e-2])]
    assert steps == pytest.approx([2.5e-3] * len(steps))  # linear: 1/4 of the peak per step


def test_weight_decay_shrinks_the_weights():
    norms = []
    for wd in (0.0, 1.0):
        t, _, _ = _train(data=_digits(128), epochs=1, lr=1e-2, weight_decay=wd, seed=1)
        norms.append(sum(float(p.detach().norm()) for n, p in t.raw_model.named_parameters() if n.endswith("weight")))
    assert norms[1] < norms[0]


def test_gradient_clipping_bounds_the_update():
    before = Trainer(TINY_CNN, _digits(128), TrainSpec(seed=2, device="cpu")).raw_model.state_dict()
    t, _, _ = _train(data=_digits(128), seed=2, optimizer="sgd", momentum=0.0, lr=0.1, schedule="constant",
                     grad_clip=0.01, max_steps=1)
    after = t.raw_model.state_dict()
    update = torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))
    assert 0 < float(update) <= 0.1 * 0.01 * (1 + 1e-4)


def test_gradient_accumulation_equals_one_big_batch():
    data = _digits(128, 0.0)
    a, _, _ = _train(data=data, batch_size=32, max_steps=3, seed=4, optimizer="sgd", lr=0.05)
    b, _, _ = _train(data=data, batch_size=16, grad_accum=2, max_steps=3, seed=4, optimizer="sgd", lr=0.05)
    assert a.step == b.step == 3
    for k, v in _weights(a).items():
        torch.testing.assert_close(_weights(b)[k], v, rtol=1e-4, atol=1e-5)


def test_max_steps_stops_early_and_still_evaluates():
    _, summary, seen = _train(max_steps=3, epochs=5)
    assert summary["steps"] == 3 and [r["step"] for r in seen["on_step_end"]] == [1, 2, 3]
    assert "test_accuracy" in summary


# ---------------------------------------------------------------- callbacks and failures
def _assert_epoch_metrics_are_the_models(t: Trainer, row: dict, split: str) -> None:
    """An epoch row's accuracy and loss on a split equal the trained model's, recomputed here on every example
    of it (the training ones are accumulated over the epoch: compare them only where the weights stay put)."""
    x, y = getattr(_digits(), split)
    with torch.no_grad():
        out = t.raw_model.eval()(x)[0]
    assert row[f"{split}_accuracy"] == pytest.approx(float((out.argmax(-1) == y).double().mean()), abs=1e-12)
    assert row[f"{split}_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(out, y)), rel=1e-4)


def test_callbacks_report_progress_and_epoch_metrics():
    events = ("on_fit_start", "on_step_end", "on_epoch_end", "on_fit_end")
    t, summary, seen = _train(epochs=2, record=events, log_every=4)
    start, = seen["on_fit_start"]
    assert start["total_steps"] == 16 and start["steps_per_epoch"] == 8
    steps = seen["on_step_end"]
    assert [r["step"] for r in steps] == [1, 4, 8, 12, 16]
    assert steps[-1]["progress"] == pytest.approx(1.0)
    assert all(r["loss"] > 0 and r["samples_per_s"] > 0 and r["lr"] >= 0 for r in steps)
    rows = seen["on_epoch_end"]
    assert [r["epoch"] for r in rows] == [1, 2] and rows == t.history
    _assert_epoch_metrics_are_the_models(t, rows[-1], "val")  # the last epoch's validation: the final weights
    still, _, frozen = _train(epochs=1, optimizer="sgd", lr=1e-7, record=("on_epoch_end",))
    _assert_epoch_metrics_are_the_models(still, frozen["on_epoch_end"][0], "train")  # weights that do not move
    assert seen["on_fit_end"] == [summary]
    with pytest.raises(ValueError, match="on_batch_end"):
        t.add_callback("on_batch_end", print)


def test_a_non_finite_loss_is_a_training_error_with_a_remedy():
    ds = _digits(64)
    bad = Dataset(ds.info, (ds.train[0] * float("nan"), ds.train[1]), ds.val, ds.test)
    with pytest.raises(TrainingError, match="learning rate"):
        Trainer(TINY_MLP, bad, TrainSpec(epochs=1, device="cpu")).fit()


@pytest.mark.parametrize("name,model,metric", [
    ("sunspots", RNNConfig(cell="gru", hidden_size=8, num_layers=1), "mae"),
    ("pydoc-lm", TransformerConfig(kind="decoder", vocab_size=1, d_model=16, n_heads=2, n_layers=1, d_ff=16),
     "perplexity"),
    ("mnist-rows", RNNConfig(cell="lstm", hidden_size=8, num_layers=1), "accuracy"),
])
def test_every_metric_kind_is_reported(name, model, metric):
    data = load_dataset(DataSpec(name=name, max_train=256, window=16))
    _, summary, _ = _train(model=model, data=data, max_steps=4, eval_max=64)
    assert summary[f"test_{metric}"] > 0 and math.isfinite(summary[f"test_{metric}"])


def test_transformer_tiny_learns_to_reverse():
    """The accuracy target of transformer-tiny in miniature (short sequences, a few hundred steps)."""
    data = load_dataset(DataSpec(name="reverse", seq_len=5, max_train=3000))
    _, summary, _ = _train(model=get_preset("transformer-tiny"), data=data, epochs=2, lr=3e-3, log_every=100)
    assert summary["test_token_accuracy"] > 0.9, summary
