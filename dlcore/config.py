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

import errno
import os
import warnings
from pathlib import Path


def data_dir() -> Path:
    """The folder holding the run store, checkpoints and uploaded datasets (``DLE_DATA_DIR``, default ./runs)."""
    path = Path(os.environ.get("DLE_DATA_DIR", "runs")).resolve()
    if path.exists() and not path.is_dir():  # mkdir would say only "File exists"
        raise NotADirectoryError(errno.ENOTDIR, "DLE_DATA_DIR must name a folder, not a file", str(path))
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
    zip_pixels = _EnvLimit("DLE_MAX_ZIP_PIXELS", 400_000_000, 1, "decoded pixels of all images of one zip together "
                           "(the CPU time of an import)")
    dataset_bytes = _EnvLimit("DLE_MAX_DATASET_MB", 2048, 2**20, "memory one dataset may take: an upload while "
                              "it is converted, a generated set while it is built, either one loaded for training")
    csv_columns = _EnvLimit("DLE_MAX_CSV_COLUMNS", 10_000, 1, "columns of an uploaded CSV")
    csv_rows = _EnvLimit("DLE_MAX_CSV_ROWS", 1_000_000, 1, "data rows of an uploaded CSV")
    text_chars = _EnvLimit("DLE_MAX_TEXT_CHARS", 20_000_000, 1, "characters of an uploaded text corpus")
    seq_len = _EnvLimit("DLE_MAX_SEQ_LEN", 4096, 1, "sequence length / context window a run may use")
    concurrent_runs = _EnvLimit("DLE_MAX_CONCURRENT_RUNS", 4, 1, "training runs at once on this machine; "
                                                                 "the others wait in the queue")
    snapshot_bytes = _EnvLimit("DLE_MAX_SNAPSHOTS_MB", 32, 2**20, "per-epoch weight snapshots of one run together "
                               "(thinned to epoch 0, the last and evenly spaced epochs beyond it)")

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


# ---------------------------------------------------------------- CPU threads
# The rule, from bench/bench_contention.py (2 cores, seed-cnn, one epoch of mnist5k, batch 32; see
# bench/README.md for the figures): OpenMP's default is one thread per core that *spins* while it waits
# for work. Two such teams, or one beside any other busy process, burn their time slices spinning
# against each other: under two CPU hogs the default (2 spinning threads) fell to a few percent of its
# idle speed, while one passive thread kept about its fair share. So every process that runs torch here
# waits passively (OMP_WAIT_POLICY=PASSIVE, read by OpenMP when torch loads, hence set before) and takes
# only the cores it can really have: the cores this process may use (affinity and cgroup quota), less one
# for the server on machines of 4 cores or more, divided among the runs allowed at once
# (DLE_MAX_CONCURRENT_RUNS); the server keeps what the runs leave, at least one thread. Inter-op threads:
# one (training and the app use no inter-op parallelism; each extra thread is an idle pool).
def cpu_cores() -> int:
    """Cores this process may really use: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "200000 100000" (quota, period in µs)
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def thread_plan(cap: int | None = None, cores: int | None = None) -> dict[str, int]:
    """Threads of a training process and of the server under the rule above.

    Args:
        cap: runs allowed at once (default: ``LIMITS.concurrent_runs``).
        cores: usable cores (default: :func:`cpu_cores`).

    Example:
        >>> thread_plan(cap=4, cores=2)
        {'cores': 2, 'cap': 4, 'train': 1, 'server': 1}
        >>> thread_plan(cap=4, cores=16)
        {'cores': 16, 'cap': 4, 'train': 3, 'server': 4}
    """
    cap = max(1, LIMITS.concurrent_runs if cap is None else cap)
    cores = cpu_cores() if cores is None else max(1, cores)
    reserve = 1 if cores >= 4 else 0  # on 2-3 cores the server mostly sleeps between reruns: reserve nothing
    train = max(1, (cores - reserve) // cap)
    return {"cores": cores, "cap": cap, "train": train, "server": max(1, cores - cap * train)}


def thread_env(role: str = "train", cap: int | None = None, nproc: int = 1) -> dict[str, str]:
    """Environment variables that size and calm the OpenMP/MKL thread pools of a process not started yet.

    Values already set by the operator win (``OMP_NUM_THREADS=4`` in the server's environment is kept).

    Args:
        role: "train" (a training process) or "server".
        cap: runs allowed at once (default: ``LIMITS.concurrent_runs``).
        nproc: processes of one distributed run on this machine (each gets its share of the run's threads).
    """
    n = max(1, thread_plan(cap)[_role(role)] // max(1, nproc)) if nproc > 1 else thread_plan(cap)[_role(role)]
    env = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
           # numpy/scipy's own BLAS: data preparation only; one thread keeps the warm worker single-threaded,
           # which fork() needs (OpenBLAS starts its pool when numpy loads)
           "OPENBLAS_NUM_THREADS": "1" if role == "train" else str(n)}
    return {k: _operator(k) or v for k, v in env.items()}


_SET_HERE: dict[str, str] = {}  # what configure_threads put into os.environ (not the operator's choice)


def _operator(key: str) -> str | None:
    value = os.environ.get(key, "").strip()
    return None if not value or _SET_HERE.get(key) == value else value  # an empty variable is no choice


def configure_threads(role: str = "server", cap: int | None = None) -> int:
    """Size this process's torch threads by the rule above; returns the intra-op thread count.

    Call it as early as possible: before torch is imported it also sets passive waiting (which OpenMP
    reads only when torch loads); afterwards it can still set the thread counts. The app calls it with
    ``role="server"`` at start, training processes with ``role="train"``.

    Args:
        role: "server" (the Streamlit process) or "train" (a training process).
        cap: runs allowed at once (default: ``LIMITS.concurrent_runs``).

    Example:
        >>> import dlcore
        >>> dlcore.configure_threads(role="server")      # on 2 cores: 1
        1
    """
    import sys

    env = thread_env(role, cap)
    n = int(env["OMP_NUM_THREADS"])
    torch = sys.modules.get("torch")
    for key, value in env.items():
        if torch is None and _operator(key) is None:  # torch reads these when it loads
            os.environ[key] = _SET_HERE[key] = value
    if torch is None:
        return n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # inter-op work has already started (it can be set once, before any): keep what it has
    return n


def _role(role: str) -> str:
    if role not in ("train", "server"):
        raise ValueError(f"role must be 'train' or 'server', not {role!r}")
    return role


# ---------------------------------------------------------------- the warm worker
def warm_worker_enabled() -> bool:
    """Runs go to a pre-imported warm worker (``DLE_WARM_WORKER``, default on where Unix sockets exist)."""
    import socket

    return os.environ.get("DLE_WARM_WORKER", "1").strip().lower() not in ("0", "false", "no", "off") \
        and hasattr(socket, "AF_UNIX") and hasattr(os, "fork")


def warm_worker_idle_s() -> float:
    """Seconds the warm worker waits with nothing to do before it exits (``DLE_WARM_WORKER_IDLE_S``, 600)."""
    try:
        return max(1.0, float(os.environ.get("DLE_WARM_WORKER_IDLE_S", "600")))
    except ValueError:
        return 600.0
