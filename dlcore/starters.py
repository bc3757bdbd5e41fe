"""Starter runs: three small finished runs shipped with the app, so a newcomer sees real filters, attention
maps, hidden states and explanations the moment the app opens, before training anything.

The starters (``SLUGS``) are a seed CNN on MNIST 5k, a tiny Transformer on ``reverse`` and a seed LSTM on
MNIST rows. ``python scripts/train_starters.py`` trains them through the normal job path and packages each
into ``assets/starters/<slug>/``: the checkpoint (safetensors), its per-epoch snapshots, and ``run.json``
(name, specs, summary, metric rows, the SHA-256 of every file, the command and torch version that made it),
at most ``MAX_BYTES`` together. Shipped checkpoints rather than training at the first start: they are there
at once, cost a class server no CPU burst when thirty students open it together, and are the same for every
class (reproducible, no downloaded weights).

:func:`install_starters` copies them into a run store as completed runs that belong to nobody (owner "")
and are shared with the whole class. It is idempotent and remembers what it installed in
``<data folder>/starters.json``: a starter somebody deleted stays deleted (``reinstall=True`` brings it
back). A damaged or missing asset is a :class:`StarterError` for that starter, logged, and the others are
installed; the app never fails because of a starter.

Example:
    >>> install_starters()                  # once per server; fast when done already
    ['20261201-…', '20261201-…', '20261201-…']
    >>> starter_run("tiny-transformer")     # the run a lesson opens
    '20261201-…'
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from dlcore.runs.checkpoint import CheckpointError
from dlcore.runs.store import RunNotFound, RunStore

SLUGS = ("seed-cnn", "tiny-transformer", "seed-lstm")
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "starters"
RUN_JSON = "run.json"
MAX_BYTES = 1_000_000  # what one starter's folder may take, all files together
RECORD = "starters.json"  # in the data folder: slug -> run id of every starter installed there
_REQUIRED = ("checkpoint.safetensors", "checkpoint.json")
_LOG = logging.getLogger(__name__)


class StarterError(CheckpointError):
    """A starter's shipped files are missing, damaged (a checksum differs) or not a starter; the message
    names the starter and the file. Nothing was installed for it."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def starters_enabled() -> bool:
    """Whether the app installs the starters into its data folder (``DLE_STARTERS``, on unless 0/false/no/off;
    the test suite turns it off so that a fresh folder stays empty for tests that expect one)."""
    return os.environ.get("DLE_STARTERS", "1").strip().lower() not in ("0", "false", "no", "off")


def read_starter(slug: str, assets: str | Path | None = None) -> dict:
    """The ``run.json`` of a shipped starter, after checking that every file it lists is there and intact.

    Args:
        slug: one of ``SLUGS``.
        assets: the folder holding the starters' folders (default: the repository's ``assets/starters``).

    Raises:
        StarterError: unknown slug, a missing or unreadable run.json, a missing file or a checksum mismatch.
    """
    if slug not in SLUGS:
        raise StarterError(f"there is no starter called {slug!r}; the starters are {', '.join(SLUGS)}")
    folder = Path(assets if assets is not None else ASSETS) / slug
    try:
        doc = json.loads((folder / RUN_JSON).read_text())
    except FileNotFoundError:
        raise StarterError(f"starter {slug}: {RUN_JSON} is missing in {folder} (run python "
                           "scripts/train_starters.py)") from None
    except (OSError, ValueError, RecursionError) as e:
        raise StarterError(f"starter {slug}: {RUN_JSON} cannot be read ({e})") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or doc.get("slug") != slug or doc.get("format") != "dlcore-starter":
        raise StarterError(f"starter {slug}: {RUN_JSON} is not the description of this starter")
    for name in _REQUIRED:
        if name not in files:
            raise StarterError(f"starter {slug}: {RUN_JSON} lists no {name}")
    for name, digest in files.items():
        path = folder / name
        if not isinstance(name, str) or ".." in Path(name).parts or Path(name).is_absolute():
            raise StarterError(f"starter {slug}: {RUN_JSON} names a file outside its folder ({name!r:.80})")
        try:
            actual = file_sha256(path)
        except OSError:
            raise StarterError(f"starter {slug}: the file {name} is missing") from None
        if actual != digest:
            raise StarterError(f"starter {slug}: the file {name} is damaged (its SHA-256 differs from the one in "
                               f"{RUN_JSON}); restore it from the repository or run python scripts/train_starters.py")
    return doc


def _discard(store: RunStore, run_id: str) -> None:
    """Remove a half-installed starter run (a queued run cannot be deleted: it is failed first)."""
    with contextlib.suppress(RunNotFound):
        store.update(run_id, status="failed")
        store.delete(run_id)


