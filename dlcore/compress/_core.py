"""Model compression: magnitude pruning, int8 quantization (onnxruntime) and knowledge distillation.

Each method turns a finished run into a new run (lineage: ``summary["lineage"]["parent"]``) whose
checkpoint every inspection page opens like any other:

* **prune** — global magnitude pruning of the conv, linear and recurrent weights at a sparsity (the masks
  of ``torch.nn.utils.prune.global_unstructured`` with L1, applied with ``prune.custom_from_mask``, so they
  also work on the trainer's channels-last weights), an optional short fine-tune that keeps the mask,
  then ``prune.remove`` so the zeros are plain weights of a plain model.
* **quantize** — the run exported to ONNX (``dlcore.export``), then ``onnxruntime.quantization``: static
  QDQ int8 (weights per channel, activations calibrated on training images) or dynamic int8. The int8
  ``.onnx`` file is the deployable artifact; the run's checkpoint holds the weights *as int8 stores
  them* (dequantized to float), so filters and explanations show the quantized weights. (torch's eager
  ``torch.ao.quantization`` is deprecated; onnxruntime is the path that stays.)
* **distill** — a smaller student trained on the teacher's soft targets at temperature T (Hinton et al.
  2015): ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)``.

Example:
    >>> res = compress_run(run_id, "prune", sparsity=0.5, finetune_epochs=1)
    >>> res["nonzero_params"] / res["params"], res["test_accuracy"]
    (0.50..., 0.96...)

Command line: ``python -m dlcore compress RUN --method prune|quantize|distill`` (see ``cli.py`` here).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from dlcore.compress.cli import METHODS, QUANT_MODES


class CompressionError(ValueError):
    """A compression method cannot run on this run or with these options; the message says why."""


# ============================================================================================ measuring
def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters)."""
    params = sum(p.numel() for p in model.parameters())
    return params, sum(int(torch.count_nonzero(p)) for p in model.parameters())


def weight_sparsity(model: nn.Module) -> float:
    """Share of exactly-zero values among the prunable weights (see :func:`prunable`)."""
    ws = [getattr(m, n) for m, n in prunable(model)]
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / max(total, 1)


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights as a safetensors file (what a checkpoint costs on disk)."""
    from safetensors.torch import save

    return len(save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))


@torch.no_grad()
def torch_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i: i + batch_size])[0].float() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)


def accuracy(logits: torch.Tensor | np.ndarray, y: torch.Tensor) -> float:
    """Share of correct arg-max predictions (per step for per-step outputs)."""
    pred = torch.as_tensor(np.asarray(logits)).argmax(-1)
    return float((pred == y).float().mean())


def latency_ms(fns: dict[str, Callable[[], object]], n_examples: int, rounds: int = 7,
               min_seconds: float = 0.2) -> dict[str, float]:
    """Median milliseconds per example of each callable, measured interleaved (A B C, C B A, ...).

    Each round calls a function repeatedly for at least ``min_seconds``; rounds alternate the order, so
    a busy machine's drift hits every contender alike. Call with one thread per contender for numbers
    that a shared CPU does not scramble.

    Args:
        fns: name -> a callable that runs one batch of ``n_examples``.
        n_examples: examples per call (1 for single-example latency).
    """
    for fn in fns.values():  # warm-up: allocations, lazy initialisation, oneDNN kernel choice
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, calls, t0 = fns[name], 0, time.perf_counter()
            while True:
                fn()
                calls += 1
                dt = time.perf_counter() - t0
                if dt >= min_seconds:
                    break
            times[name].append(dt / calls / n_examples * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


# ============================================================================================ pruning
_RNN_WEIGHTS = ("weight_ih", "weight_hh")


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every weight that pruning may zero: conv, linear and recurrent weights.

    Biases, normalisation and embeddings are left alone: they are few and pruning them costs accuracy.
    """
    out = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out.append((m, "weight"))
        elif isinstance(m, nn.RNNBase):
            out += [(m, n) for n, _ in m.named_parameters(recurse=False) if n.startswith(_RNN_WEIGHTS)]
    return out


