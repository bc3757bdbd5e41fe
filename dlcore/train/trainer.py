"""One trainer for every model family (each ``forward(x, targets) -> (output, loss)``).

It knows nothing of the UI or the run store: it reports through callbacks (minGPT style) and can be
stopped by setting ``trainer.stop_requested``. Batches are index slices of in-memory tensors, moved to
the device once, so small datasets pay no DataLoader cost. Batch order of epoch e depends only on
(seed, e), so a resumed run replays the exact batches an uninterrupted run would have seen.

Batch size is *global*: ``TrainSpec.batch_size`` examples go through one forward/backward pass, split
across the processes of a distributed run (``torchrun``), so a run on N GPUs follows the same loss curve
as a single process. One optimizer step uses ``batch_size × grad_accum`` examples.

Fast path: channels-last CNNs (CPU and CUDA); on CUDA also data resident on the GPU, bf16 autocast,
fused AdamW, SDPA attention, optional ``torch.compile``, no host synchronisation between logging steps.
Step and epoch callbacks report throughput, model FLOP/s and model-FLOPs utilisation (MFU) against the
GPU's peak (``dlcore.device``). The loop reads top-down: :meth:`Trainer.fit` runs epochs
(:meth:`~Trainer._train_epoch`) of optimizer steps (:meth:`~Trainer._train_step`), reports logging windows
(:meth:`~Trainer._log_step`), closes each epoch (:meth:`~Trainer._end_epoch`) and the fit (:meth:`~Trainer._end_fit`).

Example:
    >>> t = Trainer(get_preset("cnn-tiny"), load_dataset(DataSpec(name="digits")), TrainSpec(epochs=1))
    >>> summary = t.fit()
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from dlcore.data.base import Dataset
from dlcore.device import peak_flops, pick_device
from dlcore.errors import TrainingError
from dlcore.evaluation import metric_sums, metrics_from_sums
from dlcore.models import ModelConfig, build_model, family_of, for_data
from dlcore.overfitting import overfit_epoch
from dlcore.specs import TrainSpec

EVENTS = ("on_fit_start", "on_step_end", "on_epoch_end", "on_checkpoint", "on_fit_end")
__all__ = ["Trainer", "TrainingError", "EVENTS"]


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


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class _Span:
    """Running sums over a stretch of training: a logging window or an epoch (floats or device scalars,
    see :meth:`Trainer._scalar`)."""
    loss: float | torch.Tensor = 0.0  # loss × examples, this rank
    n: int = 0  # examples, this rank
    correct: float | torch.Tensor = 0.0  # correct predictions (classification), this rank
    count: int = 0  # predictions counted (tokens for per-step tasks), this rank
    steps: int = 0  # optimizer steps
    samples: int = 0  # examples of those steps, all ranks
    t0: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0  # set when the span closes


class Trainer:
    """Train a model config on a dataset with a TrainSpec.

    Args:
        model_config: a model config; its data-dependent fields are filled from the dataset.
        dataset: tensors and info (see ``dlcore.data.load_dataset``).
        spec: training settings.
        state: a checkpoint (tensors, meta) from :meth:`checkpoint_state` to resume from.
        init: weights to start from (a finished run's checkpoint tensors or state dict; see
            ``dlcore.transfer.init_weights``); ``spec.freeze`` names the layers left untrained.
        rank, world_size: this process's place in a distributed run; by default taken from an initialised
            torch.distributed process group (see ``dlcore.train.distributed``), else a single process.
            With world_size > 1 the model is wrapped in DistributedDataParallel and every global batch is
            split across the ranks.
    """

    def __init__(self, model_config: ModelConfig, dataset: Dataset, spec: TrainSpec,
                 state: tuple[dict, dict] | None = None, rank: int | None = None, world_size: int | None = None,
                 init: dict | None = None):
        self.spec, self.dataset, self.info = spec, dataset, dataset.info
        self.config = for_data(model_config, dataset.info)
        if rank is None or world_size is None:
            rank, world_size = _dist_rank_world()
        self.rank, self.world_size = rank, world_size
        if world_size > 1 and spec.batch_size < world_size:
            raise TrainingError(f"batch size {spec.batch_size} is split across {world_size} processes; it must be "
                                f"at least {world_size}")
        self.device = pick_device(spec.device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # the local rank's GPU
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.stop_requested = False
        self._stop_agreed = False  # distributed: the stop every rank has agreed on (see _agree_stop)
        torch.manual_seed(spec.seed)
        model = build_model(self.config)
        if spec.checkpointing:
            if not hasattr(model, "grad_checkpointing"):
                raise TrainingError(f"activation checkpointing is available for Transformers only, not for the "
                                    f"{family_of(self.config)} family; turn it off or lower the batch size")
            model.grad_checkpointing = True
        # CNNs train faster with NHWC tensors: cuDNN's tensor-core kernels and oneDNN's CPU kernels use that
        # layout (seed-cnn on a CPU core: 15.0 → 11.8 ms per step of 32)
        self.channels_last = self.device.type in ("cpu", "cuda") and family_of(self.config) == "cnn"
        if world_size > 1 and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over the global batch
        if init is not None or spec.freeze:  # transfer learning: before the optimizer and DDP see the model
            from dlcore.transfer import TransferError, freeze, init_weights

            if init is not None:
                init_weights(model, init)  # a new output layer when the class count differs
            if spec.freeze:
                freeze(model, spec.freeze)
                if not any(p.requires_grad for p in model.parameters()):
                    raise TransferError(f"freeze {', '.join(spec.freeze)} leaves no layer to train", "freeze")
        layout = {"memory_format": torch.channels_last} if self.channels_last else {}
        model = model.to(self.device, **layout)
        self.raw_model = model  # unwrapped, for checkpoints and inspection
        self.n_train = len(dataset.train[0])
        self.steps_per_epoch = math.ceil(self._n_batches() / spec.grad_accum)
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
        self._ddp = None
        self.model: nn.Module = model
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = self.model = DistributedDataParallel(model, device_ids=ids)
        if spec.compile:
            self.model = torch.compile(self.model)
        self._l1_weights, self._augment = self._remedies()
        self._flops_per_sample: int | None = None
        self._peak = peak_flops(self.device, self.autocast_dtype or torch.float32)
        self._data_on_device = self._to_device(dataset)
        self._counting = self.info.metric in ("accuracy", "token_accuracy")  # classification: count correct
        # state of a fit() in progress: its start, its first step, the logging window, the last window's speed
        self._t_fit = 0.0
        self._first_step = 0
        self._window = _Span()
        self._samples_per_s = 0.0

    # ------------------------------------------------------------------ set-up
    def _remedies(self) -> tuple[list[torch.Tensor], Callable | None]:
        """The L1 penalty's weights (conv/linear/recurrent weights, not biases) and the image augmentation
        of the spec, if any (``dlcore.overfitting``)."""
        s = self.spec
        weights: list[torch.Tensor] = []
        if s.l1 > 0:
            from dlcore.compress import prunable

            weights = [getattr(m, n) for m, n in prunable(self.raw_model) if getattr(m, n).requires_grad]
        augment = None
        if s.augment_shift > 0 or s.augment_degrees > 0:
            if self.info.input_kind != "image":
                raise TrainingError(f"augmentation (shifts and rotations) is for images; this dataset's inputs are "
                                    f"{self.info.input_kind}: set augment_shift and augment_degrees to 0")
            from dlcore.overfitting import shift_rotate

            augment = shift_rotate(s.augment_shift, s.augment_degrees)
        return weights, augment

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s, params = self.spec, [p for p in self.raw_model.parameters() if p.requires_grad]
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

    def _scalar(self, t: torch.Tensor) -> float | torch.Tensor:
        """A running-sum term: a Python float on the CPU (``.item()`` is free there, tiny tensor ops are not);
        on a GPU a detached device scalar, so nothing waits for the GPU until a logging step reads the sums."""
        return t.item() if self.device.type == "cpu" else t.detach().float()

    @property
    def flops_per_sample(self) -> int:
        """Forward-pass FLOPs of one example at the sequence length the model reads, counted on first use."""
        if self._flops_per_sample is None:
            self._flops_per_sample = self.config.flops_per_sample(self.config.sequence_length(self.info))
        return self._flops_per_sample

    def throughput(self, samples_per_s: float) -> dict:
        """Model FLOP/s (3 × forward FLOPs per sample × samples/s) and MFU against the device's peak (or None)."""
        flops = 3.0 * self.flops_per_sample * samples_per_s
        return {"model_flops_per_s": flops, "mfu": flops / (self._peak * self.world_size) if self._peak else None}

    # ------------------------------------------------------------------ distributed helpers
    def _all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return t

    def _agree_stop(self) -> None:
        """All ranks stop at the same step: a stop asked of any rank (the one that reads the store) wins.

        Called at every logging step and epoch end, the points every rank reaches together.
        """
        if self.world_size > 1:
            flag = torch.tensor([float(self.stop_requested)], device=self._comm_device())
            self._stop_agreed = self.stop_requested = bool(self._all_reduce(flag, "max").item())

    def _stopping(self) -> bool:
        return self.stop_requested if self.world_size == 1 else self._stop_agreed

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

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

    # ------------------------------------------------------------------ batches
    def _n_batches(self) -> int:
        """Global batches per epoch (the same count on every rank)."""
        b, W = self.spec.batch_size, self.world_size
        n = math.ceil(self.n_train / b)
        if W > 1 and self.n_train % b and self.n_train % b < W:
            n -= 1  # a last batch smaller than the number of ranks is dropped: every rank needs an example
        return max(n, 1)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.spec.seed * 100_003 + epoch)
        return torch.randperm(self.n_train, generator=g)

    def _global_batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        """Index batches of ``batch_size`` over all ranks (views into ``order``)."""
        return list(order.split(self.spec.batch_size))[: self._n_batches()]

    def _shard(self, glob: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (sizes differ by at most one)."""
        return glob.tensor_split(self.world_size)[self.rank] if self.world_size > 1 else glob

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict:
        """Train to the end (or until stopped); returns the summary with the test metrics."""
        self._t_fit = time.perf_counter()
        self._emit("on_fit_start", {"total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                                    "device": str(self.device), "config": self.config, "world_size": self.world_size})
        self._first_step = self.step + 1  # reported at once, so a watcher sees the run move within a second
        self._window = _Span()
        train_seconds, train_samples, early_stop = 0.0, 0, False
        while self.epoch < self.spec.epochs and not self._stopping() and not early_stop:
            epoch, finished = self._train_epoch()
            train_seconds += epoch.seconds
            train_samples += epoch.samples
            if not finished and not self._reached_max_steps():
                break  # stopped mid-epoch: the checkpoint keeps the position
            early_stop = self._end_epoch(epoch)  # the epoch finished, or max_steps was reached in it
            if self._reached_max_steps():
                break
        return self._end_fit(train_seconds, train_samples, early_stop)

    def _reached_max_steps(self) -> bool:
        return bool(self.spec.max_steps) and self.step >= self.spec.max_steps

    def _train_epoch(self) -> tuple[_Span, bool]:
        """This epoch's optimizer steps from ``batch_in_epoch`` on, until its end or a stop.

        Returns its running sums and whether it reached its last step.
        """
        spec = self.spec
        self.model.train()
        torch.manual_seed(spec.seed * 7919 + self.epoch + 1_000_003 * self.rank)  # dropout: (seed, epoch, rank)
        epoch = _Span()
        x_all, y_all = self._data_on_device["train"]
        batches = self._global_batches(self._epoch_order(self.epoch).to(x_all.device))
        # micro-batches of one optimizer step; the last step of an epoch may have fewer (weighted by size)
        groups = [batches[i: i + spec.grad_accum] for i in range(0, len(batches), spec.grad_accum)]
        for gi in range(self.batch_in_epoch, len(groups)):
            if self._stopping() or self._reached_max_steps():
                break
            self._train_step(groups[gi], x_all, y_all, epoch)
            self.batch_in_epoch = gi + 1
            if self.step % spec.log_every == 0 or gi == len(groups) - 1 or self.step == self._first_step:
                self._log_step(epoch_fraction=(gi + 1) / len(groups))
        epoch.seconds = time.perf_counter() - epoch.t0
        return epoch, self.batch_in_epoch >= len(groups)

    def _train_step(self, group: list[torch.Tensor], x_all: torch.Tensor, y_all: torch.Tensor, epoch: _Span) -> None:
        """One optimizer step over the micro-batches of ``group`` (global index batches); adds to the sums."""
        window = self._window
        self.optimizer.zero_grad(set_to_none=True)
        n_step = sum(len(g) for g in group)  # examples in this optimizer step, all ranks
        for mi, glob in enumerate(group):
            idx = self._shard(glob)
            xb, yb = self._batch(x_all, y_all, idx)
            if self._augment is not None:
                xb = self._augment(xb)
            # gradients are all-reduced once per optimizer step, on its last micro-batch
            last = mi == len(group) - 1
            sync = contextlib.nullcontext() if last or self._ddp is None else self._ddp.no_sync()
            with sync:
                with self._autocast():
                    out, loss = self._forward(self.model, xb, yb)
                # each micro-batch weighs by its share of the step's examples; DDP then averages over ranks,
                # so the gradient is that of the mean loss over the global batch
                share = len(idx) * self.world_size / n_step
                objective = loss  # the L1 penalty is optimised, not logged: the curves stay comparable
                if self._l1_weights:
                    objective = loss + self.spec.l1 * sum(w.abs().sum() for w in self._l1_weights)
                (objective if share == 1 else objective * share).backward()
            lsum = self._scalar(loss) * len(idx)
            window.loss += lsum
            epoch.loss += lsum
            window.n += len(idx)
            epoch.n += len(idx)
            if self._counting:
                epoch.correct += self._scalar((out.detach().argmax(-1) == yb).sum())
                epoch.count += yb.numel()
        if self.spec.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.spec.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        window.steps += 1
        epoch.samples += n_step

    def _batch(self, x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor):
        """(inputs, targets) of an index batch, on the device, in the model's memory layout."""
        xb, yb = x_all[idx], y_all[idx]
        if x_all.device != self.device:  # a dataset too big to keep on the GPU
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        if self.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def _log_step(self, epoch_fraction: float) -> None:
        """Report the logging window that ends at this step (``on_step_end``), agree on a stop, open a new window."""
        window = self._window
        loss_sum, n_glob = self._sum_over_ranks([window.loss, window.n])
        loss_mean = loss_sum / max(n_glob, 1)
        self._check_finite(loss_mean)
        seconds = time.perf_counter() - window.t0
        self._samples_per_s = n_glob / max(seconds, 1e-9)
        eta = (self.total_steps - self.step) * seconds / max(window.steps, 1)
        self._emit("on_step_end", {"step": self.step, "epoch": self.epoch + epoch_fraction,
                                   "loss": loss_mean, "lr": self.scheduler.get_last_lr()[0],
                                   "samples_per_s": self._samples_per_s, "eta_s": eta,
                                   "progress": self.step / max(1, self.total_steps),
                                   **self.throughput(self._samples_per_s)})
        self._agree_stop()
        self._window = _Span()

    def _end_epoch(self, epoch: _Span) -> bool:
        """Close an epoch: its row (train and validation metrics, throughput) goes to the history and to
        ``on_epoch_end``. Returns True when early stopping ends training."""
        loss_sum, n_glob, correct, count = self._sum_over_ranks([epoch.loss, epoch.n, epoch.correct, epoch.count])
        row = {"epoch": self.epoch + 1, "step": self.step, "train_loss": loss_sum / max(n_glob, 1)}
        self._check_finite(row["train_loss"])
        if self._counting and count:
            row[f"train_{self.info.metric}"] = correct / count
        if self.info.metric == "perplexity":
            row["train_perplexity"] = math.exp(min(row["train_loss"], 50))
        val = self.evaluate_split("val") if len(self._data_on_device["val"][0]) else {}
        row.update({f"val_{k}": v for k, v in val.items()})
        row["samples_per_s"] = epoch.samples / max(epoch.seconds, 1e-9)
        row.update(self.throughput(row["samples_per_s"]))
        row["elapsed_s"] = time.perf_counter() - self._t_fit
        self.epoch += 1
        self.batch_in_epoch = 0
        early_stop = self._track_best(row)
        self.history.append(row)
        self._emit("on_epoch_end", row)
        self._agree_stop()
        return early_stop

    def _end_fit(self, train_seconds: float, train_samples: int, early_stop: bool) -> dict:
        """The summary of the fit (``on_fit_end``), with the test metrics when training was not stopped."""
        completed = not self._stopping()
        samples_per_s = train_samples / train_seconds if train_seconds > 0 else self._samples_per_s
        summary = {"epochs_done": self.epoch, "steps": self.step, "seconds": time.perf_counter() - self._t_fit,
                   "train_seconds": train_seconds, "samples_per_s": samples_per_s, **self.throughput(samples_per_s),
                   "best_metric": self.best_metric, "best_epoch": self.best_epoch, "early_stopped": early_stop,
                   "completed": completed, "world_size": self.world_size,
                   "overfit_epoch": overfit_epoch(self.history)}
        if completed:
            summary.update({f"test_{k}": v for k, v in self.evaluate_split("test").items()})
        self._emit("on_fit_end", summary)
        return summary

    def _sum_over_ranks(self, values: list) -> list[float]:
        """Python floats of running sums (floats or device scalars), summed over the ranks of a distributed run."""
        if self.world_size == 1:
            return [float(v) for v in values]
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        t = torch.stack([torch.as_tensor(v, dtype=dtype, device=self._comm_device()) for v in values])
        return self._all_reduce(t).tolist()

    def _forward(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor):
        if not self.spec.compile or self.step > 0:
            return model(xb, yb)
        try:  # compilation happens on the first call: name the culprit instead of a compiler traceback
            return model(xb, yb)
        except Exception as e:
            raise TrainingError(f"torch.compile failed ({type(e).__name__}: {str(e).strip()[:300]}); "
                                "turn 'compile' off to train without it") from e

    def _check_finite(self, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingError(f"the loss became {loss} by step {self.step} (epoch {self.epoch + 1}); the learning "
                                f"rate ({self.spec.lr:g}) is probably too high — try 10× lower or turn on gradient "
                                "clipping")

    def _track_best(self, row: dict) -> bool:
        """Update the best validation metric; True when early stopping should end training."""
        key = f"val_{self.info.metric}" if f"val_{self.info.metric}" in row else "train_loss"
        value = row[key]
        higher = self.info.higher_is_better and key != "train_loss"
        better = self.best_metric is None or (value > self.best_metric if higher else value < self.best_metric)
        if better:
            self.best_metric, self.best_epoch = value, row["epoch"]
        patience = self.spec.early_stop_patience
        return bool(patience) and row["epoch"] - self.best_epoch >= patience

    @torch.no_grad()
    def evaluate_split(self, split: str = "test") -> dict:
        """Loss and the task's metric on a split ('val' or 'test'); each rank scores its share, then all agree."""
        x, y = self._data_on_device[split]
        if self.spec.eval_max:
            x, y = x[: self.spec.eval_max], y[: self.spec.eval_max]
        if self.world_size > 1:
            import torch.distributed as dist

            for buf in self.raw_model.buffers():  # batch-norm statistics of rank 0, so every shard sees one model
                dist.broadcast(buf, 0)
            x, y = x.tensor_split(self.world_size)[self.rank], y.tensor_split(self.world_size)[self.rank]
        sums = metric_sums(self.raw_model, x, y, self.info, self.spec.batch_size * 4, self.device, self._autocast)
        return metrics_from_sums(self._all_reduce(sums.to(self._comm_device())), self.info)
