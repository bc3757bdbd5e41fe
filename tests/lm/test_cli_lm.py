"""``python -m dlcore generate`` and ``ablate`` on runs trained through the CLI (issue 13's acceptance checks)."""
from __future__ import annotations

import json

import pytest

from dlcore.cli import main


def _train(capsys, *argv) -> str:
    assert main(["train", "--quiet", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]


def _generate(capsys, run_id, *argv) -> dict:
    assert main(["generate", run_id, "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_generate_json(capsys):
    run_id = _train(capsys, "--data", "pydoc-lm", "--model", "lm-tiny", "--max-steps", "3",
                    "--data-set", "window=16", "max_train=64",
                    "--model-set", "d_model=32", "n_heads=2", "n_layers=1", "d_ff=32")
    greedy = _generate(capsys, run_id, "--prompt", "The ", "--max-new-tokens", "40", "--temperature", "0")
    assert greedy["prompt"] == "The " and len(greedy["text"]) == 40 and len(greedy["steps"]) == 40
    again = _generate(capsys, run_id, "--prompt", "The ", "--max-new-tokens", "40", "--temperature", "0")
    assert (again["text"], again["steps"]) == (greedy["text"], greedy["steps"])  # deterministic
    for step in greedy["steps"]:
        probs = [p for _, p in step["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1
        assert step["top"][0][0] == step["token"]
    assert greedy["tokens_per_s"] > 0
    top1 = _generate(capsys, run_id, "--prompt", "The ", "--max-new-tokens", "40", "--temperature", "1",
                     "--top-k", "1", "--seed", "7")
    assert top1["text"] == greedy["text"]
    sampled = _generate(capsys, run_id, "--prompt", "The ", "--max-new-tokens", "40", "--temperature", "1",
                        "--top-p", "0.9", "--seed", "7")
    for step in sampled["steps"]:
        probs = [p for _, p in step["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1


def test_generate_names_unknown_characters(capsys):
    run_id = _train(capsys, "--data", "pydoc-lm", "--model", "lm-tiny", "--max-steps", "1",
                    "--data-set", "window=16", "max_train=64",
                    "--model-set", "d_model=16", "n_heads=2", "n_layers=1", "d_ff=16")
    assert main(["generate", run_id, "--prompt", "naïve ☃", "--max-new-tokens", "3"]) == 2
    err = capsys.readouterr().err
    assert "'☃'" in err and "Traceback" not in err


def test_ablate_json(capsys):
    run_id = _train(capsys, "--data", "reverse", "--model", "transformer-tiny", "--epochs", "2", "--lr", "3e-3",
                    "--data-set", "max_train=2000")
    assert main(["ablate", run_id, "--heads", "1.1,1.2,1.3,1.4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "token_accuracy" and out["heads"] == ["1.1", "1.2", "1.3", "1.4"]
    assert out["before"] > 0.95 and out["after"] < 0.5 and out["drop"] == pytest.approx(out["before"] - out["after"])
    assert main(["ablate", run_id, "--heads", "3.1"]) == 2
    assert "2 layers × 4 heads" in capsys.readouterr().err
