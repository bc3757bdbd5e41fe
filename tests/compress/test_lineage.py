"""Lineage: every derived run names its parent; a chain and a tree can be walked; the Pareto front."""
from __future__ import annotations

import dlcore
from dlcore.compress import compress_run, descendants, lineage, pareto_front


def test_chain_and_descendants(store, teacher_run):
    parent, _ = teacher_run
    pruned = compress_run(parent, "prune", store=store, sparsity=0.3, finetune_epochs=0, measure_latency=False)
    q = compress_run(pruned["run_id"], "quantize", store=store, calibration=32, measure_latency=False)
    assert lineage(store, q["run_id"]) == [q["run_id"], pruned["run_id"], parent]
    assert {pruned["run_id"], q["run_id"]} <= set(descendants(store, parent))
    assert descendants(store, q["run_id"]) == []
    summary = store.get(q["run_id"]).summary
    for key in ("parent", "lineage", "test_accuracy", "bytes", "params", "nonzero_params", "latency_ms"):
        assert key in summary
    assert summary["parent"] == pruned["run_id"]
    assert store.get(parent).summary.get("lineage") is None
    _, model = dlcore.load_run_model(q["run_id"], store)
    assert model.config == store.get(parent).model  # the same architecture, int8 weights


def test_pareto_front():
    pts = [(100, 0.90), (50, 0.91), (80, 0.95), (30, 0.80), (60, 0.85)]
    assert pareto_front(pts) == [3, 1, 2]


def test_compress_command_prints_one_json_line(store, teacher_run, capsys, monkeypatch):
    import argparse
    import json

    from dlcore.compress import add_cli, run_cli

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compress", teacher_run[0], "--method", "prune", "--finetune-epochs", "0", "--json"])
    monkeypatch.setenv("DLE_DATA_DIR", str(store.root))  # the command opens the default store
    assert run_cli(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert {"run_id", "parent", "test_accuracy", "bytes", "params", "nonzero_params", "latency_ms"} <= set(out)
    assert out["parent"] == teacher_run[0] and out["latency_ms"] > 0