def prune_global(model: nn.Module, sparsity: float) -> list[tuple[nn.Module, str]]:
    """Zero the ``sparsity`` share of prunable weights with the smallest magnitude, across all layers.

    The mask stays attached (``weight = weight_orig * weight_mask``), so fine-tuning keeps the zeros; call
    :func:`make_pruning_permanent` afterwards. The parameter objects an optimizer holds stay valid (they
    become ``weight_orig``).

    Args:
        model: changed in place.
        sparsity: share of weights to zero, 0 ≤ sparsity < 1.
    """
    if not 0.0 <= sparsity < 1.0:
        raise CompressionError(f"sparsity must be at least 0 and below 1, got {sparsity}")
    params = prunable(model)
    if not params:
        raise CompressionError("this model has no conv, linear or recurrent weights to prune")
    # torch's global_unstructured flattens weights with .view, which channels-last (trainer) weights refuse:
    # the same L1 rule here — the k smallest |w| over all layers, k = round(sparsity · n) — then each layer's
    # mask goes in through prune.custom_from_mask (the same weight_orig · weight_mask re-parametrisation)
    flat = torch.cat([getattr(m, n).detach().abs().reshape(-1) for m, n in params])
    k = int(round(float(sparsity) * flat.numel()))
    keep = torch.ones_like(flat)
    if k:
        keep[torch.topk(flat, k, largest=False).indices] = 0.0
    start = 0
    for m, n in params:
        w = getattr(m, n)
        mask = keep[start: start + w.numel()].reshape(w.shape)
        start += w.numel()
        prune.custom_from_mask(m, n, mask)
    return params


def make_pruning_permanent(model: nn.Module) -> None:
    """Fold every pruning mask into its weight (``prune.remove``): a plain model with zeros in it."""
    for m in model.modules():
        for name in [k[: -len("_orig")] for k, _ in m.named_parameters(recurse=False) if k.endswith("_orig")]:
            prune.remove(m, name)


# ============================================================================================ quantization
class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a tensor of inputs, in batches."""

    def __init__(self, input_name: str, x: torch.Tensor, batch_size: int = 32):
        self._batches = iter([{input_name: x[i: i + batch_size].numpy()} for i in range(0, len(x), batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # pragma: no cover - not used by MinMax calibration
        pass


@contextlib.contextmanager
def _quiet_ort():
    import logging
    import warnings

    lg = logging.getLogger()
    level = lg.level
    try:
        lg.setLevel(logging.ERROR)  # onnxruntime.quantization logs a line per tensor through the root logger
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        lg.setLevel(level)


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, mode: str = "static",
                  calibration: torch.Tensor | None = None, per_channel: bool = True) -> Path:
    """Write an int8 copy of an ONNX model with onnxruntime.quantization.

    Args:
        fp32_path: an ONNX file (e.g. from ``dlcore.export.to_onnx``).
        int8_path: where the int8 model goes.
        mode: 'static' (QDQ: int8 weights per channel and int8 activations whose ranges come from
            ``calibration``) or 'dynamic' (int8 weights, activation ranges measured on every call).
        calibration: a few hundred representative inputs, needed for 'static'.
        per_channel: one scale per output channel of each weight (keeps CNN accuracy).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in QUANT_MODES:
        raise CompressionError(f"mode must be one of {', '.join(QUANT_MODES)}, got {mode!r}")
    int8_path = Path(int8_path)
    with tempfile.TemporaryDirectory() as tmp, _quiet_ort():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))  # shape inference + graph clean-up, as the docs advise
        if mode == "static":
            if calibration is None or len(calibration) == 0:
                raise CompressionError("static quantization needs calibration inputs (training images)")
            name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
            quantize_static(str(pre), str(int8_path), _Calibration(name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        else:
            quantize_dynamic(str(pre), str(int8_path), per_channel=per_channel, weight_type=QuantType.QInt8)
    return int8_path


def ort_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with a fixed thread count (1 by default: steady timings on a shared CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def ort_outputs(session, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i: i + batch_size].numpy()})[0]
                           for i in range(0, len(x), batch_size)])


