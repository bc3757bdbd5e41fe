"""Per-epoch snapshots: the weights of a run at epoch 0 (before training) and at every epoch end, so the
inspection pages can scrub filters, attention maps and explanations across training.

Format (version 1), one file per epoch: ``<run_dir>/snapshots/epoch-NNNN.safetensors`` where NNNN is the
number of epochs completed (0 = the initial weights). The tensors are the model's ``state_dict`` under
``model.<name>``, floating-point ones stored as float16 (a tensor that float16 cannot hold — values beyond
±65504 — stays float32); no optimizer state. The safetensors header carries the JSON metadata under the
key ``dlcore`` (like a checkpoint)::

    {"format": "dlcore-snapshot", "version": 1, "epoch": 3, "step": 471,
     "metrics": {...the epoch's row: train_loss, val_accuracy, ...},   # {} for epoch 0
     "model": {...model_to_dict(config)...}, "weights_sha256": "..."}

Writes are atomic (temporary file, fsync, rename: :func:`dlcore.runs.checkpoint._atomic_write`), and the
checksum is verified on load, as for checkpoints.

Bound: all snapshots of a run together stay within ``LIMITS.snapshot_bytes`` (``DLE_MAX_SNAPSHOTS_MB``,
32 MB by default). Before a snapshot is written, older ones are thinned so the new one fits: epoch 0 and
the newest are always kept, and between them the epochs that are multiples of the smallest power-of-two
stride that fits (so thinning is stable: a kept epoch stays kept until the stride doubles). A model whose
single snapshot is larger than a quarter of the budget (8 MB by default: about 4 M parameters) keeps no
snapshots — four frames are the least a slider is worth — and :func:`save_snapshot` returns None.

Example:
    >>> [s.epoch for s in list_snapshots(run_id)]
    [0, 1, 2, 3]
    >>> run, model = load_snapshot_model(run_id, 1)
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from dlcore.runs.checkpoint import (_CHECKSUM, _META_KEY, CheckpointError, _atomic_write, _embedded_meta,
                                    _save_file, read_safetensors, verify_checksum, weights_checksum)

FORMAT, VERSION = "dlcore-snapshot", 1
FOLDER = "snapshots"
MIN_FRAMES = 4  # a model too large for this many snapshots within the budget keeps none
_NAME = re.compile(r"epoch-(\d{4,})\.safetensors")


class SnapshotError(CheckpointError):
    """A snapshot is missing (thinned, never written, or the model is too large for snapshots) or unreadable."""


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot: the epochs completed when it was taken (0 = before training), the optimizer
    step, the file's size in bytes and the epoch's metrics (train/val loss and metric; empty for epoch 0)."""
    epoch: int
    step: int
    bytes: int
    metrics: dict = field(default_factory=dict)


def snapshot_dir(folder: str | Path) -> Path:
    """The snapshots folder of a run folder."""
    return Path(folder) / FOLDER


def snapshot_path(folder: str | Path, epoch: int) -> Path:
    return snapshot_dir(folder) / f"epoch-{int(epoch):04d}.safetensors"


def _stored(folder: Path) -> dict[int, Path]:
    """epoch -> file of the snapshots in a run folder (temporary files and strangers ignored)."""
    d = snapshot_dir(folder)
    if not d.is_dir():
        return {}
    out = {}
    for p in d.iterdir():
        m = _NAME.fullmatch(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def snapshot_tensors(state_dict: dict) -> dict:
    """The tensors a snapshot stores for a model's ``state_dict``: ``model.<name>``, floats as float16 unless
    float16 would overflow them (then float32), everything detached, on the CPU and contiguous."""
    import torch

    out = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.is_floating_point():
            half = t.to(torch.float16)
            t = half if bool(torch.isfinite(half).all()) or not bool(torch.isfinite(t).all()) else t.float()
        out[f"model.{name}"] = t.contiguous()
    return out


def _nbytes(tensors: dict) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def snapshot_bytes(state_dict: dict) -> int:
    """About how many bytes one snapshot of these weights takes (floats as float16; the header not counted).

    Example:
        >>> snapshot_bytes(build_model(get_preset("seed-cnn")).state_dict())
        186644
    """
    return sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in state_dict.values())


def keep_epochs(epochs: list[int], capacity: int) -> list[int]:
    """The epochs to keep out of ``epochs`` (sorted, the newest last) when at most ``capacity`` fit: the
    first and the newest always, and between them the multiples of the smallest power-of-two stride that fits.

    Example:
        >>> keep_epochs(list(range(11)), 5)
        [0, 4, 8, 10]
    """
    epochs = sorted(set(epochs))
    if len(epochs) <= max(capacity, 2):
        return epochs
    first, last = epochs[0], epochs[-1]
    stride = 1
    while True:
        kept = [e for e in epochs if e == first or e == last or (e - first) % stride == 0]
        if len(kept) <= max(capacity, 2):
            return kept
        stride *= 2


