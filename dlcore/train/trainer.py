"""One trainer for every model family (each ``forward(x, targets) -> (output, loss)``).

It knows nothing of the UI or the run store: it reports through callbacks (minGPT style) and can be
stopped by setting ``trainer.stop_requested``. Batches are index slices of in-memory tensors, moved to
the device once, so small datasets pay no DataLoader cost. Batch order of epoch e depends only on
(seed, e), so a resumed run replays the exact batches an uninterrupted run would have seen.

Example:
    >>> t = Trainer(get_preset("cnn-tiny"), load_dataset(DataSpec(name="digits")), TrainSpec(epochs=1))
    >>> summary = t.fit()
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from typing import Callable

import torch
from torch import nn

from dlcore.data.base import Dataset, DatasetInfo
from dlcore.models import ModelConfig, build_model, for_data
from dlcore.specs import TrainSpec

EVENTS = ("on_fit_start", "on_step_end", "on_epoch_end", "on_checkpoint", "on_fit_end")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, out of memory, ...); the message names the cause and a remedy."""


def pick_device(requested: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for 'auto'; a requested device that is missing raises TrainingError."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was requested but no CUDA GPU is visible; use device 'auto' or 'cpu'")
    if requested == "mps" and not has_mps:
        raise TrainingError("device 'mps' was requested but Apple's MPS is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


def device_description(device: torch.device | None = None) -> dict:
    """Name and memory of the compute device, for the app's sidebar and the CLI."""
    device = device or pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        return {"type": "cuda", "name": props.name, "total_bytes": total, "free_bytes": free,
                "count": torch.cuda.device_count()}
    from dlcore.config import available_ram

    return {"type": device.type, "name": "CPU" if device.type == "cpu" else "Apple MPS", "count": 1,
            "total_bytes": available_ram()[1], "free_bytes": available_ram()[0], "threads": torch.get_num_threads()}


def _lr_lambda(spec: TrainSpec, total_steps: int) -> Callable[[int], float]:
    warm = spec.warmup_steps

    def fn(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if spec.schedule == "cosine":
            progress = min(1.0, (step - warm) / max(1, total_steps - warm))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0
    return fn


class Trainer:
    """Train a model config on a dataset with a TrainSpec.

    Args:
        model_config: a model config; its data-dependent fields are filled from the dataset.
        dataset: tensors and info (see ``dlcore.data.load_dataset``).
        spec: training settings.
        state: a checkpoint (tensors, meta) from :meth:`checkpoint_state` to resume from.
        rank, world_size: set by the distributed launcher; each rank trains on its shard of every batch.
    """

    def __init__(self, model_config: ModelConfig, dataset: Dataset, spec: TrainSpec,
                 state: tuple[dict, dict] | None = None, rank: int = 0, world_size: int = 1):
        self.spec, self.dataset, self.info = spec, dataset, dataset.info
        self.config = for_data(model_config, dataset.info)
        self.device = pick_device(spec.device)
        self.rank, self.world_size = rank, world_size
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.stop_requested = False
        self.stop_reason = ""
        torch.manual_seed(spec.seed)
        self.model = build_model(self.config).to(self.device)
        if spec.checkpointing and hasattr(self.model, "grad_checkpointing"):
            self.model.grad_checkpointing = True
        self.raw_model = self.model  # unwrapped, for checkpoints and inspection
        self.n_train = len(dataset.train[0])
        per_rank = max(1, spec.batch_size)
        self.steps_per_epoch = max(1, math.ceil(self.n_train / (per_rank * world_size)) // spec.grad_accum)
        self.total_steps = spec.epochs * self.steps_per_epoch
        if spec.max_steps:
            self.total_steps = min(self.total_steps, spec.max_steps)
        self.optimizer = self._make_optimizer()
        if spec.schedule == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=spec.lr,
                                                                 total_steps=self.total_steps + 1)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(spec, self.total_steps))
        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.best_metric: float | None = None
        self.best_epoch = -1
        self.history: list[dict] = []
        if state is not None:
            self._load_state(*state)
        self.autocast_dtype = (torch.bfloat16 if self.device.type == "cuda" and spec.precision in ("auto", "bf16")
                               else None)
        self._data_on_device = self._to_device(dataset)

    # ------------------------------------------------------------------ set-up
    def _make_optimizer(self) -> torch.optim.Optimizer:
        s, params = self.spec, [p for p in self.model.parameters() if p.requires_grad]
        if s.optimizer == "sgd":
            return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        cls = torch.optim.AdamW if s.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=s.lr, weight_decay=s.weight_decay, **fused)

    def _to_device(self, ds: Dataset):
        """Keep small datasets resident on the device (no per-batch copies)."""
        nbytes = sum(t.numel() * t.element_size() for pair in (ds.train, ds.val, ds.test) for t in pair)
        if self.device.type == "cpu" or nbytes < 2 * 2**30:
            return {k: tuple(t.to(self.device) for t in getattr(ds, k)) for k in ("train", "val", "test")}
        return {k: getattr(ds, k) for k in ("train", "val", "test")}

    def add_callback(self, event: str, fn: Callable) -> None:
        """Register ``fn(trainer, payload: dict)`` for one of EVENTS."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events: {', '.join(EVENTS)}")
        self.callbacks[event].append(fn)

    def _emit(self, event: str, payload: dict) -> None:
        for fn in self.callbacks[event]:
            fn(self, payload)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ state
    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, meta) describing everything needed to resume: weights, optimizer, position."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.raw_model.state_dict().items()}
        opt = self.optimizer.state_dict()
        for pid, st in opt["state"].items():
            for name, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"optim.{pid}.{name}"] = v.detach().cpu().contiguous().reshape(v.shape)
        groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
        meta = {"epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch,
                "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                "param_groups": groups, "scheduler": self.scheduler.state_dict(), "history": self.history}
        return tensors, meta

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.raw_model.load_state_dict(model_sd)
        opt_sd = self.optimizer.state_dict()
        state: dict = defaultdict(dict)
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                state[int(pid)][name] = v.to(self.device) if name != "step" else v
        opt_sd["state"] = dict(state)
        for g, saved in zip(opt_sd["param_groups"], meta.get("param_groups", [])):
            g.update({k: v for k, v in saved.items() if k in g})
        self.optimizer.load_state_dict(opt_sd)
        self.scheduler.load_state_dict(meta["scheduler"])
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.batch_in_epoch = meta.get("batch_in_epoch", 0)
        self.best_metric, self.best_epoch = meta.get("best_metric"), meta.get("best_epoch", -1)
        self.history = meta.get("history", [])

    # ------------------------------------------------------------------ loop
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.spec.seed * 100_003 + epoch)
        return torch.randperm(self.n_train, generator=g)

    def _batches(self, epoch: int):
        """Index batches of this rank for an epoch; a global batch is split across ranks."""
        order = self._epoch_order(epoch)
        b, W = self.spec.batch_size, self.world_size
        n_global = len(order) // (b * W) if W > 1 else math.ceil(len(order) / b)
        for i in range(n_global):
            glob = order[i * b * W: (i + 1) * b * W]
            yield glob[self.rank * b: (self.rank + 1) * b] if W > 1 else glob

    def _metric_update(self, out: torch.Tensor, y: torch.Tensor, acc: dict) -> None:
        if self.info.metric in ("accuracy", "token_accuracy"):
            acc["correct"] += (out.argmax(-1) == y).sum().item()
            acc["count"] += y.numel()

    def fit(self) -> dict:
        """Train to the end (or until stopped); returns the summary with the test metrics."""
        spec, model = self.spec, self.model
        x_all, y_all = self._data_on_device["train"]
        t_start = time.perf_counter()
        self._emit("on_fit_start", {"total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                                    "device": str(self.device), "config": self.config})
        window_loss, window_n, window_samples, t_window = 0.0, 0, 0, time.perf_counter()
        samples_per_s = 0.0
        early_stop = False
        while self.epoch < spec.epochs and not self.stop_requested and not early_stop:
            model.train()
            torch.manual_seed(spec.seed * 7919 + self.epoch)  # dropout masks depend on (seed, epoch) only
            acc = defaultdict(float)
            ep_loss, ep_n = 0.0, 0
            batches = list(self._batches(self.epoch))
            groups = [batches[i: i + spec.grad_accum] for i in range(0, len(batches), spec.grad_accum)]
            groups = [g for g in groups if len(g) == spec.grad_accum] or groups[:1]
            for gi in range(self.batch_in_epoch, len(groups)):
                if self.stop_requested or (spec.max_steps and self.step >= spec.max_steps):
                    break
                self.optimizer.zero_grad(set_to_none=True)
                step_loss, n_samples = 0.0, 0
                for idx in groups[gi]:
                    idx_d = idx.to(x_all.device)
                    xb, yb = x_all[idx_d].to(self.device, non_blocking=True), y_all[idx_d].to(self.device, non_blocking=True)
                    with self._autocast():
                        out, loss = model(xb, yb)
                    (loss / spec.grad_accum).backward()
                    step_loss += loss.item() / spec.grad_accum
                    n_samples += len(idx)
                    self._metric_update(out.detach(), yb, acc)
                if not math.isfinite(step_loss):
                    raise TrainingError(f"the loss became {step_loss} at step {self.step + 1} (epoch {self.epoch + 1}); "
                                        f"the learning rate ({spec.lr:g}) is probably too high — try 10× lower or "
                                        "turn on gradient clipping")
                if spec.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                self.batch_in_epoch = gi + 1
                ep_loss += step_loss * n_samples
                ep_n += n_samples
                window_loss += step_loss
                window_n += 1
                window_samples += n_samples * self.world_size
                if self.step % spec.log_every == 0 or gi == len(groups) - 1:
                    now = time.perf_counter()
                    samples_per_s = window_samples / max(now - t_window, 1e-9)
                    steps_left = self.total_steps - self.step
                    eta = steps_left * (now - t_window) / max(window_n, 1)
                    self._emit("on_step_end", {"step": self.step, "epoch": self.epoch + (gi + 1) / len(groups),
                                               "loss": window_loss / window_n, "lr": self.scheduler.get_last_lr()[0],
                                               "samples_per_s": samples_per_s, "eta_s": eta,
                                               "progress": self.step / max(1, self.total_steps)})
                    window_loss, window_n, window_samples, t_window = 0.0, 0, 0, now
            reached_max = bool(spec.max_steps) and self.step >= spec.max_steps
            if self.batch_in_epoch < len(groups) and not reached_max:
                break  # stopped mid-epoch: the checkpoint keeps the position
            # epoch finished (or max_steps reached at its end)
            row = {"epoch": self.epoch + 1, "step": self.step, "train_loss": ep_loss / max(ep_n, 1)}
            if acc["count"]:
                row[f"train_{self.info.metric}"] = acc["correct"] / acc["count"]
            if self.info.metric == "perplexity":
                row["train_perplexity"] = math.exp(min(row["train_loss"], 50))
            val = self.evaluate("val") if len(self._data_on_device["val"][0]) else {}
            row.update({f"val_{k}": v for k, v in val.items()})
            row["samples_per_s"] = samples_per_s
            row["elapsed_s"] = time.perf_counter() - t_start
            self.epoch += 1
            self.batch_in_epoch = 0
            early_stop = self._track_best(row)
            self.history.append(row)
            self._emit("on_epoch_end", row)
            if reached_max:
                break
        completed = not self.stop_requested
        summary = {"epochs_done": self.epoch, "steps": self.step, "seconds": time.perf_counter() - t_start,
                   "samples_per_s": samples_per_s, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                   "early_stopped": early_stop, "completed": completed}
        if completed:
            test = self.evaluate("test")
            summary.update({f"test_{k}": v for k, v in test.items()})
        self._emit("on_fit_end", summary)
        return summary

    def _track_best(self, row: dict) -> bool:
        """Update the best validation metric; True when early stopping should end training."""
        key = f"val_{self.info.metric}" if f"val_{self.info.metric}" in row else "train_loss"
        value = row[key]
        better = (self.best_metric is None or
                  (value > self.best_metric if self.info.higher_is_better and key != "train_loss" else value < self.best_metric))
        if better:
            self.best_metric, self.best_epoch = value, row["epoch"]
        patience = self.spec.early_stop_patience
        return bool(patience) and row["epoch"] - self.best_epoch >= patience

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict:
        """Loss and the task's metric on a split ('val' or 'test')."""
        x, y = self._data_on_device[split]
        if self.spec.eval_max:
            x, y = x[: self.spec.eval_max], y[: self.spec.eval_max]
        return evaluate(self.raw_model, x, y, self.info, self.spec.batch_size * 4, self.device, self._autocast)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256, device: torch.device | None = None) -> torch.Tensor:
    """Model outputs for a tensor of inputs, batched, on the model's device, returned on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i: i + batch_size].to(device))[0].float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: DatasetInfo, batch_size: int = 256,
             device: torch.device | None = None, autocast=contextlib.nullcontext) -> dict:
    """{'loss', metric} of a model on (x, y): accuracy, token_accuracy, mae (original units) or perplexity."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, n, correct, count, abs_err = 0.0, 0, 0, 0, 0.0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i: i + batch_size].to(device), y[i: i + batch_size].to(device)
            with autocast():
                out, loss = model(xb, yb)
            total += loss.item() * len(xb)
            n += len(xb)
            if info.metric in ("accuracy", "token_accuracy"):
                correct += (out.argmax(-1) == yb).sum().item()
                count += yb.numel()
            elif info.metric == "mae":
                abs_err += (out.float().reshape(yb.shape) - yb).abs().sum().item()
                count += yb.numel()
    finally:
        model.train(was_training)
    if n == 0:
        return {}
    res = {"loss": total / n}
    if info.metric in ("accuracy", "token_accuracy"):
        res[info.metric] = correct / max(count, 1)
    elif info.metric == "mae":
        res["mae"] = abs_err / max(count, 1) * float(info.extra.get("std", 1.0))
    elif info.metric == "perplexity":
        res["perplexity"] = math.exp(min(res["loss"], 50))
    return res