def dequantized_weights(int8_path: str | Path, model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The model's state dict with every weight that the int8 file quantized replaced by its int8 value
    times its scale (what onnxruntime multiplies with), so a torch model shows the quantized weights.

    onnxruntime names a quantized weight ``<name>_quantized`` beside ``<name>_scale`` and
    ``<name>_zero_point`` (static QDQ and dynamic alike), and the exporter keeps torch's parameter names
    (``model.<param>``); a dynamic Gemm's weight is stored transposed (``<name>_Transposed``), with one
    scale per output column. Returns (state dict, names of the weights replaced).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    init = {t.name: t for t in graph.initializer}
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    replaced = []
    for qname in [n for n in init if n.endswith("_quantized")]:
        base = qname[: -len("_quantized")]
        if base + "_scale" not in init:
            continue  # an int32 bias: its scale is the product of two others, not a weight of its own
        q = numpy_helper.to_array(init[qname]).astype(np.float32)
        scale = numpy_helper.to_array(init[base + "_scale"]).astype(np.float32)
        zp = numpy_helper.to_array(init[base + "_zero_point"]).astype(np.float32) \
            if base + "_zero_point" in init else np.zeros_like(scale)
        transposed = base.endswith("_Transposed")
        name = base[: -len("_Transposed")] if transposed else base
        name = name[len("model."):] if name.startswith("model.") else name
        if name not in sd or not sd[name].is_floating_point() or q.ndim < 2:
            continue
        if scale.ndim == 1 and scale.size > 1:  # per channel: output channels are axis 0, or the last if transposed
            shape = [1] * q.ndim
            shape[-1 if transposed else 0] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        w = (q - zp) * scale
        w = w.T if transposed else w
        if tuple(w.shape) != tuple(sd[name].shape):
            continue
        sd[name] = torch.from_numpy(np.ascontiguousarray(w)).to(sd[name].dtype)
        replaced.append(name)
    return sd, replaced


# ============================================================================================ distillation
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """Hinton's soft-target loss: ``alpha·T²·KL(p_t ‖ p_s) + (1 − alpha)·CE(s, y)`` at temperature T.

    The T² keeps the soft part's gradients on the scale of the hard part's as T changes.

    Args:
        student_logits, teacher_logits: (B, C) or (B, T, C).
        targets: class ids (B,) or (B, T).
        temperature: T > 0; larger spreads the teacher's probabilities over more classes.
        alpha: weight of the soft part, 0..1 (0 = plain cross-entropy).
    """
    C = student_logits.size(-1)
    s = student_logits.reshape(-1, C).float()
    t = teacher_logits.reshape(-1, C).float()
    T = float(temperature)
    soft = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                    reduction="batchmean") * (T * T)
    hard = F.cross_entropy(s, targets.reshape(-1))
    return alpha * soft + (1.0 - alpha) * hard


class LossWrapper(nn.Module):
    """``forward(x, targets) -> (output, loss)`` of a model, with a changed training loss.

    In training mode (targets given) ``loss_fn(x, output, loss, targets) -> loss`` replaces the loss and
    ``transform(x) -> x`` may change the inputs (augmentation); in eval mode it is the model itself, so
    validation and test report the plain task loss. The wrapped model's weights are the only weights
    (``state_dict`` is the model's, under ``model.``), so the trainer's ``raw_model`` stays the model.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable | None = None, transform: Callable | None = None):
        super().__init__()
        self.model = model
        self.config = getattr(model, "config", None)
        self._loss_fn, self._transform = loss_fn, transform

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        if not self.training or targets is None:
            return self.model(x, targets)
        if self._transform is not None:
            x = self._transform(x)
        out, loss = self.model(x, targets)
        if self._loss_fn is not None:
            loss = self._loss_fn(x, out, loss, targets)
        return out, loss


def teacher_loss(teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.5) -> Callable:
    """A ``loss_fn`` for :class:`LossWrapper`: the distillation loss against a frozen teacher in eval mode."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def fn(x, out, loss, targets):
        with torch.no_grad():
            t = teacher(x)[0]
        return distillation_loss(out, t, targets, temperature, alpha)

    return fn


def wrap_training_loss(trainer, loss_fn: Callable | None = None, transform: Callable | None = None) -> None:
    """Make a Trainer optimise another loss (and/or augment its batches) without touching its loop.

    The trainer's training forward goes through ``trainer.model``; evaluation, checkpoints and the
    optimizer use ``trainer.raw_model``, which stays the bare model.
    """
    if getattr(trainer, "world_size", 1) > 1 or getattr(trainer.spec, "compile", False):
        raise CompressionError("a wrapped training loss runs in a single process without torch.compile")
    trainer.model = LossWrapper(trainer.raw_model, loss_fn, transform)