def save_snapshot(folder: str | Path, state_dict: dict, epoch: int, step: int, metrics: dict | None = None,
                  model_config=None, budget: int | None = None) -> Path | None:
    """Write the snapshot of ``epoch`` into a run folder (replacing one of the same epoch), thinning older
    snapshots first so that all of them stay within ``budget``.

    Args:
        folder: the run's folder (``RunStore.run_dir``).
        state_dict: the model's weights (``model.state_dict()``; a trainer's ``raw_model``).
        epoch: epochs completed (0: the initial weights).
        step: optimizer steps done.
        metrics: the epoch's metrics row (JSON-serialisable), kept in the header for the slider's labels.
        model_config: the ModelConfig that rebuilds the model (stored, so a snapshot stands on its own).
        budget: bytes all snapshots of the run may take (default ``LIMITS.snapshot_bytes``).

    Returns:
        The file written, or None when the model is too large for snapshots under the budget (one snapshot
        would exceed a quarter of it).

    Raises:
        OSError: the disk is full or not writable (the worker logs it and trains on).
    """
    from dlcore.config import LIMITS
    from dlcore.models import model_to_dict

    folder = Path(folder)
    budget = LIMITS.snapshot_bytes if budget is None else int(budget)
    if snapshot_bytes(state_dict) * MIN_FRAMES > budget:
        return None  # decided before anything is converted: a large model costs nothing per epoch
    tensors = snapshot_tensors(state_dict)
    meta = {"format": FORMAT, "version": VERSION, "epoch": int(epoch), "step": int(step),
            "metrics": dict(metrics or {})}
    if model_config is not None:
        meta["model"] = model_to_dict(model_config)
    meta[_CHECKSUM] = weights_checksum(tensors)
    text = json.dumps(meta)
    size = _nbytes(tensors) + len(text) + 1024  # tensor bytes + header (names, shapes, offsets, the metadata)
    if size * MIN_FRAMES > budget:
        return None
    stored = _stored(folder)
    stored.pop(int(epoch), None)  # replaced below (a resumed run rewrites the epochs after its checkpoint)
    sizes = [size] + [_size(p) for p in stored.values()]
    capacity = max(2, budget // max(sizes))
    keep = set(keep_epochs([*stored, int(epoch)], capacity))
    for e, p in stored.items():
        if e not in keep:
            p.unlink(missing_ok=True)
    if int(epoch) not in keep:  # older than what is kept (cannot happen in a forward run): nothing to write
        return None
    path = snapshot_path(folder, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda p: _save_file(tensors, p, text))
    return path


def drop_snapshots_after(folder: str | Path, epoch: int) -> None:
    """Delete the snapshots of epochs after ``epoch`` (a resumed run retrains those and writes them again)."""
    for e, p in _stored(Path(folder)).items():
        if e > epoch:
            p.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _header_meta(path: Path) -> dict | None:
    """The metadata of a snapshot file read from its header alone (the tensors are not read)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n > 16 * 2**20:
                return None
            header = json.loads(fh.read(n))
        text = (header.get("__metadata__") or {}).get(_META_KEY)
        meta = json.loads(text) if isinstance(text, str) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _folder(run_id: str, store):
    from dlcore.runs.store import RunStore

    store = store or RunStore()
    return store, store.run_dir(run_id)


def list_snapshots(run_id: str, store=None) -> list[Snapshot]:
    """The snapshots a run keeps, oldest first (reads the file headers only; unreadable files are skipped).

    Raises:
        RunNotFound: no such run.

    Example:
        >>> [(s.epoch, s.bytes) for s in list_snapshots(run_id)]
        [(0, 188092), (1, 188388), (2, 188388), (3, 188388)]
    """
    store, folder = _folder(run_id, store)
    store.get(run_id)
    out = []
    for epoch, path in _stored(folder).items():
        meta = _header_meta(path)
        if meta is None or meta.get("epoch") != epoch:
            continue
        metrics = meta.get("metrics")
        out.append(Snapshot(epoch=epoch, step=int(meta.get("step") or 0), bytes=_size(path),
                            metrics=metrics if isinstance(metrics, dict) else {}))
    return out


def snapshot_version(run_id: str, epoch: int | None = None, store=None) -> float:
    """When the snapshot of an epoch was written (its mtime), or with ``epoch`` None when the run's set of
    snapshots last changed (the folder's mtime: a snapshot added, replaced or thinned); 0.0 when there is
    none. A cache key."""
    folder = _folder(run_id, store)[1]
    try:
        return (snapshot_dir(folder) if epoch is None else snapshot_path(folder, epoch)).stat().st_mtime
    except OSError:
        return 0.0


def load_snapshot_tensors(folder: str | Path, epoch: int) -> tuple[dict, dict]:
    """(float32 tensors, meta) of one snapshot in a run folder, its checksum verified.

    Raises:
        SnapshotError: no snapshot of that epoch, or it is damaged.
    """
    import torch

    path = snapshot_path(folder, epoch)
    try:
        data = path.read_bytes()
    except OSError:
        kept = ", ".join(str(e) for e in _stored(Path(folder))) or "none"
        raise SnapshotError(f"there is no snapshot of epoch {epoch} (kept epochs: {kept})") from None
    try:
        tensors = read_safetensors(data)
        meta = _embedded_meta(data) or {}
        verify_checksum(tensors, meta, f"the snapshot of epoch {epoch}")
    except CheckpointError as e:
        raise SnapshotError(str(e)) from e
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"the file of epoch {epoch} is not a dlcore snapshot")
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, meta


def load_snapshot_model(run_id: str, epoch: int, store=None):
    """(run, model in eval mode on the CPU) with the weights a run had after ``epoch`` epochs (0: before
    training), like :func:`dlcore.load_run_model` for its checkpoint. Weights are float16-exact.

    Raises:
        RunNotFound: no such run. SnapshotError: that epoch was not kept or the file is damaged.

    Example:
        >>> run, model = load_snapshot_model(run_id, 0)   # the initial, untrained weights
    """
    from dlcore.models import model_from_dict
    from dlcore.runs.checkpoint import model_from_tensors

    store, folder = _folder(run_id, store)
    run = store.get(run_id)
    tensors, meta = load_snapshot_tensors(folder, epoch)
    config = model_from_dict(meta["model"]) if "model" in meta else run.model
    try:
        return run, model_from_tensors(config, tensors)
    except CheckpointError as e:
        raise SnapshotError(f"the snapshot of epoch {epoch} does not fit its model: {e}") from e
