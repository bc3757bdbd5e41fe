"""Checkpoints: safetensors for tensors, JSON for the specs that rebuild the model (nanoGPT's
``model_args``). Writes go to a temporary file and are renamed into place, so a crash mid-write never
leaves a half checkpoint. Loading never unpickles."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dlcore.models import ModelConfig, build_model, model_from_dict, model_to_dict


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, not safetensors, or does not match its spec."""


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict,
                    model_config: ModelConfig | None = None) -> Path:
    """Write ``checkpoint.safetensors`` and ``checkpoint.json`` atomically (tensors first, then JSON)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    if model_config is not None:
        meta["model"] = model_to_dict(model_config)
    _atomic_write_bytes(folder / "checkpoint.safetensors", lambda p: save_file(tensors, str(p)))
    _atomic_write_bytes(folder / "checkpoint.json", lambda p: p.write_text(json.dumps(meta)))
    return folder / "checkpoint.safetensors"


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a checkpoint folder; raises CheckpointError for anything unreadable."""
    folder = Path(folder)
    st, js = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    if not st.exists() or not js.exists():
        raise CheckpointError(f"no checkpoint in {folder.name}: the run has not finished an epoch yet")
    return read_safetensors(st.read_bytes()), _read_meta(js.read_text())


def _read_meta(text: str) -> dict:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"the checkpoint's JSON is unreadable ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError("the checkpoint's JSON must be an object")
    return meta


def read_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes; a pickle, a zip or a truncated file raises CheckpointError (never executed)."""
    from safetensors.torch import load

    if data[:2] == b"\x80\x02" or data[:1] == b"\x80" or data[:2] == b"PK":
        raise CheckpointError("the file is a pickle/zip (a torch.save checkpoint); only safetensors files are accepted "
                              "because loading a pickle can run arbitrary code")
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"the file is not a valid safetensors checkpoint (truncated or corrupt: {e})") from e


def model_from_tensors(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Build the model for a config and load weights (keys with or without the 'model.' prefix)."""
    sd = {k[6:] if k.startswith("model.") else k: v for k, v in tensors.items() if not k.startswith("optim.")}
    model = build_model(config)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        msg = str(e).split("\n")
        raise CheckpointError("the weights do not match the model spec: " + "; ".join(m.strip() for m in msg[1:4])) from e
    model.eval()
    return model


def import_checkpoint(weights: bytes, spec_json: str) -> tuple[ModelConfig, torch.nn.Module]:
    """Rebuild a model from uploaded safetensors bytes and its JSON spec ({"model": {...}} or a model dict)."""
    meta = _read_meta(spec_json)
    config = model_from_dict(meta.get("model", meta))
    return config, model_from_tensors(config, read_safetensors(weights))