# ============================================================================================ runs
def _evaluate(model: nn.Module, dataset) -> dict:
    """Test loss and metric of a torch model (the engine's evaluation function, wherever it lives now)."""
    fn = None
    with contextlib.suppress(ImportError, AttributeError):
        from dlcore.evaluation import evaluate_model as fn  # issue 9's name
    if fn is None:
        from dlcore.train.trainer import evaluate as fn
    x, y = dataset.test
    return fn(model, x, y, dataset.info)


def _trainer_cls():
    from dlcore import Trainer

    return Trainer


def _raw(trainer) -> nn.Module:
    return getattr(trainer, "raw_model", trainer.model)


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_run(store, data, config, train, model: nn.Module, summary: dict, history: list[dict] | None = None,
             name: str | None = None, lineage: dict | None = None, started: float | None = None,
             owner: str = "") -> str:
    """Record a model trained or changed in this process as a completed run: checkpoint (safetensors +
    its spec, as the worker writes it), one metrics row per epoch, summary with params and lineage.

    Args:
        store: the RunStore.
        data, config, train: the specs the run is listed with (``config`` must build ``model``).
        model: the model whose weights the checkpoint holds.
        summary: test metrics and whatever else the run reports.
        history: epoch rows (the trainer's ``history``).
        lineage: {'parent': run id, 'method': ..., 'options': {...}} for a derived run.
    """
    from dlcore.runs.checkpoint import save_checkpoint

    history = history or []
    params, nonzero = count_params(model)
    extra = {}
    if lineage and "parent" in inspect.signature(store.create).parameters:  # the lineage column, once it exists
        extra["parent"] = lineage["parent"]
    run_id = store.create(data, config, train, name=name, params=params, owner=owner, **extra)
    for row in history:
        store.log(run_id, "epoch", int(row.get("step", 0)), row, epoch=row.get("epoch"))
    meta = {"epoch": len(history), "step": int(history[-1]["step"]) if history else 0, "history": history,
            "data": data.to_dict(), "train": train.to_dict()}
    if lineage:
        meta["lineage"] = lineage
    save_checkpoint(store.run_dir(run_id), _model_tensors(model), meta, model_config=config)
    summary = {**summary, "params": params, "nonzero_params": nonzero}
    if lineage:
        summary.update(lineage=lineage, parent=lineage.get("parent"))
    store.update(run_id, status="completed", started=started or time.time(), finished=time.time(), progress=1.0,
                 device="cpu", summary=_jsonable(summary))
    return run_id


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda v: float(v) if isinstance(v, (np.floating, np.integer)) else str(v)))


def _load_parent(run_id: str, store):
    from dlcore.data import load_dataset
    from dlcore.runs import RunStore, load_run_model

    store = store or RunStore()
    run, model = load_run_model(run_id, store)
    if run.status != "completed":
        raise CompressionError(f"run {run_id} is {run.status}; compress a completed run")
    return store, run, model.float().cpu().eval(), load_dataset(run.data)


def _cpu_train(train_spec, **changes):
    """A TrainSpec on the CPU in fp32, with some fields changed (compression runs are small and measured)."""
    return train_spec.replace(device="cpu", precision="fp32", compile=False, early_stop_patience=0, **changes)


def _fit(config, dataset, spec, init: nn.Module | None = None, setup: Callable | None = None):
    """Train ``config`` on ``dataset``: weights from ``init`` (same architecture) and ``setup(trainer)``
    applied before the first step. Returns (trainer, summary)."""
    trainer = _trainer_cls()(config, dataset, spec)
    if init is not None:
        from dlcore.transfer import init_weights

        init_weights(_raw(trainer), init.state_dict())
    if setup is not None:
        setup(trainer)
    return trainer, trainer.fit()


