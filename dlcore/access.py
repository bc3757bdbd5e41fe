"""Who may see and change which run: a workspace per person, runs shared with the class, and teachers.

Every run has an ``owner`` (the identity of the person who made it; "" for class-wide runs such as the
starter runs or runs made with the CLI), a ``shared`` flag (the owner shared it with the class) and a
``hidden`` flag (a teacher hid it). The rules, one place for the store's SQL and the checks here:

- a **teacher** (an identity listed in ``DLE_TEACHERS``) sees and may do everything;
- anyone else sees their own runs, the shared ones and the class-wide ones (owner ""), none hidden;
- only the owner deletes, renames, resumes, cancels or shares a run; others' shared runs are read-only
  (open, inspect, fine-tune into a run of one's own); only a teacher hides;
- no viewer (``viewer=None``: the CLI, scripts, the library) means no checks, as before workspaces.

This is separation between the people of a class, not security against them: without an identity
provider the identity is a name a person types (docs/security.md).

Example:
    >>> alice = Viewer("alice")
    >>> check(store.get(run_id), alice, "delete")   # raises AccessDenied unless alice owns it
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcore.runs.store import Run, RunStore

ACTIONS = ("view", "delete", "rename", "resume", "cancel", "share", "hide")
_OWNER_ACTIONS = ("view", "delete", "rename", "resume", "cancel", "share")
_VERBS = {"view": "open", "delete": "delete", "rename": "rename", "resume": "resume", "cancel": "cancel",
          "share": "share", "hide": "hide"}


class AccessDenied(PermissionError):
    """This viewer may not do this to this run (or dataset); the message says what was refused and whose
    it is, never the name of another person's run. Nothing was changed.

    Attributes:
        run_id: the run (or dataset) it was about. action: what was refused.
    """

    def __init__(self, message: str, run_id: str = "", action: str = ""):
        super().__init__(message)
        self.run_id = run_id
        self.action = action

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not allowed"


@dataclass(frozen=True)
class Viewer:
    """The person a page (or an API call) acts for.

    Args:
        identity: a name, an e-mail address or an identity provider's subject; never "".
        teacher: sees and may change every run (use :meth:`of` to take it from ``DLE_TEACHERS``).
    """
    identity: str
    teacher: bool = False

    @classmethod
    def of(cls, identity: str) -> Viewer:
        """The viewer for an identity, a teacher when it is listed in ``DLE_TEACHERS``."""
        identity = (identity or "").strip()
        return cls(identity, is_teacher(identity))


def teachers() -> frozenset[str]:
    """The configured teacher identities: ``DLE_TEACHERS``, comma-separated (compared without case and
    surrounding spaces, so an e-mail address matches however the provider spells it)."""
    return frozenset(t.strip().casefold() for t in os.environ.get("DLE_TEACHERS", "").split(",") if t.strip())


def is_teacher(identity: str) -> bool:
    return bool(identity) and identity.strip().casefold() in teachers()


def can(run: Run, viewer: Viewer | None, action: str = "view") -> bool:
    """True when ``viewer`` may do ``action`` to ``run`` (the rules in this module's docstring)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if viewer is None or viewer.teacher:
        return True
    if run.hidden:
        return False
    if run.owner and run.owner == viewer.identity:
        return action in _OWNER_ACTIONS
    return action == "view" and (run.shared or not run.owner)


def check(run: Run, viewer: Viewer | None, action: str = "view") -> None:
    """Refuse what ``viewer`` may not do to ``run``.

    Raises:
        AccessDenied: with a sentence naming the action and whose run it is (not the run's name).
        ValueError: an unknown action.
    """
    if can(run, viewer, action):
        return
    verb = _VERBS[action]
    if run.hidden:
        why = f"run {run.id} was hidden by a teacher; only a teacher can {verb} it"
    elif action == "hide":
        why = f"only a teacher can hide runs (run {run.id})"
    elif run.owner == viewer.identity:
        why = f"only a teacher can {verb} run {run.id}"
    elif not run.owner:
        why = f"run {run.id} belongs to the whole class; only a teacher can {verb} it"
    elif run.shared:
        why = (f"run {run.id} belongs to someone else, who shared it to look at: you can open it and fine-tune "
               f"it into a run of your own, but not {verb} it")
    else:
        why = f"run {run.id} belongs to someone else and is not shared with the class; you cannot {verb} it"
    raise AccessDenied(why, run.id, action)


def check_dataset(owner: str, shared: bool, name: str, viewer: Viewer | None, action: str = "view") -> None:
    """The same rules for an uploaded dataset (``dlcore.data.user`` keeps its owner and shared flag).

    Raises:
        AccessDenied: the viewer may not ``action`` it.
    """
    if viewer is None or viewer.teacher or (owner and owner == viewer.identity and action in _OWNER_ACTIONS):
        return
    if action == "view" and (shared or not owner):
        return
    raise AccessDenied(f"the dataset {name} belongs to someone else; you cannot {_VERBS.get(action, action)} it",
                       name, action)


GUEST = re.compile(r"guest-[0-9a-f]{8}")  # the identity of a session whose person has not said who they are


def is_guest(identity: str) -> bool:
    """True for the identity the app gives a session before its person says who they are."""
    return bool(GUEST.fullmatch((identity or "").strip().casefold()))


def adopt_guest(guest: str, identity: str, store: RunStore | None = None) -> int:
    """Give the runs and uploads a guest made to the identity it then took (typing a name); returns how many
    runs. Only a guest id (``guest-`` and 8 hex digits, as the app makes them) can be adopted.

    Raises:
        AccessDenied: ``guest`` is not a guest id (nobody adopts a named person's runs this way).
    """
    from dlcore.data.user import transfer_user_owner
    from dlcore.runs.store import RunStore

    if not is_guest(guest) or not identity or identity == guest:
        raise AccessDenied("only a guest's runs can be adopted, by the name that guest then types", "", "share")
    transfer_user_owner(guest, identity)
    return (store or RunStore()).transfer_owner(guest, identity)


def class_results(viewer: Viewer, store: RunStore | None = None) -> list[dict]:
    """The class table of a teacher: one row per student and dataset, with their best test accuracy.

    Rows (sorted by owner, then dataset): ``owner`` ("" for class-wide runs), ``dataset``, ``best_test_accuracy``
    (None when no completed run of it reports one), ``best_run`` (its id), ``runs`` (how many runs).

    Raises:
        AccessDenied: the viewer is not a teacher.
    """
    from dlcore.runs.store import RunStore

    if viewer is None or not viewer.teacher:
        raise AccessDenied("only a teacher sees the class results", "", "view")
    table: dict[tuple[str, str], dict] = {}
    for run in (store or RunStore()).list():
        row = table.setdefault((run.owner, run.data.name), {"owner": run.owner, "dataset": run.data.name,
                                                           "best_test_accuracy": None, "best_run": "", "runs": 0})
        row["runs"] += 1
        acc = _test_accuracy(run)
        if acc is not None and (row["best_test_accuracy"] is None or acc > row["best_test_accuracy"]):
            row["best_test_accuracy"], row["best_run"] = acc, run.id
    return [table[k] for k in sorted(table)]


def _test_accuracy(run: Run) -> float | None:
    """A completed run's test accuracy (token accuracy for sequence tasks); None when it reports none."""
    if run.status != "completed":
        return None
    for key in ("test_accuracy", "test_token_accuracy"):
        value = run.summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


# the names under which ``dlcore`` re-exports the checks (``dlcore.check`` alone would say too little)
can_access = can
check_access = check
