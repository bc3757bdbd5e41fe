"""The run store: SQLite (WAL) for runs, their specs and metrics; a folder per run for checkpoints.

Every call opens its own short-lived connection, so the store is safe to use from Streamlit's threads
and from several job processes at once. Nothing here is ever unpickled.

The store imports no torch: the data and training specs are plain dataclasses, and a run's model spec
is decoded into its config class (which lives next to its torch model) on first use of ``Run.model``.
A queued worker waits for its slot through :meth:`RunStore.wait_for_slot` at the cost of the standard
library alone.

Every change of a run's status is a compare-and-set in one SQL statement (``UPDATE … WHERE status IN …``),
so two sessions pressing Resume together queue the run once, only a queued run can be claimed, and a
running run cannot be deleted: whoever loses the race gets a :class:`RunStateError` (or False from the
queue's methods) and changes nothing. Each queueing bumps the run's ``attempt``; a worker claims only the
attempt it was started for, so a stale worker of an earlier attempt leaves the run alone.

Example:
    >>> store = RunStore()
    >>> run_id = store.create(DataSpec(), get_preset("seed-cnn"), TrainSpec())
    >>> store.get(run_id).status
    'queued'
"""
from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dlcore.config import data_dir
from dlcore.specs import DataSpec, TrainSpec

if TYPE_CHECKING:
    from dlcore.access import Viewer
    from dlcore.models import ModelConfig

LAST_WORDS = "last-words.txt"  # in a run's folder: see RunStore.reserve_last_words
_LAST_WORDS_BYTES = 2048
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    data_spec TEXT NOT NULL, model_spec TEXT NOT NULL, train_spec TEXT NOT NULL,
    created REAL NOT NULL, started REAL, finished REAL, heartbeat REAL, pid INTEGER,
    params INTEGER, device TEXT, progress REAL DEFAULT 0, summary TEXT DEFAULT '{}',
    cancel_requested INTEGER DEFAULT 0, owner TEXT DEFAULT '', attempt INTEGER DEFAULT 0, parent TEXT DEFAULT '',
    shared INTEGER DEFAULT 0, hidden INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, kind TEXT NOT NULL,
    step INTEGER NOT NULL, epoch REAL, time REAL NOT NULL, payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, kind, id);
