"""Checkpoints: safetensors for tensors, JSON for the specs that rebuild the model (nanoGPT's
``model_args``). Loading never unpickles.

Crash safety: a checkpoint is one file. The JSON metadata (position, specs) is embedded in the
safetensors header, so weights and position can never disagree; ``checkpoint.json`` is a readable copy
written after it. Every write goes to a temporary file, is fsynced and renamed into place, so a kill -9
or a full disk mid-write leaves the previous checkpoint intact and loadable.

Integrity: the metadata carries ``weights_sha256``, a SHA-256 over every tensor's name, type, shape and
bytes; loading recomputes it, so a flipped bit in the weights is a CheckpointError, not a silently
different model. (safetensors itself checks only the layout.)
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from dlcore.models import ModelConfig, build_model, model_from_dict, model_to_dict
from dlcore.models.summary import build_meta_model

_META_KEY = "dlcore"  # key of the JSON metadata inside the safetensors header
_CHECKSUM = "weights_sha256"  # key of the weights' checksum in the metadata
_MAX_HEADER = 100 * 2**20  # a safetensors header larger than this is not a checkpoint of ours


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, not safetensors, or does not match its spec."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. Windows); the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """Write via a per-process temporary file, fsync, rename over ``path``; on any error the old file stays."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def weights_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over every tensor's name, dtype, shape and bytes, in name order: what
    ``weights_sha256`` in a checkpoint's metadata holds. Independent of the file layout.

    Example:
        >>> weights_checksum({"w": torch.zeros(2)}) == weights_checksum({"w": torch.zeros(2)})
        True
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _save_file(tensors: dict[str, torch.Tensor], path: Path, text: str) -> None:
    """safetensors' save_file with its errors as OSError (it raises SafetensorError for a full disk)."""
    try:
        save_file(tensors, str(path), metadata={_META_KEY: text})
    except SafetensorError as e:
        full = "no space left" in str(e).lower() or "os error 28" in str(e)
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      "No space left on device" if full else f"the checkpoint could not be written ({e})") from e


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict,
                    model_config: ModelConfig | None = None) -> Path:
    """Write ``checkpoint.safetensors`` (tensors + embedded JSON meta with the weights' checksum) and
    ``checkpoint.json``, atomically.

    Raises:
        OSError: the disk is full (errno ENOSPC) or not writable; the previous checkpoint is left as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    if model_config is not None:
        meta["model"] = model_to_dict(model_config)
    meta[_CHECKSUM] = weights_checksum(tensors)
    text = json.dumps(meta)
    _atomic_write(folder / "checkpoint.safetensors", lambda p: _save_file(tensors, p, text))
    _atomic_write(folder / "checkpoint.json", lambda p: p.write_text(text))
    return folder / "checkpoint.safetensors"


def verify_checksum(tensors: dict[str, torch.Tensor], meta: dict, what: str = "the checkpoint") -> None:
    """Raise CheckpointError when ``meta`` carries a weights checksum that the tensors do not match
    (a checkpoint written before checksums existed has none and passes)."""
    expected = meta.get(_CHECKSUM)
    if expected is None:
        return
    if not isinstance(expected, str) or weights_checksum(tensors) != expected:
        raise CheckpointError(f"the weights of {what} do not match their checksum ({_CHECKSUM}): the file was "
                              "damaged or changed after it was saved (e.g. flipped bits on disk or in transfer). "
                              "Use an intact copy")


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint folder; raises CheckpointError for anything missing or unreadable."""
    folder = Path(folder)
    st, js = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    if not st.exists():
        raise CheckpointError(f"no checkpoint in {folder.name}: the run has not finished an epoch yet")
    try:
        data = st.read_bytes()
    except OSError as e:
        raise CheckpointError(f"the checkpoint in {folder.name} cannot be read ({e.strerror or e})") from e
    tensors = read_safetensors(data)
    meta = _embedded_meta(data)
    if meta is None:
        if not js.exists():
            raise CheckpointError(f"the checkpoint in {folder.name} has no metadata (checkpoint.json is missing)")
        meta = _read_meta(js.read_text())
    verify_checksum(tensors, meta, f"the checkpoint in {folder.name}")
    return tensors, meta