def _latency_row(model: nn.Module, session_paths: dict[str, Path], x1: torch.Tensor, rounds: int = 7) -> dict:
    """ms per example at batch 1 on one CPU thread: torch fp32 and each ONNX file, interleaved."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sessions = {k: ort_session(p) for k, p in session_paths.items()}
        name = {k: s.get_inputs()[0].name for k, s in sessions.items()}
        xn = x1.numpy()
        fns: dict[str, Callable] = {}
        model = model.eval()

        def torch_fn():
            with torch.no_grad():
                model(x1)

        fns["torch_fp32"] = torch_fn
        for k, s in sessions.items():
            fns[k] = (lambda s=s, n=name[k]: s.run(None, {n: xn}))
        return latency_ms(fns, len(x1), rounds=rounds)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Outcome:
    """What one method made of the parent: the new model and what the new run records."""
    model: nn.Module
    config: object
    train: object
    name: str
    options: dict
    test: dict  # test_loss, test_accuracy
    bytes: int
    latency_ms: float | None
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # file name -> bytes, written into the new run's folder


def compress_run(run_id: str, method: str, *, store=None, sparsity: float = 0.5, finetune_epochs: int = 1,
                 finetune_lr: float | None = None, mode: str = "static", calibration: int = 256,
                 student="cnn-tiny", temperature: float = 4.0, alpha: float = 0.5, epochs: int | None = None,
                 baseline: bool = False, seed: int | None = None, measure_latency: bool = True,
                 owner: str | None = None) -> dict:
    """Compress a completed run into a new run of the store; returns the new run's facts.

    Args:
        run_id: the parent run (completed).
        method: 'prune', 'quantize' or 'distill'.
        sparsity, finetune_epochs, finetune_lr: prune — share of weights zeroed, epochs of fine-tuning with
            the mask kept (0 = none), at the parent's recipe with peak rate ``finetune_lr`` (default: the
            parent's; at 50-90 % sparsity it gave a higher validation accuracy than a tenth of it).
        mode, calibration: quantize — 'static' (QDQ, activations calibrated on that many training images)
            or 'dynamic'.
        student, temperature, alpha, epochs: distill — the student (a preset name, with its recipe, or a
            model config), T, the soft part's weight, epochs (default: the parent's).
        baseline: distill — also train the same student without the teacher (same epochs and seed), stored
            as a second run; its result is under 'baseline'.
        seed: training seed (default: the parent's).
        measure_latency: time CPU latency per example (a few seconds).
        owner: the identity the new run(s) belong to (default: the parent's owner).

    Returns:
        {'run_id', 'parent', 'method', 'test_accuracy', 'test_loss', 'bytes', 'params', 'nonzero_params',
        'latency_ms', ...} — ``bytes`` is the deployable file (int8 .onnx for quantize, the model's
        safetensors otherwise); ``latency_ms`` is per example at batch 1 on one CPU thread.

    Raises:
        CompressionError: unknown method or options, a run that is not a completed classifier.
        RunNotFound, CheckpointError: no such run, or no checkpoint.

    Example:
        >>> compress_run(run_id, "quantize", mode="static")["bytes"]
        119713
    """
    if method not in METHODS:
        raise CompressionError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    store, parent, model, dataset = _load_parent(run_id, store)
    info = dataset.info
    if info.metric not in ("accuracy", "token_accuracy"):
        raise CompressionError(f"compression reports accuracy; run {run_id} is a {info.task} run ({info.metric})")
    started = time.time()
    seed = parent.train.seed if seed is None else seed
    parent_facts = {"test_accuracy": _evaluate(model, dataset).get(info.metric), "bytes": state_bytes(model),
                    "params": count_params(model)[0]}
    if method == "prune":
        out = _prune(parent, model, dataset, sparsity, finetune_epochs, finetune_lr, seed, measure_latency)
    elif method == "quantize":
        out = _quantize(parent, model, dataset, mode, calibration, seed, measure_latency)
    else:
        out = _distill(parent, model, dataset, student, temperature, alpha, epochs, seed, measure_latency)
    lineage = {"parent": run_id, "method": method, "options": out.options}
    summary = {**out.test, "bytes": out.bytes, "latency_ms": out.latency_ms, "method": method,
               "parent_facts": parent_facts, "completed": True, "epochs_done": len(out.history), **out.extra}
    new_id = save_run(store, parent.data, out.config, out.train, out.model, summary, out.history, out.name, lineage,
                      started, parent.owner if owner is None else owner)
    for fname, data in out.files.items():
        (store.run_dir(new_id) / fname).write_bytes(data)
    params, nonzero = count_params(out.model)
    result = {"run_id": new_id, "parent": run_id, "method": method, **out.test, "bytes": out.bytes,
              "params": params, "nonzero_params": nonzero, "latency_ms": out.latency_ms,
              "parent_test_accuracy": parent_facts["test_accuracy"], "parent_bytes": parent_facts["bytes"],
              **out.extra}
    if method == "distill" and baseline:
        result["baseline"] = _baseline(store, parent, dataset, out, new_id, lineage, started)
    return _jsonable(result)


def _prune(parent, model, dataset, sparsity, finetune_epochs, finetune_lr, seed, measure) -> _Outcome:
    lr = parent.train.lr if finetune_lr is None else finetune_lr
    options = {"sparsity": sparsity, "finetune_epochs": finetune_epochs}
    train = _cpu_train(parent.train, epochs=max(finetune_epochs, 1), seed=seed)
    history: list = []
    if finetune_epochs > 0:
        options["finetune_lr"] = lr
        train = train.replace(lr=lr, warmup_steps=0)
        trainer, _ = _fit(model.config, dataset, train, init=model, setup=lambda t: prune_global(_raw(t), sparsity))
        new, history = _raw(trainer).cpu().float().eval(), trainer.history
    else:
        new = model
        prune_global(new, sparsity)
    make_pruning_permanent(new)
    new = _to_contiguous(new)
    ev = _evaluate(new, dataset)
    name = f"{parent.name} · pruned {sparsity:.0%}" + (f" + {finetune_epochs} ep" if finetune_epochs else "")
    return _Outcome(new, model.config, train, name, options,
                    {"test_loss": ev.get("loss"), "test_accuracy": ev.get(dataset.info.metric)}, state_bytes(new),
                    _latency_row(new, {}, dataset.test[0][:1])["torch_fp32"] if measure else None, history,
                    {"zero_share": weight_sparsity(new)})


def _quantize(parent, model, dataset, mode, calibration, seed, measure) -> _Outcome:
    """int8 ONNX (the artifact), its accuracy through onnxruntime, and a torch model of its int8 weights."""
    from dlcore.export import to_onnx

    config = model.config
    x, y = dataset.test
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = to_onnx(model, config, Path(tmp) / "model.fp32.onnx", {"run_id": parent.id})
        int8 = quantize_onnx(fp32, Path(tmp) / "model.int8.onnx", mode, _calibration_images(dataset, calibration, seed))
        out8 = ort_outputs(ort_session(int8), x)
        acc32 = accuracy(ort_outputs(ort_session(fp32), x), y)
        state, replaced = dequantized_weights(int8, model)
        lat = _latency_row(model, {"onnx_fp32": fp32, "onnx_int8": int8}, x[:1]) if measure else {}
        size, size32, data = int8.stat().st_size, fp32.stat().st_size, int8.read_bytes()
    new = _rebuilt(config, state)
    loss8 = float(F.cross_entropy(torch.from_numpy(out8).reshape(-1, out8.shape[-1]), y.reshape(-1)))
    extra = {"fp32_onnx_bytes": size32, "size_ratio": size / size32, "onnx_fp32_test_accuracy": acc32,
             "dequantized_torch_test_accuracy": _evaluate(new, dataset).get(dataset.info.metric),
             "latency": lat, "artifact": "model.int8.onnx", "int8_weights": replaced}
    return _Outcome(new, config, parent.train, f"{parent.name} · int8 ({mode})",
                    {"mode": mode, "calibration": calibration},
                    {"test_loss": loss8, "test_accuracy": accuracy(out8, y)},
                    size, lat.get("onnx_int8"), [], extra, {"model.int8.onnx": data})


def _distill(parent, teacher, dataset, student, temperature, alpha, epochs, seed, measure) -> _Outcome:
    from dlcore.models import PRESETS, model_to_dict

    if isinstance(student, str) and student not in PRESETS:
        raise CompressionError(f"unknown student preset {student!r}; known: {', '.join(PRESETS)}")
    s_config = PRESETS[student].config if isinstance(student, str) else student
    options = {"student": student if isinstance(student, str) else model_to_dict(student),
               "temperature": temperature, "alpha": alpha}
    train = _cpu_train(parent.train, epochs=epochs or parent.train.epochs, seed=seed)
    if isinstance(student, str) and PRESETS[student].train:
        train = train.replace(**PRESETS[student].train)
    trainer, _ = _fit(s_config, dataset, train,
                      setup=lambda t: wrap_training_loss(t, teacher_loss(teacher, temperature, alpha)))
    new = _to_contiguous(_raw(trainer).cpu().float().eval())
    ev = _evaluate(new, dataset)
    label = student if isinstance(student, str) else "custom student"
    name = f"{label} distilled from {parent.name} (T={temperature:g}, α={alpha:g})"
    return _Outcome(new, trainer.config, train, name,
                    options, {"test_loss": ev.get("loss"), "test_accuracy": ev.get(dataset.info.metric)},
                    state_bytes(new), _latency_row(new, {}, dataset.test[0][:1])["torch_fp32"] if measure else None,
                    trainer.history, {"teacher_params": count_params(teacher)[0]})


def _baseline(store, parent, dataset, distilled: _Outcome, distilled_id: str, lineage: dict, started: float) -> dict:
    """The distilled student's architecture trained without the teacher: same spec (epochs, seed, recipe)."""
    trainer, _ = _fit(distilled.config, dataset, distilled.train)
    base = _to_contiguous(_raw(trainer).cpu().float().eval())
    ev = _evaluate(base, dataset)
    test = {"test_loss": ev.get("loss"), "test_accuracy": ev.get(dataset.info.metric)}
    b_lineage = {"parent": parent.id, "method": "baseline",
                 "options": {**lineage["options"], "alpha": 0.0, "of": distilled_id}}
    label = distilled.name.split(" distilled from ")[0]
    b_id = save_run(store, parent.data, trainer.config, distilled.train, base,
                    {**test, "bytes": distilled.bytes, "latency_ms": distilled.latency_ms, "completed": True,
                     "epochs_done": len(trainer.history)},
                    trainer.history, f"{label} without the teacher (same epochs, seed)", b_lineage, started,
                    store.get(distilled_id).owner)  # whoever owns the distilled run owns its baseline
    return {"run_id": b_id, **test}


def _to_contiguous(model: nn.Module) -> nn.Module:
    """Back to the default memory layout (the trainer trains CNNs channels-last)."""
    return model.to(memory_format=torch.contiguous_format)


def _rebuilt(config, state: dict[str, torch.Tensor]) -> nn.Module:
    from dlcore.models import build_model

    m = build_model(config)
    m.load_state_dict(state)
    return m.eval()


def _calibration_images(dataset, n: int, seed: int) -> torch.Tensor:
    """``n`` training inputs in a seeded order (calibration must not see the test set)."""
    x = dataset.train[0]
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[: max(1, min(n, len(x)))]].float().contiguous()


def lineage(store, run_id: str) -> list[str]:
    """Ids from a run up to its root ancestor, following ``summary['lineage']['parent']``."""
    chain, seen = [run_id], {run_id}
    while True:
        parent = (store.get(chain[-1]).summary.get("lineage") or {}).get("parent")
        if not parent or parent in seen:
            return chain
        chain.append(parent)
        seen.add(parent)


def descendants(store, run_id: str) -> list[str]:
    """Every run whose lineage leads to ``run_id`` (children, grandchildren, ...), oldest first."""
    runs = store.list()
    children: dict[str, list[str]] = {}
    for r in runs:
        p = (r.summary.get("lineage") or {}).get("parent")
        if p:
            children.setdefault(p, []).append(r.id)
    out, todo = [], [run_id]
    while todo:
        for c in sorted(children.get(todo.pop(0), [])):
            out.append(c)
            todo.append(c)
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes: smaller x (size or latency), higher y
    (accuracy). Sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


__all__ = ["METHODS", "QUANT_MODES", "CompressionError", "compress_run", "prune_global", "make_pruning_permanent",
           "prunable", "weight_sparsity", "count_params", "state_bytes", "quantize_onnx", "dequantized_weights",
           "ort_session", "ort_outputs", "distillation_loss", "teacher_loss", "LossWrapper", "wrap_training_loss",
           "latency_ms", "accuracy", "save_run", "lineage", "descendants", "pareto_front"]
