"""Will it fit? Memory and time estimates of a training run against the device, decided before training.

Example:
    >>> report = check_fit(get_preset("cnn-xl"), dataset_info("mnist5k"), TrainSpec())
    >>> report.fits   # on a CPU-only machine
    False
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dlcore.data.base import DatasetInfo
from dlcore.device import device_description, pick_device
from dlcore.errors import ResourceError  # noqa: F401  (raised by prepare_run; its public home was here)
from dlcore.models import ModelConfig, for_data, summarize
from dlcore.specs import TrainSpec

CPU_FLOPS = 5e10  # sustained fp32 FLOP/s assumed for a CPU (a few cores); a GPU is taken as 100× that
MAX_CPU_HOURS = 2.0
CPU_MAX_PARAMS = 50_000_000  # beyond this a CPU step is too slow to be a useful demo


@dataclass
class FitReport:
    fits: bool
    device: str
    need_bytes: int
    have_bytes: int
    params: int
    flops_per_sample: int
    est_seconds: float
    message: str
    suggestions: list[str] = field(default_factory=list)


def _gb(n: float) -> str:
    """Bytes as MB below 1 GB, GB above (a tiny model should not read '0.0 GB')."""
    return f"{n / 2**20:,.0f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


def check_fit(model: ModelConfig, info: DatasetInfo, train: TrainSpec, device: dict | None = None) -> FitReport:
    """Estimate memory (weights, gradients, optimizer state, activations) and time against the device.

    Args:
        train: the settings of one process: in a distributed run, ``batch_size`` is that process's share
            (``dlcore.prepare_run`` passes it).
        device: a ``device_description`` (default: the device ``train.device`` picks).
    """
    dev = device or device_description(pick_device(train.device))
    cfg = for_data(model, info)
    s = summarize(cfg, seq_len=cfg.sequence_length(info))
    bpv = 2 if dev["type"] == "cuda" and train.precision in ("auto", "bf16") else 4
    # activations are held for one forward pass of batch_size examples; gradient accumulation repeats that
    # pass grad_accum times per optimizer step without holding more (the trainer's batch_size is per pass)
    need = s.train_memory_bytes(train.batch_size, bpv, train.optimizer)
    have = int(dev["free_bytes"] * (0.9 if dev["type"] == "cuda" else 0.7))
    n_train = info.n_train or 4000  # examples per epoch after max_train and the validation split
    flops = 3 * s.flops_per_sample * n_train * train.epochs
    speed = CPU_FLOPS * (100 if dev["type"] == "cuda" else 1)
    est = flops / speed
    tips = []
    if need > have:
        bs = train.batch_size
        tips += [f"batch size {max(1, bs // 4)} with gradient accumulation {train.grad_accum * 4}",
                 "activation checkpointing (Transformers)", "a smaller preset"]
        msg = (f"needs about {_gb(need)} for training ({s.params:,} parameters) but {dev['name']} has "
               f"{_gb(have)} free to use")
        return FitReport(False, dev["name"], need, have, s.params, s.flops_per_sample, est, msg, tips)
    if dev["type"] != "cuda" and (est > MAX_CPU_HOURS * 3600 or s.params > CPU_MAX_PARAMS):
        msg = (f"{s.params:,} parameters at {s.flops_per_sample / 1e9:.1f} GFLOPs per sample would take about "
               f"{est / 3600:,.1f} h for {train.epochs} epoch(s) on this CPU; models over {CPU_MAX_PARAMS / 1e6:.0f}M "
               f"parameters or {MAX_CPU_HOURS:.0f} h are refused on a CPU: this size needs a GPU")
        return FitReport(False, dev["name"], need, have, s.params, s.flops_per_sample, est, msg,
                         ["a GPU machine", "a tiny/small preset", "fewer epochs or max_steps"])
    msg = f"fits: about {_gb(need)} of {_gb(have)} on {dev['name']}, roughly {est:,.0f} s of compute"
    return FitReport(True, dev["name"], need, have, s.params, s.flops_per_sample, est, msg)