# the training position a resumable checkpoint holds: field -> (check, what it must be)
_POSITION = {
    "epoch": (lambda v: _whole(v), "a whole number ≥ 0"),
    "step": (lambda v: _whole(v), "a whole number ≥ 0"),
    "batch_in_epoch": (lambda v: _whole(v), "a whole number ≥ 0"),
    "scheduler": (lambda v: isinstance(v, dict), "an object"),
    "param_groups": (lambda v: isinstance(v, list) and all(isinstance(g, dict) for g in v), "a list of objects"),
    "history": (lambda v: isinstance(v, list), "a list"),
    "best_epoch": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "best_metric": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and math.isfinite(v)), "a finite number or null"),
}
_REQUIRED = ("epoch", "step", "scheduler")


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def resume_state(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a run's checkpoint for resuming training: :func:`load_checkpoint` plus a check of
    the training position in the metadata (epoch, step, scheduler, ...), so a damaged or hand-made
    checkpoint is a CheckpointError naming the field rather than a KeyError inside the trainer.

    Raises:
        CheckpointError: as load_checkpoint, or a position field missing or of the wrong type.
    """
    tensors, meta = load_checkpoint(folder)
    for key in _REQUIRED:
        if key not in meta:
            raise CheckpointError(f"the checkpoint's metadata has no {key!r}: it cannot be resumed from (it was not "
                                  "written by a training run)")
    for key, (ok, what) in _POSITION.items():
        if key in meta and not ok(meta[key]):
            raise CheckpointError(f"the checkpoint's metadata field {key!r} must be {what}, got {meta[key]!r:.60}")
    return tensors, meta


def _read_meta(text: str) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"the checkpoint's JSON is unreadable ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError("the checkpoint's JSON must be an object")
    return meta


def _embedded_meta(data: bytes) -> dict | None:
    """The JSON metadata dlcore embeds in a safetensors header, or None (read without safetensors' help;
    ``data`` passed :func:`read_safetensors`, so the header is a JSON object)."""
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8: 8 + n]).get("__metadata__")
    text = meta.get(_META_KEY) if isinstance(meta, dict) else None
    return _read_meta(text) if isinstance(text, str) else None


def _what_is(data: bytes) -> str | None:
    """A name for bytes that are clearly not safetensors, for the error message."""
    if data[:2] == b"PK":
        return "a zip archive (the format of torch.save)"
    if data[:1] == b"\x80" or data[:1] in (b"(", b"}", b"]", b"c"):
        return "a Python pickle (.pt/.pth/.ckpt/.pkl)"
    return None


def read_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes; a pickle, a zip or a truncated file raises CheckpointError (never executed).

    Nothing here can run code from the file: safetensors reads a JSON header and raw tensor bytes; a
    pickle or torch.save file is recognised by its first bytes and refused with a message saying so.
    """
    from safetensors.torch import load

    if len(data) == 0:
        raise CheckpointError("the checkpoint file is empty")
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
    if len(data) < 10 or data[8:9] != b"{":  # every safetensors file: 8-byte header length, then a JSON object
        kind = _what_is(data)
        if kind:
            raise CheckpointError(f"the file is {kind}; only .safetensors files are accepted because loading a "
                                  "pickle can run arbitrary code. Convert it where you trust it: "
                                  "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')")
        raise CheckpointError("the file is not a safetensors checkpoint (it does not start with a safetensors header)")
    if n > min(len(data) - 8, _MAX_HEADER):
        raise CheckpointError(f"the safetensors file is truncated or corrupt: its header claims {n:,} bytes but the "
                              f"file has {len(data):,}")
    try:
        json.loads(data[8: 8 + n])
        return load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"the file is not a valid safetensors checkpoint (truncated or corrupt: {e})") from e


