"""The compute device: which one a run gets, what it is, and its peak FLOP/s (the denominator of MFU).

Example:
    >>> pick_device("auto")             # cuda, then mps, then cpu
    device(type='cpu')
    >>> device_description()["name"]
    'CPU'
"""
from __future__ import annotations

import os
import re

import torch

from dlcore.errors import TrainingError

# Dense peak FLOP/s per GPU from the vendors' data sheets, as (bf16 tensor cores, tf32 tensor cores):
# the denominator of MFU. Matched in order against the lower-cased device name; unknown GPUs give no MFU
# unless DLE_PEAK_FLOPS (FLOP/s) is set.
PEAK_FLOPS: list[tuple[str, float, float]] = [
    (r"gh200|h200", 989.4e12, 494.7e12),
    (r"h100.*(pcie)", 756.0e12, 378.0e12),
    (r"h100.*nvl", 835.5e12, 417.5e12),
    (r"h100", 989.4e12, 494.7e12),  # SXM
    (r"a100", 312.0e12, 156.0e12),
    (r"l40s", 362.1e12, 183.0e12),
    (r"\bl4\b", 121.0e12, 60.0e12),
    (r"rtx 4090", 165.2e12, 82.6e12),
]


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
    """Name and memory of the compute device, for the app's sidebar, the CLI and the fit check."""
    device = device or pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        return {"type": "cuda", "name": props.name, "total_bytes": total, "free_bytes": free,
                "count": torch.cuda.device_count(), "peak_flops": peak_flops(device)}
    from dlcore.config import available_ram

    free, total = available_ram()
    return {"type": device.type, "name": "CPU" if device.type == "cpu" else "Apple MPS", "count": 1,
            "total_bytes": total, "free_bytes": free, "threads": torch.get_num_threads()}


def peak_flops(device: torch.device | str, dtype: torch.dtype | None = torch.bfloat16) -> float | None:
    """Dense peak FLOP/s of a CUDA device for bf16 (or tf32 when ``dtype`` is float32); None if unknown.

    ``DLE_PEAK_FLOPS`` overrides the table (for GPUs it does not list).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if os.environ.get("DLE_PEAK_FLOPS"):
        try:
            return float(os.environ["DLE_PEAK_FLOPS"])
        except ValueError:
            return None
    name = torch.cuda.get_device_name(device).lower()
    for pattern, bf16, tf32 in PEAK_FLOPS:
        if re.search(pattern, name):
            return bf16 if dtype in (torch.bfloat16, torch.float16) else tf32
    return None
