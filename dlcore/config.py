"""Settings read from the environment, and the limits that protect the machine — all in one place.

Every limit is read from its environment variable when it is used, not when Python starts, so a test or
an operator can change one (``DLE_MAX_CONCURRENT_RUNS=2``) and every later check — and every worker
process started afterwards, which inherits the environment — obeys it.

Example:
    >>> LIMITS.concurrent_runs          # 4 unless DLE_MAX_CONCURRENT_RUNS says otherwise
    4
    >>> [row["env"] for row in LIMITS.describe()][:2]
    ['DLE_MAX_UPLOAD_MB', 'DLE_MAX_UNZIPPED_MB']
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path


def data_dir() -> Path:
    """The folder holding the run store, checkpoints and uploaded datasets (``DLE_DATA_DIR``, default ./runs)."""
    path = Path(os.environ.get("DLE_DATA_DIR", "runs")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


class _EnvLimit:
    """A limit whose value comes from an environment variable at each read (a positive number × unit)."""

    def __init__(self, env: str, default: float, unit: int = 1, help: str = ""):
        self.env, self.default, self.unit, self.help = env, default, unit, help
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def read(self) -> int:
        raw = os.environ.get(self.env)
        if raw is None or raw.strip() == "":
            return int(self.default * self.unit)
        try:
            value = float(raw)
            if not value > 0 or value == float("inf"):
                raise ValueError
        except ValueError:
            # a typo must not take the app down; it is reported once and the default applies
            warnings.warn(f"{self.env}={raw!r} is not a positive number; using the default {self.default}",
                          RuntimeWarning, stacklevel=3)
            value = self.default
        return max(1, int(value * self.unit))

    def __get__(self, obj, objtype=None):
        return self if obj is None else self.read()


class Limits:
    """Upper bounds on what a user may hand us; each is overridden by the environment variable beside it.

    Values are in bytes, counts or characters (the ``*_MB`` variables are given in megabytes).
    """
    upload_bytes = _EnvLimit("DLE_MAX_UPLOAD_MB", 200, 2**20, "largest uploaded file (zip, CSV, text, checkpoint)")
    unzipped_bytes = _EnvLimit("DLE_MAX_UNZIPPED_MB", 1024, 2**20, "total size of a zip's contents once unpacked")
    zip_files = _EnvLimit("DLE_MAX_ZIP_FILES", 50_000, 1, "files in one uploaded zip")
    image_pixels = _EnvLimit("DLE_MAX_IMAGE_PIXELS", 4096 * 4096, 1, "width × height of one uploaded image")
    csv_columns = _EnvLimit("DLE_MAX_CSV_COLUMNS", 10_000, 1, "columns of an uploaded CSV")
    csv_rows = _EnvLimit("DLE_MAX_CSV_ROWS", 1_000_000, 1, "data rows of an uploaded CSV")
    text_chars = _EnvLimit("DLE_MAX_TEXT_CHARS", 20_000_000, 1, "characters of an uploaded text corpus")
    seq_len = _EnvLimit("DLE_MAX_SEQ_LEN", 4096, 1, "sequence length / context window a run may use")
    concurrent_runs = _EnvLimit("DLE_MAX_CONCURRENT_RUNS", 4, 1, "training runs at once on this machine; "
                                                                 "the others wait in the queue")

    def describe(self) -> list[dict]:
        """One row per limit: name, env variable, default, current value, unit and meaning (for docs and UI)."""
        rows = []
        for name, lim in vars(Limits).items():
            if isinstance(lim, _EnvLimit):
                rows.append({"name": name, "env": lim.env, "default": lim.default,
                             "unit": "MB" if lim.unit == 2**20 else "", "value": lim.read(), "help": lim.help})
        return rows

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{r['name']}={r['value']}" for r in self.describe()) + ")"


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
