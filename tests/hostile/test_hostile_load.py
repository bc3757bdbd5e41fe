"""Many users at once: 20 sessions — twenty students — each in its own thread, start a tiny run through the
public dlcore API at the same moment and poll it the way a page does. Every run completes, at most
DLE_MAX_CONCURRENT_RUNS train at once (checked from the recorded start and end times), each student
sees only their own runs plus the shared ones (listed through ``viewer=``, as ``ui.runs()`` does) and is
refused a neighbour's run, a teacher sees all, and nothing errs. The submit and end-to-end latencies
(p50/p95) are printed.

A browser-level version against one ``streamlit run`` server is tests/load/test_load_app.py (opt-in).
"""
from __future__ import annotations

import json
import statistics
import threading
import time

import dlcore
from dlcore import AccessDenied, DataSpec, RunStore, TrainSpec, Viewer

SESSIONS = 20
CAP = 2
DEADLINE_S = 90


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # an end before a start
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def test_twenty_sessions_at_once(sandbox, monkeypatch, record_property):
    monkeypatch.setenv("DLE_MAX_CONCURRENT_RUNS", str(CAP))
    store = RunStore()

    def finished(owner: str, shared: bool) -> str:  # a run made before class (no training: no queue slot)
        rid = store.create(DataSpec(name="reverse"), dlcore.get_preset("transformer-tiny"), TrainSpec(),
                           name=f"{owner or 'class'} {'shared' if shared else 'private'}", owner=owner, shared=shared)
        store.update(rid, status="completed")
        return rid

    shared = {finished("", True), finished("student-00", True)}  # a starter-like run, and one a student shared
    private_00 = finished("student-00", False)
    barrier = threading.Barrier(SESSIONS)
    results: dict[int, dict] = {}
    errors: list[str] = []
    t_start = time.time()

    def session(i: int) -> None:
        owner = f"student-{i:02d}"
        me = Viewer(owner)
        try:
            barrier.wait()
            t0 = time.perf_counter()
            run_id = dlcore.start_run(DataSpec(name="reverse", seed=i), dlcore.get_preset("transformer-tiny"),
                                      TrainSpec(epochs=1, max_steps=5, eval_max=64, seed=i), name=f"run of {owner}",
                                      owner=owner)
            t1 = time.perf_counter()
            seen = {r.id for r in dlcore.list_runs(viewer=me)}
            while time.time() - t_start < DEADLINE_S:  # poll like the Train page's live fragment
                run = dlcore.get_run(run_id)
                if run.status not in ("queued", "running"):
                    break
                time.sleep(1.0)
            seen |= {r.id for r in dlcore.list_runs(viewer=me)}
            try:  # a neighbour's private run, by id: refused
                dlcore.get_run(private_00, viewer=me)
                opened = True
            except AccessDenied:
                opened = False
            results[i] = {"run_id": run_id, "status": run.status, "error": run.error, "seen": seen,
                          "opened_private_00": opened, "submit_s": t1 - t0, "total_s": time.perf_counter() - t0}
        except Exception as e:  # noqa: BLE001 - every failure of any session is reported below
            errors.append(f"session {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=session, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S + 30)
    assert not errors, errors
    assert len(results) == SESSIONS
    submit = [r["submit_s"] for r in results.values()]
    total = [r["total_s"] for r in results.values()]
    stats = {"sessions": SESSIONS, "cap": CAP, "wall_s": round(time.time() - t_start, 1),
             "submit_p50_s": round(percentile(submit, 50), 3), "submit_p95_s": round(percentile(submit, 95), 3),
             "complete_p50_s": round(percentile(total, 50), 2), "complete_p95_s": round(percentile(total, 95), 2)}
    record_property("load", json.dumps(stats))
    print("load:", json.dumps(stats))  # printed before the checks: the numbers matter most when one fails
    failed = {i: (r["status"], r["error"]) for i, r in results.items() if r["status"] != "completed"}
    assert not failed, f"not completed within {DEADLINE_S} s: {failed}"
    ids = {r["run_id"] for r in results.values()}
    assert len(ids) == SESSIONS
    for i, r in results.items():  # only their own runs, plus the shared ones
        assert r["seen"] == {r["run_id"]} | shared | ({private_00} if i == 0 else set()), f"session {i} saw {r['seen']}"
        assert r["opened_private_00"] == (i == 0)
    assert {r.id for r in dlcore.list_runs(viewer=Viewer("teacher", teacher=True))} == ids | shared | {private_00}
    runs = [r for r in store.list() if r.id in ids]
    assert len(runs) == SESSIONS and all(r.owner == f"student-{int(r.name[-2:]):02d}" for r in runs)
    assert max_overlap([(r.started, r.finished) for r in runs]) <= CAP
    assert store.integrity_ok()
