"""One way in: every entry point (start_run, start_distributed_run, resume_run, the CLI's train, the CLI under
torchrun) runs the same checks, and every way of spawning a run records a failure to start it."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlcore
from dlcore import DataSpec, RunStore, SpecError, TrainingError, TrainSpec, get_preset
from dlcore.cli import main
from dlcore.train import prepare
from dlcore.train.distributed import start_distributed_run, torchrun_command

ROOT = Path(__file__).resolve().parents[2]
REVERSE = DataSpec(name="reverse")  # sequences of 8 tokens
TRANSFORMER = get_preset("transformer-tiny")
LIMIT = r"the sequence length is 8; this server allows at most 4 \(DLE_MAX_SEQ_LEN\): lower seq_len"


@pytest.fixture
def short_limit(monkeypatch, fresh_dir):
    monkeypatch.setenv("DLE_MAX_SEQ_LEN", "4")
    return RunStore(fresh_dir)


def test_prepare_run_validates_adapts_and_checks_the_fit():
    prepared = dlcore.prepare_run(REVERSE, TRANSFORMER, TrainSpec(epochs=1))
    assert prepared.model == TRANSFORMER and prepared.config.max_len == 8 and prepared.info.name == "reverse"
    assert prepared.fit.fits and prepared.fit.params == dlcore.summarize(prepared.config).params
    assert prepared.default_name == "transformer on reverse"
    with pytest.raises(SpecError) as err:  # the specs are validated, not trusted
        dlcore.prepare_run(REVERSE, TRANSFORMER, TrainSpec(epochs=0))
    assert err.value.field == "epochs"


def test_the_fit_check_sees_one_process_share_of_the_batch(monkeypatch):
    seen = []
    real = prepare.check_fit
    monkeypatch.setattr(prepare, "check_fit", lambda m, i, t: seen.append(t.batch_size) or real(m, i, t))
    for batch, nproc in ((32, 1), (32, 2), (33, 2), (5, 4)):
        p = dlcore.prepare_run(REVERSE, TRANSFORMER, TrainSpec(batch_size=batch), nproc=nproc)
        assert p.train.batch_size == batch  # the run keeps its global batch
    assert seen == [32, 16, 17, 2]  # the largest share: a global batch is split into sizes that differ by one
    assert dlcore.prepare_run(REVERSE, TRANSFORMER, TrainSpec(), nproc=3).default_name == "transformer on reverse × 3"
    with pytest.raises(TrainingError, match="split across 4 processes; it must be at least 4"):
        dlcore.prepare_run(REVERSE, TRANSFORMER, TrainSpec(batch_size=3), nproc=4)


def test_the_sequence_limit_holds_at_start_run_and_start_distributed_run(short_limit):
    for start in (lambda: dlcore.start_run(REVERSE, TRANSFORMER, TrainSpec(epochs=1), store=short_limit),
                  lambda: start_distributed_run(REVERSE, TRANSFORMER, TrainSpec(epochs=1), nproc=2, store=short_limit)):
        with pytest.raises(SpecError, match=LIMIT) as err:
            start()
        assert err.value.field == "seq_len"
    assert short_limit.list() == []


def test_the_sequence_limit_holds_at_resume(short_limit, monkeypatch):
    """A run recorded under a higher limit is refused when resumed after the limit was lowered."""
    run_id = short_limit.create(REVERSE, TRANSFORMER, TrainSpec(epochs=1))
    short_limit.update(run_id, status="cancelled")
    with pytest.raises(SpecError, match=LIMIT):
        dlcore.resume_run(run_id, store=short_limit)
    assert short_limit.get(run_id).status == "cancelled"  # untouched: not queued with no process behind it


def test_the_sequence_limit_holds_at_the_cli(short_limit, capsys):
    rc = main(["train", "--data", "reverse", "--model", "transformer-tiny", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "DLE_MAX_SEQ_LEN" in err and "at most 4" in err
    assert short_limit.list() == []


def _env(data_dir: Path, **extra: str) -> dict:
    env = dict(os.environ, DLE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), **extra)
    env.pop("WORLD_SIZE", None)
    return env


def test_the_sequence_limit_holds_for_the_real_command_and_under_torchrun(fresh_dir):
    argv = ["-m", "dlcore", "train", "--data", "reverse", "--model", "transformer-tiny", "--epochs", "1"]
    env = _env(fresh_dir, DLE_MAX_SEQ_LEN="4")
    plain = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.strip() == ("error: the sequence length is 8; this server allows at most 4 (DLE_MAX_SEQ_LEN): "
                                    "lower seq_len")
    ranks = subprocess.run(torchrun_command(2, argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert ranks.returncode != 0
    # each rank refuses with the same one line (the traceback that follows is torchrun's: a child failed)
    assert ranks.stderr.count("error: the sequence length is 8; this server allows at most 4 (DLE_MAX_SEQ_LEN)") == 2, \
        ranks.stderr[-3000:]
    assert RunStore(fresh_dir).list() == []


def _no_processes(*args, **kwargs):
    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")


def test_a_torchrun_that_cannot_start_fails_the_run_with_the_reason(fresh_dir, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", _no_processes)
    store = RunStore(fresh_dir)
    data, model = DataSpec(name="digits"), get_preset("cnn-tiny").replace(padding="same")
    with pytest.raises(TrainingError, match="could not be started.*Resource temporarily unavailable"):
        start_distributed_run(data, model, TrainSpec(epochs=1, device="cpu"), nproc=2, store=store)
    (run,) = store.list()
    assert run.status == "failed" and "could not be started" in run.error and "try again" in run.error
    assert run.finished is not None

    # so does a resume, on one process or several
    for nproc in (1, 2):
        store.update(run.id, status="cancelled", error="cancelled by the user")
        with pytest.raises(TrainingError, match="could not be started"):
            dlcore.resume_run(run.id, store=store, nproc=nproc)
        assert store.get(run.id).status == "failed" and "Resource temporarily unavailable" in store.get(run.id).error


def test_cli_resume_with_nproc_starts_torchrun_on_the_stored_run(fresh_dir, monkeypatch, capsys):
    """``python -m dlcore resume RUN --nproc 2``: the run is queued again and torchrun continues it."""
    started = []

    class FakeProcess:
        pid = 2**22 + 1  # no such process: the run is not trained here, only its launch is under test

        def __init__(self, cmd, **kwargs):
            started.append((cmd, kwargs["env"]))

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    store = RunStore()
    run_id = store.create(DataSpec(name="digits"), get_preset("cnn-tiny").replace(padding="same"),
                          TrainSpec(epochs=1, device="cpu"))
    store.update(run_id, status="cancelled")
    assert main(["resume", run_id, "--nproc", "2"]) == 0
    assert f"resume requested for {run_id}" in capsys.readouterr().out
    (cmd, env), = started
    assert cmd[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    assert cmd[-6:] == ["-m", "dlcore.train.distributed", run_id, "--root", str(store.root), "--resume"]
    assert "OMP_NUM_THREADS" in env
    run = store.get(run_id)
    assert run.status == "queued" and run.pid == FakeProcess.pid and run.error is None


def test_the_fit_check_counts_the_datasets_memory():
    import dataclasses

    from dlcore.resources import check_fit, dataset_bytes

    info = dlcore.dataset_info("mnist5k")
    cpu = {"type": "cpu", "name": "a small CPU", "free_bytes": 2 * 2**30, "total_bytes": 4 * 2**30}
    model, train = dlcore.get_preset("seed-cnn"), dlcore.TrainSpec(device="cpu")
    assert check_fit(model, info, train, cpu).fits
    big = dataclasses.replace(info, n_train=2_000_000)  # 2 M images of 28×28 as float32: about 7.3 GB
    assert dataset_bytes(big) > 7 * 2**30
    report = check_fit(model, big, train, cpu)
    assert not report.fits and "the data" in report.message and report.suggestions[0].startswith("fewer examples")
    assert report.need_bytes - check_fit(model, info, train, cpu).need_bytes > 7 * 2**30


def test_an_upload_gives_runs_the_name_its_owner_chose(fresh_dir):
    csv = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n" for i in range(60))
    info = dlcore.import_table_csv(csv.encode(), name="people")
    assert info.name.startswith("user-people-")
    prepared = dlcore.prepare_run(DataSpec(name=info.name), get_preset("mlp-tiny"), TrainSpec())
    assert prepared.default_name == "mlp on people"
