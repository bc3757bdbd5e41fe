"""Settings read from the environment, and the limits that protect the machine — all in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def data_dir() -> Path:
    """The folder holding the run store, checkpoints and uploaded datasets (``DLE_DATA_DIR``, default ./runs)."""
    path = Path(os.environ.get("DLE_DATA_DIR", "runs")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what a user may hand us; each can be overridden by an environment variable."""
    upload_bytes: int = _env_int("DLE_MAX_UPLOAD_MB", 200) * 2**20
    unzipped_bytes: int = _env_int("DLE_MAX_UNZIPPED_MB", 1024) * 2**20
    zip_files: int = _env_int("DLE_MAX_ZIP_FILES", 50_000)
    image_pixels: int = _env_int("DLE_MAX_IMAGE_PIXELS", 4096 * 4096)
    csv_columns: int = _env_int("DLE_MAX_CSV_COLUMNS", 10_000)
    csv_rows: int = _env_int("DLE_MAX_CSV_ROWS", 1_000_000)
    text_chars: int = _env_int("DLE_MAX_TEXT_CHARS", 20_000_000)
    seq_len: int = _env_int("DLE_MAX_SEQ_LEN", 4096)
    concurrent_runs: int = _env_int("DLE_MAX_CONCURRENT_RUNS", 4)


LIMITS = Limits()


def available_ram() -> tuple[int, int]:
    """(available, total) bytes of system memory, from /proc/meminfo where it exists."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        kb = lambda k: int(fields[k].strip().split()[0]) * 1024  # noqa: E731
        return kb("MemAvailable"), kb("MemTotal")
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages // 2, pages