def _compare(config: ModelConfig, sd: dict[str, torch.Tensor]) -> None:
    """Check names, shapes and dtypes of the weights against the model the spec builds (on the meta
    device, so a spec describing a huge model costs no memory), and that they are finite."""
    ref = build_meta_model(config).state_dict()
    missing = [k for k in ref if k not in sd]
    extra = [k for k in sd if k not in ref]
    shapes = [f"{k}: file {tuple(sd[k].shape)}, spec {tuple(ref[k].shape)}" for k in ref
              if k in sd and tuple(sd[k].shape) != tuple(ref[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing (e.g. {', '.join(missing[:3])})")
    if extra:
        problems.append(f"{len(extra)} unexpected weight(s) (e.g. {', '.join(extra[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:3])})")
    kinds = [k for k in ref if k in sd and sd[k].is_floating_point() != ref[k].is_floating_point()]
    if kinds:
        problems.append(f"wrong number type for {', '.join(kinds[:3])}")
    if problems:
        raise CheckpointError("the weights do not match the model spec: " + "; ".join(problems) +
                              ". Upload the spec that was saved with these weights")
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"the weights hold NaN or infinite values ({', '.join(bad[:3])}): the run that saved "
                              "them diverged")


def model_from_tensors(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Build the model for a config and load weights (keys with or without the 'model.' prefix).

    Raises:
        CheckpointError: names, shapes or dtypes differ from what the config builds, or values are not finite.
    """
    sd = {k[6:] if k.startswith("model.") else k: v for k, v in tensors.items() if not k.startswith("optim.")}
    _compare(config, sd)
    model = build_model(config)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        msg = str(e).split("\n")
        raise CheckpointError("the weights do not match the model spec: " + "; ".join(m.strip() for m in msg[1:4])) from e
    model.eval()
    return model


def import_checkpoint(weights: bytes, spec_json: str) -> tuple[ModelConfig, torch.nn.Module]:
    """Rebuild a model from uploaded safetensors bytes and its JSON spec ({"model": {...}} or a model dict).

    Args:
        weights: the bytes of a ``.safetensors`` file (a pickle is refused without being read).
        spec_json: the ``checkpoint.json`` saved with it, or ``{"family": ..., "config": {...}}``.

    Raises:
        CheckpointError: not safetensors, truncated, too large, or weights that do not fit the spec.
        SpecError: the spec itself is invalid (names the field).
    """
    from dlcore.config import LIMITS

    if len(weights) > LIMITS.upload_bytes:
        raise CheckpointError(f"the checkpoint is {len(weights) / 2**20:.1f} MB; the limit is "
                              f"{LIMITS.upload_bytes / 2**20:.0f} MB (DLE_MAX_UPLOAD_MB)")
    if not isinstance(spec_json, str) or len(spec_json) > LIMITS.upload_bytes:
        raise CheckpointError("the spec must be the JSON text of checkpoint.json")
    meta = _read_meta(spec_json)
    tensors = read_safetensors(weights)
    config = model_from_dict(meta.get("model", meta))
    embedded = _embedded_meta(weights) or {}
    verify_checksum(tensors, embedded if _CHECKSUM in embedded else meta, "the uploaded checkpoint")
    return config, model_from_tensors(config, tensors)


def load_run_model(run_id: str, store=None):
    """(run, model in eval mode on the CPU) for a stored run, rebuilt from its checkpoint's own spec.

    Raises:
        RunNotFound: no such run. CheckpointError: it has no usable checkpoint yet.
    """
    from dlcore.runs.store import RunStore

    store = store or RunStore()
    run = store.get(run_id)
    tensors, meta = load_checkpoint(store.run_dir(run_id))
    config = model_from_dict(meta["model"]) if "model" in meta else run.model
    return run, model_from_tensors(config, tensors)


def checkpoint_files(run_id: str, store=None) -> tuple[Path, Path] | None:
    """(weights ``.safetensors``, spec ``.json``) of a run's latest checkpoint; None before it has written one.

    Example:
        >>> weights, spec = checkpoint_files(run_id)   # what the Runs page offers for download
    """
    from dlcore.runs.store import RunStore

    folder = (store or RunStore()).run_dir(run_id)
    weights, spec = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    return (weights, spec) if weights.exists() and spec.exists() else None


def checkpoint_version(run_id: str, store=None) -> float:
    """When a run's checkpoint was last written (its mtime), 0.0 when it has none: a cache key that changes
    with every new checkpoint."""
    from dlcore.runs.store import RunStore

    try:
        return (store or RunStore()).run_dir(run_id).joinpath("checkpoint.safetensors").stat().st_mtime
    except OSError:
        return 0.0