def install_starter(slug: str, store: RunStore | None = None, assets: str | Path | None = None) -> str:
    """Copy one starter into the store as a completed run of nobody's, shared with the class; its run id.
    Unlike :func:`install_starters` this installs it again even if the store has it already.

    Raises:
        StarterError: its files are missing or damaged (see :func:`read_starter`); nothing is installed.
        StoreError: the store cannot be written.
    """
    from dlcore.models import model_from_dict
    from dlcore.specs import DataSpec, SpecError, TrainSpec

    store = store or RunStore()
    doc = read_starter(slug, assets)
    src = Path(assets if assets is not None else ASSETS) / slug
    try:
        data, train = DataSpec.from_dict(doc["data"]), TrainSpec.from_dict(doc["train"])
        model = model_from_dict(doc["model"])
    except (KeyError, SpecError) as e:
        raise StarterError(f"starter {slug}: its specs in {RUN_JSON} are not valid ({e})") from None
    run_id = store.create(data, model, train, name=doc.get("name"), params=doc.get("params"), owner="", shared=True)
    # not queued while the files are copied: a queued run without a worker would hold the head of the queue;
    # an install that is interrupted leaves this failed run, which the next install finds and replaces
    store.update(run_id, status="failed", summary={"starter": slug},
                 error="this starter run was being installed and the installation was interrupted")
    try:
        folder = store.run_dir(run_id)
        for name in doc["files"]:
            if name == RUN_JSON:
                continue
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, folder / name)
        store.log_many(run_id, [(kind, int(row["step"]), {k: v for k, v in row.items() if k not in ("step", "epoch")},
                                 row.get("epoch"))
                                for kind in ("step", "epoch") for row in doc.get("metrics", {}).get(kind, [])])
        summary = {**doc.get("summary", {}), "starter": slug}
        now = time.time()
        seconds = float(summary.get("seconds") or 0.0)  # how long it trained: shown as the run's duration
        store.update(run_id, status="completed", error=None, started=now - seconds, finished=now, progress=1.0,
                     device=str(doc.get("device") or "cpu"), summary=summary)
    except BaseException:
        _discard(store, run_id)
        raise
    return run_id


def _read_record(root: Path) -> dict[str, str]:
    try:
        record = json.loads((root / RECORD).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    runs = record.get("runs") if isinstance(record, dict) else None
    if not isinstance(runs, dict):
        return {}
    return {k: v for k, v in runs.items() if isinstance(k, str) and isinstance(v, str)}


def _write_record(root: Path, runs: dict[str, str]) -> None:
    tmp = root / f".{RECORD}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"version": 1, "runs": runs}, indent=1, sort_keys=True))
    os.replace(tmp, root / RECORD)


@contextlib.contextmanager
def _locked(root: Path):
    """Held while starters are installed: two servers (or sessions) on one data folder install them once."""
    import fcntl

    with open(root / "starters.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _existing(store: RunStore, run_ids) -> list[str]:
    out = []
    for run_id in run_ids:
        with contextlib.suppress(RunNotFound):
            store.get(run_id)
            out.append(run_id)
    return out


def install_starters(store: RunStore | None = None, reinstall: bool = False,
                     assets: str | Path | None = None) -> list[str]:
    """Install the starters a store has never had; returns the run ids of the starters it holds now.

    Idempotent and cheap once done (it reads ``starters.json`` and looks the runs up). A starter installed
    once and deleted since is not installed again unless ``reinstall``. A starter whose files are missing or
    damaged is logged (a :class:`StarterError` warning) and skipped, never raised: the app goes on without it.

    Args:
        store: the run store (default: the data folder's).
        reinstall: also install the starters that were deleted from this store.
        assets: where the starters' folders are (default: the repository's ``assets/starters``).

    Raises:
        StoreError: the store cannot be read or written.

    Example:
        >>> len(install_starters(dlcore.RunStore(tmp)))
        3
    """
    store = store or RunStore()
    record = _read_record(store.root)
    if not reinstall and all(slug in record for slug in SLUGS):
        return _existing(store, (record[s] for s in SLUGS))
    with _locked(store.root):
        record = _read_record(store.root)  # another process may have installed them meanwhile
        found = {}
        for run in store.list(owner=""):
            slug = run.summary.get("starter")
            if slug in SLUGS and (slug not in found or run.status == "completed"):
                found[slug] = run
        for slug in reversed(SLUGS):  # the seed CNN last, so newest: what a page that takes any run opens first
            present = slug in record and _existing(store, [record[slug]])
            if present or (slug in record and not reinstall):
                continue  # installed, or installed once and deleted by someone since
            run = found.get(slug)
            if run is not None and run.status == "completed":
                record[slug] = run.id  # installed, but not recorded (starters.json was lost)
            else:
                if run is not None:  # an interrupted installation
                    _discard(store, run.id)
                try:
                    record[slug] = install_starter(slug, store, assets)
                except StarterError as e:
                    _LOG.warning("starter %s not installed: %s", slug, e)
                    continue
            _write_record(store.root, record)
    return _existing(store, (record[s] for s in SLUGS if s in record))


def starter_run(slug: str, store: RunStore | None = None) -> str | None:
    """The run id of a starter in the store ("seed-cnn", "tiny-transformer", "seed-lstm"); None when it
    was never installed there or has been deleted.

    Example:
        >>> dlcore.load_run_model(starter_run("seed-cnn"))   # the run, and its model
    """
    store = store or RunStore()
    run_id = _read_record(store.root).get(slug)
    return run_id if run_id and _existing(store, [run_id]) else None
