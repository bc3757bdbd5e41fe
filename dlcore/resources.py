"""Will it fit? Memory and time estimates of a training run against the device, decided before training.

The time estimate is calibrated on this machine: the run store records, for every finished run, its steps,
its training throughput (``model_flops_per_s`` = 3 × forward FLOPs × samples/s), the fit time and the whole
run's time. From them :func:`measured_speed` fits the cost of a step on this device (a fixed part plus FLOPs
at an effective rate, per model family where it has trained one), which replaces the nominal ``CPU_FLOPS``
as soon as one run has finished.

Example:
    >>> report = check_fit(get_preset("cnn-xl"), dataset_info("mnist5k"), TrainSpec())
    >>> report.fits   # on a CPU-only machine
    False
"""
from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field

from dlcore.data.base import DatasetInfo
from dlcore.device import device_description, pick_device
from dlcore.errors import ResourceError  # noqa: F401  (raised by prepare_run; its public home was here)
from dlcore.models import ModelConfig, for_data, summarize
from dlcore.specs import TrainSpec

CPU_FLOPS = 5e10  # sustained fp32 FLOP/s assumed for a CPU (a few cores); a GPU is taken as 100× that
MAX_CPU_HOURS = 2.0
CPU_MAX_PARAMS = 50_000_000  # beyond this a CPU step is too slow to be a useful demo
CALIBRATION_RUNS = 20  # the newest finished runs a speed is measured from (a machine's load changes)
MIN_TRAIN_SECONDS = 0.5  # shorter fits time mostly their first batches (warm-up, allocation): too noisy


@dataclass(frozen=True)
class Speed:
    """How fast this machine trains a family, as measured by finished runs (or nominal when there are none).

    A training step costs ``step_s`` (Python, optimizer, kernel launches: what makes a tiny model slow) plus
    its FLOPs at ``flops_per_s``: a run of a tiny model alone cannot tell what a large one costs.

    Attributes:
        flops_per_s: effective training FLOP/s once the fixed cost of a step is paid.
        step_s: the fixed cost of one optimizer step in seconds.
        fit_factor: a fit's time over its training time (validation after each epoch, checkpoints).
        overhead_s: a run's time outside the fit: starting the process, importing torch, loading the data,
            the final test evaluation.
        runs: finished runs it was measured from; 0 for the nominal speed.
        family: the model family it was measured on, or "" for all families.
    """
    flops_per_s: float
    step_s: float = 0.0
    fit_factor: float = 1.0
    overhead_s: float = 0.0
    runs: int = 0
    family: str = ""

    def seconds(self, steps: int, flops_per_step: float) -> float:
        """The whole run: ``steps`` optimizer steps of ``flops_per_step`` training FLOPs each."""
        return steps * (self.step_s + flops_per_step / self.flops_per_s) * self.fit_factor + self.overhead_s

    def describe(self, device: str) -> str:
        """A sentence for the app saying where the estimate comes from."""
        if not self.runs:
            return f"a nominal speed of {self.flops_per_s / 1e9:,.0f} GFLOP/s for {device} (no finished run to measure yet)"
        what = f"{self.family.upper()} run" if self.family else "run"
        return (f"the speed measured in the last {self.runs} finished {what}{'s' if self.runs > 1 else ''} on this "
                f"machine ({self.step_s * 1000:,.0f} ms a step plus {self.flops_per_s / 1e9:,.1f} GFLOP/s, "
                f"{self.overhead_s:.0f} s to start and evaluate)")


