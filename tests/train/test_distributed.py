"""Data-parallel training: two gloo processes on the CPU follow the loss curve of one process with the same
global batch, only rank 0 writes to the run store, and the background launcher records a normal run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlcore import DataSpec, RunStore, TrainSpec, Trainer, TrainingError, get_preset, load_dataset, resume_run, wait
from dlcore.train.distributed import start_distributed_run, torchrun_command
from dlcore.train.worker import run_job

ROOT = Path(__file__).resolve().parents[2]
DATA = DataSpec(name="digits")
MODEL = get_preset("cnn-tiny").replace(padding="same")  # no batch-norm or dropout: ranks see identical maths
# 1,293 training digits in batches of 30: 43 full batches and one of 3, which both ranks can split
TRAIN = TrainSpec(epochs=1, batch_size=30, max_steps=5, log_every=1, seed=4, schedule="constant", eval_max=200)


def _single_process_losses(train: TrainSpec) -> list[float]:
    t = Trainer(MODEL, load_dataset(DATA), train, rank=0, world_size=1)
    losses: list[float] = []
    t.add_callback("on_step_end", lambda tr, row: losses.append(row["loss"]))
    t.fit()
    return losses


def _env(data_dir: Path) -> dict:
    env = dict(os.environ, DLE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    return env


def test_torchrun_cli_matches_a_single_process(fresh_dir):
    cmd = torchrun_command(2, ["-m", "dlcore", "train", "--data", DATA.name, "--model", "cnn-tiny",
                               "--model-set", "padding=same", "--epochs", "1", "--batch-size", "30",
                               "--max-steps", "5", "--log-every", "1", "--seed", "4", "--schedule", "constant",
                               "--train-set", "eval_max=200", "--quiet", "--json"])
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(fresh_dir), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[:4000] + "\n...\n" + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # rank 0 alone prints the result
    assert result["status"] == "completed" and result["world_size"] == 2
    store = RunStore(fresh_dir)
    runs = store.list()
    assert [r.id for r in runs] == [result["run_id"]]  # rank 1 created nothing
    steps = store.metrics(result["run_id"], "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]  # each step logged once, by rank 0
    assert len(store.metrics(result["run_id"], "epoch")) == 1
    assert (store.run_dir(result["run_id"]) / "checkpoint.safetensors").exists()
    assert runs[0].train == TRAIN
    expected = _single_process_losses(TRAIN)
    assert [r["loss"] for r in steps] == pytest.approx(expected, rel=1e-5)


def test_start_distributed_run_records_a_normal_run(fresh_dir):
    train = TRAIN.replace(max_steps=0, epochs=1, log_every=20, eval_max=100)
    store = RunStore(fresh_dir)
    run_id = start_distributed_run(DATA, MODEL, train, nproc=2, store=store)
    run = wait(run_id, timeout=240, store=store)
    log = (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    assert run.status == "completed", f"{run.error}\n{log[-3000:]}"
    assert run.summary["world_size"] == 2 and run.summary["epochs_done"] == 1
    assert run.summary["test_accuracy"] > 0.1
    assert "× 2" in run.name
    # the last global batch (3 examples) is split 2 + 1: every example of the epoch is used
    single = Trainer(MODEL, load_dataset(DATA), train, rank=0, world_size=1)
    assert run.summary["steps"] == single.steps_per_epoch == 44


def test_a_single_process_run_resumes_on_two_processes_where_it_stopped(fresh_dir):
    """``resume_run(run_id, nproc=2)`` (the CLI's ``resume RUN --nproc 2``): both ranks load the checkpoint of
    a run stopped after step 2 and continue it on the loss curve of an uninterrupted single process."""
    store = RunStore(fresh_dir)
    run_id = store.create(DATA, MODEL, TRAIN)

    def stop_after_two(trainer, row):
        trainer.stop_requested = trainer.stop_requested or row["step"] >= 2

    assert run_job(run_id, store, callbacks=[("on_step_end", stop_after_two)]) == "cancelled"
    resume_run(run_id, store, nproc=2)
    run = wait(run_id, timeout=240, store=store)
    log = (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    assert run.status == "completed", f"{run.error}\n{log[-3000:]}"
    assert run.summary["world_size"] == 2 and run.summary["steps"] == 5
    steps = store.metrics(run_id, "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in steps] == pytest.approx(_single_process_losses(TRAIN), rel=1e-5)


def test_global_batch_smaller_than_the_world_is_refused(fresh_dir):
    with pytest.raises(TrainingError, match="at least 4"):
        start_distributed_run(DATA, MODEL, TRAIN.replace(batch_size=2), nproc=4, store=RunStore(fresh_dir))
    with pytest.raises(TrainingError, match="at least 1"):
        start_distributed_run(DATA, MODEL, TRAIN, nproc=0, store=RunStore(fresh_dir))
    with pytest.raises(TrainingError, match="split across 2"):
        Trainer(MODEL, load_dataset(DATA), TRAIN.replace(batch_size=1), rank=0, world_size=2)
    assert RunStore(fresh_dir).list() == []


def test_torchrun_command_uses_this_python():
    cmd = torchrun_command(3, ["-m", "dlcore", "train"])
    assert cmd[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=3"]
    assert "--standalone" in cmd and cmd[-3:] == ["-m", "dlcore", "train"]
