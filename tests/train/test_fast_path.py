"""Trainer speed and scale features: gradient accumulation, activation checkpointing, throughput/MFU
reporting, the peak-FLOPs table, and (on CUDA only) the GPU fast path."""
from __future__ import annotations

import pytest
import torch

from dlcore import DataSpec, TrainSpec, Trainer, TrainingError, get_preset, load_dataset, summarize
from dlcore.device import peak_flops

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(name="digits"))


@pytest.fixture(scope="module")
def reverse():
    return load_dataset(DataSpec(name="reverse", seq_len=6, max_train=256))


def _cnn():
    return get_preset("cnn-tiny").replace(padding="same")  # no batch-norm, no dropout


def _first_step(model, data, **train) -> tuple[Trainer, list[float]]:
    t = Trainer(model, data, TrainSpec(seed=3, max_steps=1, log_every=1, eval_max=64, **train))
    losses = []
    t.add_callback("on_step_end", lambda tr, row: losses.append(row["loss"]))
    t.fit()
    return t, losses


def _grads(t: Trainer) -> list[torch.Tensor]:
    return [p.grad.clone() for p in t.raw_model.parameters()]


def test_grad_accum_gives_the_gradient_of_the_whole_batch(digits):
    """Two micro-batches of 16 accumulate to the gradient (and loss) of one batch of 32."""
    big, big_loss = _first_step(_cnn(), digits, batch_size=32)
    acc, acc_loss = _first_step(_cnn(), digits, batch_size=16, grad_accum=2)
    for g_big, g_acc in zip(_grads(big), _grads(acc)):
        torch.testing.assert_close(g_acc, g_big, rtol=1e-5, atol=1e-6)
    assert acc_loss[0] == pytest.approx(big_loss[0], rel=1e-6)
    assert acc.steps_per_epoch == big.steps_per_epoch  # an optimizer step still sees 32 examples
    small, _ = _first_step(_cnn(), digits, batch_size=16)  # guard: one micro-batch alone differs
    assert not torch.allclose(_grads(big)[0], _grads(small)[0], atol=1e-6)


def test_activation_checkpointing_gives_the_same_losses_and_gradients(reverse):
    """Recomputing activations in backward (dropout included) changes memory, not the numbers."""
    model = get_preset("transformer-tiny").replace(dropout=0.1)
    runs = []
    for ckpt in (False, True):
        t = Trainer(model, reverse, TrainSpec(seed=1, batch_size=32, max_steps=3, log_every=1, checkpointing=ckpt,
                                              eval_max=64))
        losses = []
        t.add_callback("on_step_end", lambda tr, row: losses.append(row["loss"]))
        t.fit()
        assert t.raw_model.grad_checkpointing is ckpt
        runs.append((losses, _grads(t)))
    assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-6)
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_checkpointing_is_refused_for_models_without_it(digits):
    with pytest.raises(TrainingError, match="Transformers only"):
        Trainer(_cnn(), digits, TrainSpec(checkpointing=True))


def test_step_rows_report_throughput_and_model_flops(digits):
    t = Trainer(_cnn(), digits, TrainSpec(epochs=1, batch_size=64, log_every=5))
    rows, epochs = [], []
    t.add_callback("on_step_end", lambda tr, row: rows.append(row))
    t.add_callback("on_epoch_end", lambda tr, row: epochs.append(row))
    summary = t.fit()
    assert rows[0]["step"] == 1  # the first step is reported at once, for a responsive UI
    fwd = summarize(t.config).flops_per_sample
    for row in rows + epochs + [summary]:
        assert row["samples_per_s"] > 0
        assert row["model_flops_per_s"] == pytest.approx(3 * fwd * row["samples_per_s"])
        assert row["mfu"] is None  # a CPU has no entry in the peak table
    # the summary's throughput is the epoch's examples over the time spent training (evaluation left out)
    assert summary["samples_per_s"] == pytest.approx(len(digits.train[0]) / summary["train_seconds"], rel=1e-9)
    assert summary["train_seconds"] == pytest.approx(len(digits.train[0]) / epochs[0]["samples_per_s"], rel=1e-9)


def test_peak_flops_table(monkeypatch):
    names = {"NVIDIA H100 80GB HBM3": 989.4e12, "NVIDIA H100 PCIe": 756.0e12, "NVIDIA A100-SXM4-80GB": 312e12,
             "NVIDIA L40S": 362.1e12, "NVIDIA L4": 121e12, "NVIDIA H200": 989.4e12, "Tesla T4": None}
    for name, want in names.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, n=name: n)
        assert peak_flops("cuda") == want, name
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100 80GB PCIe")
    assert peak_flops("cuda", torch.float32) == 156e12  # tf32 tensor cores for fp32 training
    monkeypatch.setenv("DLE_PEAK_FLOPS", "1e15")
    assert peak_flops("cuda") == 1e15
    assert peak_flops("cpu") is None


@CUDA
def test_cuda_fast_path_is_on_and_trains():
    data = load_dataset(DataSpec(name="mnist5k"))
    t = Trainer(get_preset("seed-cnn"), data, TrainSpec(epochs=1, max_steps=30, batch_size=128, log_every=10))
    assert t.autocast_dtype == torch.bfloat16
    assert t.optimizer.defaults.get("fused") is True
    assert t.channels_last and t.raw_model.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert t._data_on_device["train"][0].is_cuda  # the dataset lives on the GPU
    rows = []
    t.add_callback("on_step_end", lambda tr, row: rows.append(row))
    t.fit()
    assert rows[-1]["loss"] < rows[0]["loss"]
    if peak_flops(t.device) is not None:
        assert 0 < rows[-1]["mfu"] < 1


@CUDA
def test_cuda_fp32_matches_the_cpu():
    data = load_dataset(DataSpec(name="digits"))
    losses = {}
    for device in ("cpu", "cuda"):
        t = Trainer(_cnn(), data, TrainSpec(device=device, precision="fp32", max_steps=5, log_every=1, seed=2))
        out = losses.setdefault(device, [])
        t.add_callback("on_step_end", lambda tr, row, out=out: out.append(row["loss"]))
        t.fit()
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)


@CUDA
def test_cuda_compile_trains():
    data = load_dataset(DataSpec(name="reverse", seq_len=8, max_train=512))
    t = Trainer(get_preset("transformer-tiny"), data, TrainSpec(compile=True, max_steps=20, log_every=5))
    summary = t.fit()
    assert summary["completed"] and summary["test_token_accuracy"] > 0.1