def _fit_steps(points: list[tuple[float, float]], nominal: float) -> tuple[float, float]:
    """(seconds per step, FLOP/s) from (FLOPs per step, seconds per step) of finished runs.

    Least squares of ``t = a + w / P`` (a, 1/P ≥ 0) when the runs differ enough in size; else ``P`` is the
    nominal rate and ``a`` what is left of the measured time (on a machine faster than nominal, ``a`` = 0
    and ``P`` is measured).
    """
    ws, ts = [w for w, _ in points], [t for _, t in points]
    if len(points) >= 2 and max(ws) > 3 * min(ws):
        n, sw, st = len(points), sum(ws), sum(ts)
        sww, swt = sum(w * w for w in ws), sum(w * t for w, t in points)
        b = (n * swt - sw * st) / (n * sww - sw * sw)
        a = (st - b * sw) / n
        if b > 0 and a >= 0:
            return a, 1.0 / b
        if b > 0:  # no fixed cost at all: every second is compute
            return 0.0, sww / swt
        return statistics.median(ts), nominal  # the bigger runs were not slower: fixed cost, nominal compute
    w, t = statistics.median(ws), statistics.median(ts)
    if t <= w / nominal:
        return 0.0, w / t
    return t - w / nominal, nominal


_SPEED_CACHE: dict[tuple, tuple[float, Speed]] = {}


def _device_kind(device: str | None) -> str:
    return (device or "cpu").split(":")[0]


def measured_speed(device_type: str, family: str | None = None, store=None) -> Speed:
    """The training speed of this machine's ``device_type`` ("cpu", "cuda", "mps") from finished runs.

    Runs of the same family are preferred (an LSTM's small sequential products run far below a CNN's
    rate); without one, all families on that device; without any, the nominal ``CPU_FLOPS`` (× 100 for a
    GPU). The newest :data:`CALIBRATION_RUNS` single-process runs give the cost of a step (:func:`_fit_steps`),
    the medians of their evaluation share and start-up time; cached until the store changes.

    Args:
        device_type: the ``type`` of a ``device_description``.
        family: the model family to estimate for.
        store: a ``RunStore`` (default: the data folder's).
    """
    nominal = Speed(CPU_FLOPS * (100 if device_type == "cuda" else 1))
    try:
        if store is None:
            from dlcore.config import data_dir

            db = data_dir() / "store.db"
            if not db.exists():
                return nominal
        else:
            db = store.db_path
        stamp = max(os.stat(db).st_mtime, os.stat(f"{db}-wal").st_mtime if os.path.exists(f"{db}-wal") else 0)
        key = (str(db), device_type, family)
        hit = _SPEED_CACHE.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
        from dlcore.runs.store import RunStore  # imports no torch

        runs = (store or RunStore(db.parent)).list(status="completed", limit=200)
    except (OSError, ValueError, RuntimeError):  # an unreadable store must not break an estimate
        return nominal
    samples = []
    for r in runs:
        s = r.summary
        fps, train_s, fit_s, steps = (s.get("model_flops_per_s"), s.get("train_seconds"), s.get("seconds"),
                                      s.get("steps"))
        if (_device_kind(r.device) != device_type or s.get("world_size", 1) != 1 or not fps or not fit_s
                or not train_s or train_s < MIN_TRAIN_SECONDS or not steps or r.finished is None or r.started is None):
            continue
        # the user waits from the click: process start counts, a wait in the queue does not
        begin = r.created if r.started - r.created < 15 else r.started
        # (FLOPs per step, seconds per step): model_flops_per_s is 3 × forward FLOPs × samples/s while training
        samples.append((r.family, fps * train_s / steps, train_s / steps, fit_s / train_s,
                        max(0.0, r.finished - begin - fit_s)))
    same = [x for x in samples if family and x[0] == family][:CALIBRATION_RUNS]
    chosen = same or samples[:CALIBRATION_RUNS]
    if not chosen:
        speed = nominal
    else:
        step_s, flops_per_s = _fit_steps([(x[1], x[2]) for x in chosen], nominal.flops_per_s)
        speed = Speed(flops_per_s=flops_per_s, step_s=step_s, fit_factor=statistics.median(x[3] for x in chosen),
                      overhead_s=statistics.median(x[4] for x in chosen), runs=len(chosen),
                      family=family if same else "")
    _SPEED_CACHE[key] = (stamp, speed)
    return speed


