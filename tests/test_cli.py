"""The command line: ``train --json`` output, the listing commands, user errors as exit code 2 without a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlcore import RunStore
from dlcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "digits", "--model", "cnn-tiny", "--model-set", "padding=same", "--data-set", "max_train=200",
        "--seed", "0", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _stored_test_accuracy(run_id: str) -> float:
    """The accuracy of the run's saved model on its test set, recomputed here from the checkpoint."""
    import torch

    import dlcore

    run, model = dlcore.load_run_model(run_id)
    x, y = dlcore.load_dataset(run.data).test
    with torch.no_grad():
        return float((model(x)[0].argmax(-1) == y).float().mean())


def test_train_json_reports_the_run(fresh_dir, capsys):
    rc, out, err = _run(capsys, "train", *TINY, "--epochs", "2", "--max-steps", "7", "--lr", "0.01", "--json")
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert {"run_id", "status", "data", "model", "params", "seconds", "train_seconds", "samples_per_s", "device",
            "test_loss", "test_accuracy"} <= set(result)
    assert (result["status"], result["data"], result["model"], result["params"]) == ("completed", "digits", "cnn-tiny",
                                                                                     3658)
    assert result["seconds"] >= result["train_seconds"] > 0
    assert result["test_accuracy"] == pytest.approx(_stored_test_accuracy(result["run_id"]), abs=1e-6)
    run = RunStore().get(result["run_id"])  # recorded in the store under DLE_DATA_DIR
    assert run.status == "completed" and run.train.max_steps == 7 and run.train.lr == 0.01
    assert run.model.padding == "same" and run.data.max_train == 200
    assert run.summary["steps"] == 7

    rc, out, _ = _run(capsys, "runs", "--json")
    assert rc == 0 and [r["id"] for r in json.loads(out)] == [result["run_id"]]
    rc, out, _ = _run(capsys, "show", result["run_id"])
    assert rc == 0 and "status: completed" in out and "test_accuracy" in out


def test_a_preset_brings_its_dataset_and_recommended_settings(fresh_dir, capsys):
    from dlcore import PRESETS

    preset = PRESETS["seed-cnn"]
    assert preset.train, "seed-cnn recommends training settings"
    rc, out, err = _run(capsys, "train", "--model", "seed-cnn", "--max-steps", "2", "--train-set", "eval_max=64",
                        "--device", "cpu", "--quiet", "--json")
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["data"] == preset.data == "mnist5k" and result["params"] == 93_322
    run = RunStore().get(result["run_id"])
    for key, value in preset.train.items():
        assert getattr(run.train, key) == value
    assert run.train.eval_max == 64


def test_listing_commands(fresh_dir, capsys):
    rc, out, _ = _run(capsys, "presets")
    assert rc == 0 and "seed-cnn" in out and "93,322" in out and "lm-xl" in out
    rc, out, _ = _run(capsys, "datasets")
    assert rc == 0 and all(n in out for n in ("mnist5k", "reverse", "pydoc-lm", "tv-cifar10"))
    rc, out, _ = _run(capsys, "runs")
    assert rc == 0 and "no runs yet" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "no-such-model"], "unknown model preset 'no-such-model'"),
    (["train", *TINY, "--epochs", "0"], "epochs must be 1..10000, got 0"),
    (["train", "--model", "seed-lstm", "--model-set", "hidden_size=-3"], "hidden_size must be 1..8192, got -3"),
    (["train", *TINY, "--model-set", "padding"], "expects key=value"),
    (["train", "--data", "imagenet", "--model", "cnn-tiny"], "unknown dataset 'imagenet'"),
    (["train", "--data", "reverse", "--model", "seed-cnn"], "a CNN needs image data"),
    (["train", "--data", "mnist5k", "--model", "cnn-xl", "--device", "cpu"], "parameters"),
    (["show", "20990101-000000-abcdef"], "no run with id"),
    (["resume", "20990101-000000-abcdef"], "no run with id"),
])
def test_user_errors_exit_2_with_one_line_and_no_traceback(argv, message, fresh_dir, capsys):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_the_real_command_exits_2_without_a_traceback(fresh_dir):
    proc = subprocess.run([sys.executable, "-m", "dlcore", "train", "--model", "seed-lstm", "--model-set",
                           "hidden_size=-3", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: hidden_size must be 1..8192, got -3"
    assert proc.stdout == ""


def test_bad_arguments_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as err:
        main(["train", "--epochs", "many"])
    assert err.value.code == 2
    assert "invalid int value" in capsys.readouterr().err