"""


class RunNotFound(KeyError):
    """No run with this id in the store."""

    def __str__(self) -> str:
        return f"no run with id {self.args[0]!r}"


class RunStateError(ValueError):
    """The run is not in a state that allows this (resume a running run, delete one that trains, ...);
    the message says which state it is in. Nothing was changed."""


class StoreError(RuntimeError):
    """The run store cannot be read or written: the disk is full, the folder is not writable, or store.db
    is not a run store. The message says which, and where."""


def _store_error(e: BaseException, path: Path) -> StoreError:
    """A sentence for an SQLite or file-system failure of the store (never the raw exception)."""
    text = str(e)
    try:
        free = shutil.disk_usage(path.parent if path.suffix else path).free
    except OSError:
        free = None
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "full" in text.lower() \
            or ("disk I/O error" in text and free is not None and free < 16 * 2**20):
        return StoreError(f"the disk is full: the run store ({path}) cannot be written. Free some space and try "
                          "again")
    if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
        return StoreError(f"{path} is not a run store ({text}); move it away or point DLE_DATA_DIR at another folder")
    if getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS) or "readonly" in text \
            or "unable to open" in text:
        return StoreError(f"the run store ({path}) cannot be opened or written ({text}); check that the folder "
                          "exists and is writable")
    if isinstance(e, OSError):
        return StoreError(f"the run store folder {path} cannot be used ({e.strerror or text})")
    return StoreError(f"the run store ({path}) failed: {text}")


@dataclass
class Run:
    """One row of the runs table, with specs decoded (the model spec on first use of :attr:`model`)."""
    id: str
    name: str
    status: str
    error: str | None
    data: DataSpec
    model_spec: dict  # {"family": ..., "config": {...}} as stored (``dlcore.models.model_to_dict``)
    train: TrainSpec
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    pid: int | None
    params: int | None
    device: str | None
    progress: float
    summary: dict = field(default_factory=dict)
    cancel_requested: bool = False
    owner: str = ""
    parent: str = ""  # the run this one started from or was made of (lineage: transfer, compression)
    shared: bool = False  # the owner shared it with the class: every viewer may see and open it
    hidden: bool = False  # a teacher hid it: nobody but teachers lists or opens it

    @functools.cached_property
    def model(self) -> ModelConfig:
        """The run's model config, validated (imports the model families, hence torch, on first use).

        Raises:
            SpecError: the stored spec is not a valid model config.
        """
        from dlcore.models import model_from_dict

        return model_from_dict(self.model_spec)

    @property
    def family(self) -> str:
        return str(self.model_spec.get("family", ""))

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


class RunStore:
    """Runs, specs and metrics under ``root`` (default: the data folder)."""

    def __init__(self, root: str | Path | None = None):
        """Raises:
            StoreError: the folder cannot be created or written, or store.db is not a run store."""
        try:
            self.root = Path(root) if root is not None else data_dir()
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            where = Path(root) if root is not None else Path(os.environ.get("DLE_DATA_DIR", "runs"))
            raise _store_error(e, where) from None
        self.db_path = self.root / "store.db"
        with self._connect() as con:
            con.executescript(_SCHEMA)
            columns = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            if "attempt" not in columns:  # a store written before attempts existed
                try:
                    con.execute("ALTER TABLE runs ADD COLUMN attempt INTEGER DEFAULT 0")
                except sqlite3.OperationalError as e:  # another process added it first
                    if "duplicate column" not in str(e):
                        raise
            if "parent" not in columns:  # a store written before lineage existed (issue 14)
                try:
                    con.execute("ALTER TABLE runs ADD COLUMN parent TEXT DEFAULT ''")
                except sqlite3.OperationalError as e:
                    if "duplicate column" not in str(e):
                        raise
            for column in ("shared", "hidden"):  # a store written before workspaces existed (issue 12)
                if column not in columns:
                    try:
                        con.execute(f"ALTER TABLE runs ADD COLUMN {column} INTEGER DEFAULT 0")
                    except sqlite3.OperationalError as e:
                        if "duplicate column" not in str(e):
                            raise

    @contextmanager
    def _connect(self):
        """A connection for one operation; SQLite and file-system failures become a StoreError."""
        con = None
        try:
            con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=30000")
            con.row_factory = sqlite3.Row
            yield con
        except (sqlite3.DatabaseError, OSError) as e:
            raise _store_error(e, self.db_path) from e
        finally:
            if con is not None:
                con.close()

    # ---------------------------------------------------------------- runs
    def create(self, data: DataSpec, model: ModelConfig, train: TrainSpec, name: str | None = None,
               params: int | None = None, owner: str = "", parent: str = "", shared: bool = False) -> str:
        """Insert a queued run and return its id (a short, sortable, unique string); ``owner``: the identity
        it belongs to ("" = nobody's, class-wide); ``parent``: the run it starts from or was made of
        (lineage); ``shared``: visible to the whole class from the start."""
        from dlcore.models import model_to_dict  # loaded already: the caller holds a model config

        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        spec = model_to_dict(model)
        name = (name or f"{spec['family']} on {data.name}").strip()[:120]
        try:  # the folder first: on a full disk nothing is recorded
            self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _store_error(e, self.root) from e
        try:
            with self._connect() as con:
                con.execute("INSERT INTO runs (id, name, status, data_spec, model_spec, train_spec, created, params, "
                            "owner, attempt, parent, shared) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                            (run_id, name, data.to_json(), json.dumps(spec), train.to_json(), time.time(), params,
                             owner or "", parent or "", int(bool(shared))))
        except StoreError:
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
            raise
        return run_id

    def _row(self, row: sqlite3.Row) -> Run:
        return Run(id=row["id"], name=row["name"], status=row["status"], error=row["error"],
                   data=_decode(DataSpec, row["data_spec"]), model_spec=_json_object(row["model_spec"]),
                   train=_decode(TrainSpec, row["train_spec"]), created=row["created"], started=row["started"],
                   finished=row["finished"], heartbeat=row["heartbeat"], pid=row["pid"], params=row["params"],
                   device=row["device"], progress=row["progress"] or 0.0, summary=_json_object(row["summary"]),
                   cancel_requested=bool(row["cancel_requested"]), owner=row["owner"] or "",
                   parent=row["parent"] or "", shared=bool(row["shared"]), hidden=bool(row["hidden"]))

    def get(self, run_id: str) -> Run:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return self._row(row)

    def list(self, status: tuple[str, ...] | str | None = None, owner: str | None = None,
             limit: int | None = None, viewer: Viewer | None = None) -> list[Run]:
        """Runs, newest first, filtered in SQL; specs are decoded once per distinct text (``_decode``).

        Args:
            status: only runs with this status or one of these statuses.
            owner: only the runs of this owner (a session or user id given to ``create``).
            limit: at most this many (the newest).
            viewer: only what this ``dlcore.access.Viewer`` may see: its own runs, the shared ones and the
                class-wide ones (owner ""), none hidden; a teacher sees every run. None: every run (the CLI).
        """
        where, args = [], []
        if status is not None:
            status = (status,) if isinstance(status, str) else tuple(status)
            where.append(f"status IN ({', '.join('?' * len(status))})" if status else "0")
            args += status
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if viewer is not None and not viewer.teacher:
            where.append("(owner = ? OR owner = '' OR shared = 1) AND hidden = 0")  # dlcore.access's rules
            args.append(viewer.identity)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        return [self._row(r) for r in rows]

    def update(self, run_id: str, **fields) -> None:
        """Set fields of a run unconditionally (progress, heartbeat, params, ...). Changes of status that
        can race go through :meth:`transition`, :meth:`requeue`, :meth:`request_cancel` and :meth:`finish`."""
        allowed = {"name", "status", "error", "started", "finished", "heartbeat", "pid", "params", "device",
                   "progress", "summary", "cancel_requested"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {', '.join(sorted(bad))}")
        if "summary" in fields:
            fields["summary"] = json.dumps(fields["summary"])
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as con:
            cur = con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))
        if cur.rowcount == 0:
            raise RunNotFound(run_id)

    def rename(self, run_id: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise ValueError("a run name cannot be empty")
        self.update(run_id, name=name[:120])

    def set_shared(self, run_id: str, shared: bool) -> None:
        """Share a run with the class (every viewer lists and opens it) or take it back.

        Raises:
            RunNotFound: no such run.
        """
        self._set_flag(run_id, "shared", shared)

    def set_hidden(self, run_id: str, hidden: bool) -> None:
        """Hide a run from everyone but teachers (a teacher's moderation), or show it again.

        Raises:
            RunNotFound: no such run.
        """
        self._set_flag(run_id, "hidden", hidden)

    def transfer_owner(self, old: str, new: str) -> int:
        """Give every run of ``old`` to ``new`` (a guest who types a name keeps the runs made as a guest);
        returns how many. ``old`` "" (class-wide runs) is refused with ValueError."""
        if not old or not new:
            raise ValueError("both owners must be named")
        with self._connect() as con:
            return con.execute("UPDATE runs SET owner = ? WHERE owner = ?", (new, old)).rowcount

    def _set_flag(self, run_id: str, column: str, value: bool) -> None:
        with self._connect() as con:
            cur = con.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (int(bool(value)), run_id))
        if cur.rowcount == 0:
            raise RunNotFound(run_id)

    def delete(self, run_id: str) -> None:
        """Remove a run, its metrics and its checkpoint folder, in one transaction that checks the run is
        neither queued nor running (a worker may be writing into it).

        Raises:
            RunNotFound: no such run. RunStateError: it is queued or running; cancel it first.
        """
        folder = self.run_dir(run_id)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise RunNotFound(run_id)
                if row["status"] in ACTIVE:
                    raise RunStateError(f"run {run_id} is {row['status']}; cancel it before deleting")
                con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
                con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        shutil.rmtree(folder, ignore_errors=True)

    # ---------------------------------------------------------------- state transitions (compare-and-set)
    def transition(self, run_id: str, to: str, expect: tuple[str, ...], *, pid: int | None = None,
                   attempt: int | None = None, **fields) -> bool:
        """Set a run's status to ``to`` only if it is now one of ``expect`` (and, when given, still held by
        ``pid`` / in queueing ``attempt``), with other fields in the same statement. True if it changed.

        Example:
            >>> store.transition(run_id, "cancelled", ("queued",), error="cancelled before it started")
            True
        """
        if to not in STATUSES or not set(expect) <= set(STATUSES):
            raise ValueError(f"status must be one of {STATUSES}")
        fields = self._columns(fields)
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
        where, args = ["id = ?", f"status IN ({', '.join('?' * len(expect))})"], [run_id, *expect]
        if pid is not None:
            where.append("pid = ?")
            args.append(pid)
        if attempt is not None:
            where.append("attempt = ?")
            args.append(attempt)
        with self._connect() as con:
            cur = con.execute(f"UPDATE runs SET {sets} WHERE {' AND '.join(where)}", (to, *fields.values(), *args))
        return cur.rowcount == 1

    def requeue(self, run_id: str) -> int:
        """Queue a failed or cancelled run again (for resuming), atomically; returns its new attempt number.

        Raises:
            RunNotFound: no such run. RunStateError: it is queued, running or completed (nothing changed).
        """
        with self._connect() as con:
            cur = con.execute("UPDATE runs SET status = 'queued', error = NULL, cancel_requested = 0, finished = NULL, "
                              "pid = NULL, attempt = COALESCE(attempt, 0) + 1 WHERE id = ? AND status IN "
                              "('failed', 'cancelled')", (run_id,))
            if cur.rowcount == 1:
                return con.execute("SELECT attempt FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        status = self.get(run_id).status
        if status == "completed":
            raise RunStateError(f"run {run_id} has already completed")
        raise RunStateError(f"run {run_id} is already {status}")

    def request_cancel(self, run_id: str) -> str:
        """Ask an active run to stop (its worker checks the flag); returns the run's status at that moment.
        A queued run whose worker has not started, or whose process is gone, is cancelled at once."""
        with self._connect() as con:
            con.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status IN ('queued', 'running')",
                        (run_id,))
            row = con.execute("SELECT status, pid FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        status, pid = row["status"], row["pid"]
        if status in ACTIVE and not pid_alive(pid, run_id):
            why = "cancelled before it started" if status == "queued" else "cancelled (its process had ended)"
            held = "pid = ?" if pid is not None else "pid IS NULL"  # unchanged since we looked
            with self._connect() as con:
                cur = con.execute(f"UPDATE runs SET status = 'cancelled', finished = ?, error = ? WHERE id = ? AND "
                                  f"status = ? AND {held}", (time.time(), why, run_id, status,
                                                            *([pid] if pid is not None else [])))
            return "cancelled" if cur.rowcount == 1 else self.get(run_id).status
        return status

    def finish(self, run_id: str, status: str, pid: int | None = None, **fields) -> bool:
        """Record the final status of a run this process trains: only while it is still running here
        (``pid``, default this process). False, and nothing written, if someone else holds it now."""
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError("a run finishes as completed, failed or cancelled")
        return self.transition(run_id, status, ("running",), pid=os.getpid() if pid is None else pid, **fields)

    def _columns(self, fields: dict) -> dict:
        allowed = {"name", "error", "started", "finished", "heartbeat", "pid", "params", "device",
                   "progress", "summary", "cancel_requested"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {', '.join(sorted(bad))}")
        if "summary" in fields:
            fields = {**fields, "summary": json.dumps(fields["summary"])}
        return fields

    def run_dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunNotFound(run_id)
        return self.root / "runs" / run_id

    # ---------------------------------------------------------------- metrics
    def log(self, run_id: str, kind: str, step: int, payload: dict, epoch: float | None = None) -> None:
        """Append one metrics row ('step' rows: loss/lr/throughput; 'epoch' rows: train/val metrics)."""
        with self._connect() as con:
            con.execute("INSERT INTO metrics (run_id, kind, step, epoch, time, payload) VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, kind, step, epoch, time.time(), json.dumps(payload)))

    def log_many(self, run_id: str, rows: list[tuple[str, int, dict, float | None]]) -> None:
        """Append many metrics rows ``(kind, step, payload, epoch)`` in one transaction (one disk sync, not
        one per row: a starter run's few hundred rows are copied in milliseconds)."""
        now = time.time()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT INTO metrics (run_id, kind, step, epoch, time, payload) VALUES "
                                "(?, ?, ?, ?, ?, ?)", [(run_id, kind, step, epoch, now, json.dumps(payload))
                                                       for kind, step, payload, epoch in rows])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def metrics(self, run_id: str, kind: str = "step", after_id: int = 0) -> list[dict]:
        """Metric rows of a run as flat dicts (id, step, epoch, time, and the payload's keys)."""
        with self._connect() as con:
            rows = con.execute("SELECT id, step, epoch, time, payload FROM metrics WHERE run_id = ? AND kind = ? "
                               "AND id > ? ORDER BY id", (run_id, kind, after_id)).fetchall()
        return [{"id": r["id"], "step": r["step"], "epoch": r["epoch"], "time": r["time"], **json.loads(r["payload"])}
                for r in rows]

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop metric rows past a step (a resumed run replays them from its checkpoint)."""
        with self._connect() as con:
            con.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))

    def integrity_ok(self) -> bool:
        with self._connect() as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # ---------------------------------------------------------------- the queue
    # ---------------------------------------------------------------- last words
    # A worker that fails on a full disk cannot write its reason into store.db. It reserves this file when it
    # starts and, when the store refuses, overwrites it in place (no new blocks are needed); whoever notices
    # the dead process reads it instead of saying "ended unexpectedly".
    def reserve_last_words(self, run_id: str) -> None:
        try:
            (self.run_dir(run_id) / LAST_WORDS).write_bytes(b" " * _LAST_WORDS_BYTES)
        except OSError:
            pass  # no room even for this: the run fails on its first write anyway

    def write_last_words(self, run_id: str, text: str) -> bool:
        """Overwrite the reserved file with ``text`` (at most 2 kB); False when it cannot be written."""
        data = text.encode("utf-8", "replace")[:_LAST_WORDS_BYTES].ljust(_LAST_WORDS_BYTES)
        try:
            with open(self.run_dir(run_id) / LAST_WORDS, "r+b") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError:
            return False

    def last_words(self, run_id: str) -> str:
        try:
            return (self.run_dir(run_id) / LAST_WORDS).read_bytes().decode("utf-8", "replace").strip()
        except (OSError, StoreError):
            return ""

    def reap_dead(self) -> None:
        """Mark active runs whose process is gone as failed, so a killed run neither holds a slot nor blocks
        the head of the queue forever (nobody may be watching it to notice)."""
        with self._connect() as con:
            rows = con.execute("SELECT id, pid, progress, status FROM runs WHERE status IN ('running', 'queued') "
                               "AND pid IS NOT NULL").fetchall()
            for run_id, pid, progress, status in rows:
                if not pid_alive(pid, run_id):
                    reason = dead_reason(pid, progress, status, self.last_words(run_id))
                    con.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE id = ? AND "
                                "status = ? AND pid = ?", (time.time(), reason, run_id, status, pid))

    def claim_slot(self, run_id: str, cap: int, attempt: int | None = None) -> bool:
        """Atomically move a queued run to running, held by this process, when fewer than ``cap`` run.

        Dead runs are reaped first. Queued runs start first-come first-served: only the ``cap - running``
        oldest may claim. Only a queued run is claimed, and with ``attempt`` only that queueing of it (a
        worker started for an earlier attempt gets False).
        """
        self.reap_dead()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                running = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
                first = con.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY created LIMIT ?",
                                    (max(cap - running, 0),)).fetchall()
                ok = running < cap and run_id in {r[0] for r in first}
                if ok:
                    now = time.time()
                    cur = con.execute("UPDATE runs SET status = 'running', pid = ?, heartbeat = ?, "
                                      "started = COALESCE(started, ?) WHERE id = ? AND status = 'queued' AND "
                                      "(? IS NULL OR attempt = ?)", (os.getpid(), now, now, run_id, attempt, attempt))
                    ok = cur.rowcount == 1
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return ok

    def wait_for_slot(self, run_id: str, cap: int, poll: float = 0.5,
                      stopping: Callable[[], bool] = lambda: False) -> bool:
        """Block until this process holds a slot for the run (True), or the run is no longer this worker's
        to start (False).

        False without touching the run when it is not queued (another worker claimed it, or it ended) or
        was queued again since this worker first saw it (a newer worker owns that attempt); False after
        recording 'cancelled' when a cancel was requested, or this process was told to stop, while queued.

        Args:
            cap: runs allowed at once on this machine (``LIMITS.concurrent_runs``).
            poll: seconds between tries.
            stopping: True when this process was asked to stop (the worker's SIGTERM flag).
        """
        attempt = None
        while True:
            with self._connect() as con:
                row = con.execute("SELECT status, cancel_requested, attempt FROM runs WHERE id = ?",
                                  (run_id,)).fetchone()
            if row is None or row["status"] != "queued":
                return False  # deleted, claimed by another worker, or ended: not ours to change
            if attempt is None:
                attempt = row["attempt"]
            elif row["attempt"] != attempt:
                return False  # cancelled and queued again meanwhile: that attempt has its own worker
            stop = stopping()
            if row["cancel_requested"] or stop:
                why = "stopped by the system while queued" if stop else "cancelled while queued"
                self.transition(run_id, "cancelled", ("queued",), attempt=attempt, finished=time.time(), error=why)
                return False
            if self.claim_slot(run_id, cap, attempt=attempt):
                return True
            time.sleep(poll)


@functools.lru_cache(maxsize=4096)
def _decode(cls: type, text: str):
    """A stored data or training spec, validated once per distinct JSON text (specs are frozen, so runs
    that share a spec share one instance): listing a classroom's runs decodes a handful, not hundreds."""
    return cls.from_json(text)


def _json_object(text: str) -> dict:
    """A stored JSON object; {} for anything else (a damaged row still lists; its model is a SpecError)."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- processes behind runs
def pid_alive(pid: int | None, run_id: str) -> bool:
    """True while the process recorded for a run exists (reaps our own zombie children).

    A live process counts only if it is plausibly ours (its command line names the run or dlcore), so a
    recycled pid does not keep a dead run 'running' forever. The calling process itself always counts
    (the CLI and tests train in-process).
    """
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to /proc
    except OSError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return state not in ("Z", "X") and (run_id in cmdline or "dlcore" in cmdline)
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def dead_reason(pid: int | None, progress: float | None, status: str = "running", last_words: str = "") -> str:
    """The message of a run whose process vanished without recording why (kill -9, OOM killer, crash), or
    the reason it left in its last-words file when the store could not take it (a full disk)."""
    if last_words:
        return last_words
    if status == "queued":
        return (f"the training process (pid {pid}) ended while the run was waiting in the queue — killed or "
                "crashed. Resume starts it again.")
    return (f"the training process (pid {pid}) ended unexpectedly — killed, out of memory, or crashed — at "
            f"{int((progress or 0) * 100)}% of training. Resume continues from the last checkpoint.")