@dataclass
class FitReport:
    fits: bool
    device: str
    need_bytes: int
    have_bytes: int
    params: int
    flops_per_sample: int
    est_seconds: float  # the whole run as the user waits for it: start, training, evaluation
    message: str
    suggestions: list[str] = field(default_factory=list)
    speed: Speed | None = None  # what the time estimate is based on (Speed.describe says it in words)


def _gb(n: float) -> str:
    """Bytes as KB below 1 MB, MB below 1 GB, GB above (a tiny model should not read '0 MB')."""
    if n < 2**20:
        return f"{max(1, round(n / 2**10)):,} KB"
    return f"{n / 2**20:,.0f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


def dataset_bytes(info: DatasetInfo, val_fraction: float = 0.1) -> int:
    """About how much memory a loaded dataset's tensors take: the training examples, the validation split
    and a test split of about the same share (inputs as float32, token ids as int64). The trainer keeps
    them resident on the device when they fit (``Trainer._to_device``)."""
    per = math.prod(info.input_shape or (1,)) * (8 if info.input_kind == "tokens" else 4)
    n = (info.n_train or 4000) / max(0.5, 1 - val_fraction) * 1.25  # + validation, + a test part
    return int(n * per)


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
    model_need = s.train_memory_bytes(train.batch_size, bpv, train.optimizer)
    data_need = dataset_bytes(info)
    if dev["type"] == "cuda" and data_need >= 2 * 2**30:
        data_need = 0  # too big to keep on the GPU: the trainer copies batch by batch from host memory
    need = model_need + data_need
    have = int(dev["free_bytes"] * (0.9 if dev["type"] == "cuda" else 0.7))
    n_train = info.n_train or 4000  # examples per epoch after max_train and the validation split
    per_step = train.batch_size * train.grad_accum  # an optimizer step reads batch_size × grad_accum examples
    steps = math.ceil(n_train / per_step) * train.epochs
    if train.max_steps:
        steps = min(steps, train.max_steps)
    speed = measured_speed(dev["type"], cfg.family)
    est = speed.seconds(steps, 3 * s.flops_per_sample * per_step)
    tips = []
    if need > have:
        bs = train.batch_size
        tips += [f"batch size {max(1, bs // 4)} with gradient accumulation {train.grad_accum * 4}",
                 "activation checkpointing (Transformers)", "a smaller preset"]
        msg = (f"needs about {_gb(need)} for training ({s.params:,} parameters: {_gb(model_need)}; the data: "
               f"{_gb(data_need)}) but {dev['name']} has {_gb(have)} free to use")
        if data_need > model_need:
            tips.insert(0, "fewer examples (max_train)")
        return FitReport(False, dev["name"], need, have, s.params, s.flops_per_sample, est, msg, tips, speed)
    if dev["type"] != "cuda" and (est > MAX_CPU_HOURS * 3600 or s.params > CPU_MAX_PARAMS):
        msg = (f"{s.params:,} parameters at {s.flops_per_sample / 1e9:.1f} GFLOPs per sample would take about "
               f"{est / 3600:,.1f} h for {train.epochs} epoch(s) on this CPU; models over {CPU_MAX_PARAMS / 1e6:.0f}M "
               f"parameters or {MAX_CPU_HOURS:.0f} h are refused on a CPU: this size needs a GPU")
        return FitReport(False, dev["name"], need, have, s.params, s.flops_per_sample, est, msg,
                         ["a GPU machine", "a tiny/small preset", "fewer epochs or max_steps"], speed)
    msg = f"fits: about {_gb(need)} of {_gb(have)} on {dev['name']}, roughly {est:,.0f} s to train"
    return FitReport(True, dev["name"], need, have, s.params, s.flops_per_sample, est, msg, speed=speed)
