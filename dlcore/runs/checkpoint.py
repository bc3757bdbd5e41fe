"""Checkpoints: safetensors for tensors, JSON for the specs that rebuild the model (nanoGPT's
``model_args``). Loading never unpickles.

Crash safety: a checkpoint is one file. The JSON metadata (position, specs) is embedded in the
safetensors header, so weights and position can never disagree; ``checkpoint.json`` is a readable copy
written after it. Every write goes to a temporary file, is fsynced and renamed into place, so a kill -9
or a full disk mid-write leaves the previous checkpoint intact and loadable.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from dlcore.models import ModelConfig, build_model, model_from_dict, model_to_dict

_META_KEY = "dlcore"  # key of the JSON metadata inside the safetensors header
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


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict,
                    model_config: ModelConfig | None = None) -> Path:
    """Write ``checkpoint.safetensors`` (tensors + embedded JSON meta) and ``checkpoint.json``, atomically.

    Raises:
        OSError: the disk is full or not writable; the previous checkpoint is left as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    if model_config is not None:
        meta["model"] = model_to_dict(model_config)
    text = json.dumps(meta)
    _atomic_write(folder / "checkpoint.safetensors", lambda p: save_file(tensors, str(p), metadata={_META_KEY: text}))
    _atomic_write(folder / "checkpoint.json", lambda p: p.write_text(text))
    return folder / "checkpoint.safetensors"


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint folder; raises CheckpointError for anything missing or unreadable."""
    folder = Path(folder)
    st, js = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    if not st.exists():
        raise CheckpointError(f"no checkpoint in {folder.name}: the run has not finished an epoch yet")
    data = st.read_bytes()
    tensors = read_safetensors(data)
    embedded = _embedded_meta(data)
    if embedded is not None:
        return tensors, embedded
    if not js.exists():
        raise CheckpointError(f"the checkpoint in {folder.name} has no metadata (checkpoint.json is missing)")
    return tensors, _read_meta(js.read_text())


def _read_meta(text: str) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"the checkpoint's JSON is unreadable ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError("the checkpoint's JSON must be an object")
    return meta


def _embedded_meta(data: bytes) -> dict | None:
    """The JSON metadata dlcore embeds in a safetensors header, or None (read without safetensors' help)."""
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
    with torch.device("meta"):
        ref = build_model(config).state_dict()
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
