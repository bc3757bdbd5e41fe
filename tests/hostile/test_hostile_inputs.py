"""The probe's low classes: hostile spec JSON and checkpoint metadata are typed errors naming the field;
every construction of a spec is validated; the CLI says ``error: …`` and exits 2 instead of a traceback;
nothing is silently wrong (class folders merged, a duplicated label column used as a feature, flipped bits
in weights loaded as if nothing happened)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
import struct

import pytest
import torch
from hostile_files import make_zip, png
from safetensors.torch import save as st_save

import dlcore
from dlcore import CheckpointError, DataError, DataSpec, SpecError, TrainSpec
from dlcore.cli import main as cli
from dlcore.runs.checkpoint import resume_state, save_checkpoint, weights_checksum

TINY = dlcore.get_preset("cnn-tiny").replace(padding="same")


# ------------------------------------------------------------------ hostile spec JSON
@pytest.mark.parametrize("data, field", [
    ({"family": ["cnn"]}, "family"), ({"family": {"cnn": 1}}, "family"), ({"family": 5}, "family"),
    ({"family": None}, "family"), ({"family": "cnn", "config": 5}, "config"),
    ({"family": "cnn", "config": "x"}, "config"), ({"family": "cnn", "config": [1, 2]}, "config"),
    ({"family": "cnn", "config": True}, "config"), ({"family": "cnn", "config": {"channels": "8,8"}}, "channels"),
    ({"family": "cnn", "config": {"channels": [8, None]}}, "channels[1]"),
    ({"family": "cnn", "config": {"channels": {"a": 1}}}, "channels"),
    ({"family": "mlp", "config": {"hidden": [1e400]}}, "hidden[0]"),
    ({"family": "transformer", "config": {"kind": ["vit"]}}, "kind"), (["cnn"], "family"), (None, "family"),
])
def test_hostile_model_spec_is_a_spec_error_naming_the_field(data, field):
    with pytest.raises(SpecError) as info:
        dlcore.model_from_dict(data)
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize("text", [
    "[" * 100_000, '{"a":' * 100_000, "{" + '"epochs": 1, ' * 200_000 + '"lr": 0.1}', "1" * 5000,
    '{"epochs": ' + "9" * 5000 + "}", "null", "5", '"text"', "", "\ud800", b"\xff\xfe{}", None, 5, ["epochs"],
])
@pytest.mark.parametrize("cls", [DataSpec, TrainSpec, dlcore.CNNConfig], ids=lambda c: c.__name__)
def test_hostile_spec_json_is_a_spec_error(cls, text):
    with pytest.raises(SpecError) as info:
        cls.from_json(text)
    assert info.value.field == "json" and len(str(info.value)) < 300


def test_from_dict_of_a_non_object_is_a_spec_error():
    for value in ([1], "x", 5, None):
        with pytest.raises(SpecError, match="object of fields"):
            TrainSpec.from_dict(value)


def test_hostile_spec_json_in_the_store_is_typed(sandbox):
    store = dlcore.RunStore()
    run_id = store.create(DataSpec(name="digits"), TINY, TrainSpec())
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET model_spec = ?, summary = ? WHERE id = ?", ("[" * 50_000, "{junk", run_id))
    run = store.get(run_id)  # the row is still listed ...
    assert run.summary == {}
    with pytest.raises(SpecError):  # ... and its model is a typed error
        run.model
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE runs SET train_spec = ? WHERE id = ?", ('{"batch_size": 0}', run_id))
    with pytest.raises(SpecError, match="batch_size"):
        store.get(run_id)


@pytest.mark.parametrize("args, field", [
    (("digits", TINY, TrainSpec()), "data"), ((DataSpec(name="digits"), "cnn-tiny", TrainSpec()), "model"),
    ((DataSpec(name="digits"), TINY, {"epochs": 1}), "train"), (({"name": "digits"}, TINY, TrainSpec()), "data"),
    ((DataSpec(name="digits"), {"family": "cnn"}, TrainSpec()), "model"), ((None, None, None), "data"),
])
def test_start_run_with_names_or_dicts_is_a_spec_error(args, field, refuses):
    with pytest.raises(SpecError) as info:
        dlcore.start_run(*args)
    assert info.value.field == field and "must be a" in str(info.value)
    assert dlcore.RunStore().list() == []


def test_explanation_parameters_given_nan_name_the_parameter():
    from dlcore.explain.registry import METHODS

    named = 0
    for method in METHODS.values():
        for p in method.params:
            if p.kind in ("int", "float"):
                with pytest.raises(SpecError) as info:
                    method.resolve({p.name: math.nan})
                assert info.value.field == p.name and p.name in str(info.value)
                named += 1
    assert named >= 2


# ------------------------------------------------------------------ validation on every construction
@pytest.mark.parametrize("make, field", [
    (lambda: TrainSpec(batch_size=0), "batch_size"), (lambda: DataSpec(val_fraction=2.0), "val_fraction"),
    (lambda: TrainSpec(lr=math.nan), "lr"), (lambda: TrainSpec(epochs=1.5), "epochs"),
    (lambda: TrainSpec(seed=True), "seed"), (lambda: TrainSpec(optimizer="lbfgs"), "optimizer"),
    (lambda: DataSpec(name=None), "name"), (lambda: dlcore.CNNConfig(channels=()), "channels"),
    (lambda: dlcore.CNNConfig(channels=(8, 8), pools=(2,)), "pools"),
    (lambda: dlcore.TransformerConfig(d_model=64, n_heads=5), "n_heads"),
    (lambda: dataclasses.replace(TrainSpec(), epochs=0), "epochs"),
    (lambda: dataclasses.replace(dlcore.get_preset("seed-cnn"), kernel_size=99), "kernel_size"),
    (lambda: TrainSpec().replace(grad_accum=-1), "grad_accum"),
])
def test_every_construction_is_validated(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field


def test_construction_normalises_and_comparisons_stay_possible():
    assert TrainSpec(lr=1).lr == 1.0 and isinstance(TrainSpec(lr=1).lr, float)
    assert dlcore.CNNConfig(channels=[8, 16], pools=[2, 2]).channels == (8, 16)
    assert TrainSpec(epochs=3.0).epochs == 3 and type(TrainSpec(epochs=3.0).epochs) is int
    digits = dlcore.dataset_info("digits")
    fitted = dlcore.for_data(TINY, digits)
    assert dlcore.preset_of(fitted) == "custom"  # padding differs from cnn-tiny's
    # presets that cannot read 8×8 images are compared without being validated (unchecked_replace)
    assert dlcore.preset_of(dlcore.for_data(dlcore.get_preset("cnn-medium"), digits)) == "cnn-medium"


# ------------------------------------------------------------------ checkpoint metadata
def _weights(config=TINY):
    torch.manual_seed(0)
    return {f"model.{k}": v.contiguous() for k, v in dlcore.build_model(config).state_dict().items()}


@pytest.mark.parametrize("meta, pattern", [
    ({"epoch": 1, "scheduler": {}}, r"no 'step'"), ({"step": 3, "scheduler": {}}, r"no 'epoch'"),
    ({"epoch": 1, "step": 3}, r"no 'scheduler'"), ({"epoch": 1, "step": "3", "scheduler": {}}, r"'step' must be"),
    ({"epoch": 1, "step": -1, "scheduler": {}}, r"'step' must be"), ({"epoch": 1, "step": True, "scheduler": {}}, r"'step'"),
    ({"epoch": 1, "step": 3, "scheduler": 5}, r"'scheduler' must be an object"),
    ({"epoch": 1, "step": 3, "scheduler": {}, "history": {}}, r"'history' must be a list"),
    ({"epoch": 1, "step": 3, "scheduler": {}, "param_groups": [1]}, r"'param_groups'"),
    ({"epoch": 1, "step": 3, "scheduler": {}, "best_metric": "x"}, r"'best_metric'"),
    ({"epoch": [1], "step": 3, "scheduler": {}}, r"'epoch' must be"),
])
def test_checkpoint_metadata_that_cannot_be_resumed_from(meta, pattern, tmp_path):
    save_checkpoint(tmp_path, _weights(), meta, model_config=TINY)
    with pytest.raises(CheckpointError, match=pattern):
        resume_state(tmp_path)
    dlcore.load_checkpoint(tmp_path)  # the weights themselves still load (for inspection)


def test_resume_from_a_checkpoint_without_step_starts_over_cleanly(sandbox):
    from dlcore.train.worker import run_job

    store = dlcore.RunStore()
    run_id = store.create(DataSpec(name="digits", max_train=64), TINY, TrainSpec(epochs=1, batch_size=32))
    save_checkpoint(store.run_dir(run_id), _weights(), {"epoch": 1}, model_config=TINY)  # hand-made: no step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_job(run_id, store, resume=True) == "completed", store.get(run_id).error
    finally:
        torch.set_num_threads(threads)
    assert resume_state(store.run_dir(run_id))[1]["step"] >= 1


# ------------------------------------------------------------------ checksums
def _flip_a_weight_bit(path):
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8 + n + 5] ^= 0x10  # a bit inside the first tensor's bytes
    path.write_bytes(bytes(data))


def test_flipped_bits_in_saved_weights_are_a_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path, _weights(), {"step": 1}, model_config=TINY)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["weights_sha256"] == weights_checksum(_weights())
    _flip_a_weight_bit(tmp_path / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        dlcore.load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="checksum"):
        dlcore.import_checkpoint((tmp_path / "checkpoint.safetensors").read_bytes(),
                                 (tmp_path / "checkpoint.json").read_text())


def test_the_spec_s_checksum_guards_bare_weights():
    weights = _weights()
    spec = json.dumps({"model": dlcore.model_to_dict(TINY), "weights_sha256": weights_checksum(weights)})
    dlcore.import_checkpoint(st_save(weights), spec)
    tampered = {k: (v + 1e-3 if i == 0 else v) for i, (k, v) in enumerate(weights.items())}
    with pytest.raises(CheckpointError, match="checksum"):
        dlcore.import_checkpoint(st_save(tampered), spec)
    dlcore.import_checkpoint(st_save(tampered), json.dumps({"model": dlcore.model_to_dict(TINY)}))  # no checksum: ok


def test_checksum_covers_names_types_shapes_and_optimizer_state():
    base = {"model.w": torch.arange(6, dtype=torch.float32), "optim.0.exp_avg": torch.zeros(6)}
    variants = [{**base, "model.w": base["model.w"].reshape(2, 3)}, {**base, "model.w": base["model.w"].double()},
                {"model.v": base["model.w"], "optim.0.exp_avg": base["optim.0.exp_avg"]},
                {**base, "optim.0.exp_avg": torch.full((6,), 1e-9)}]
    assert len({weights_checksum(base), *(weights_checksum(v) for v in variants)}) == 5
    assert weights_checksum({"b": torch.ones(2, dtype=torch.bfloat16)}) == weights_checksum({"b": torch.ones(2).bfloat16()})


# ------------------------------------------------------------------ class folders and CSV headers
def _pair(a: str, b: str) -> bytes:
    return make_zip({f"{a}/1.png": png(color=1), f"{a}/2.png": png(color=2), f"{b}/1.png": png(color=200),
                     f"{b}/2.png": png(color=250)})


def test_class_folders_differing_after_64_characters_stay_distinct(sandbox):
    a, b = "x" * 64 + "-cats", "x" * 64 + "-dogs"
    assert dlcore.import_image_zip(_pair(a, b)).class_names == (a, b)
    assert dlcore.import_image_zip(_pair("Cat", "cat")).class_names == ("Cat", "cat")


@pytest.mark.parametrize("a, b, pattern", [
    ("cat", "cat\x07", r"control character"), ("cat\x7f", "dog", r"control character"),
    ("cat\x1b[31m", "dog", r"control character"), ("cat", "cat ", r"look the same"),
    ("caf\u00e9", "cafe\u0301", r"look the same"), ("x" * 129, "dog", r"129 characters; at most 128"),
])
def test_class_folders_that_would_merge_are_refused(a, b, pattern, refuses):
    refuses(DataError, lambda: dlcore.import_image_zip(_pair(a, b)), pattern)


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("header", ["a,label,label", "label,a,label", "a,b,a,label", "a, label,label ", "x,x"])
def test_a_duplicated_column_name_is_refused(header, refuses):
    n = header.count(",") + 1
    rows = [",".join(str((i * 7 + j) % 5) if j < n - 1 else "xy"[i % 2] for j in range(n)) for i in range(8)]
    refuses(DataError, lambda: dlcore.import_table_csv(_csv(header, *rows)), r"names two columns .* must be unique")


@pytest.mark.parametrize("header", ["text,label,Label", "Text,text,label"])
def test_text_csv_with_two_label_or_text_columns_is_refused(header, refuses):
    rows = [f"so good {i},pos,neg" if i % 2 else f"bad {i},neg,pos" for i in range(6)]
    refuses(DataError, lambda: dlcore.import_text_csv(_csv(header, *rows)), r"columns named '(text|label)'")


# ------------------------------------------------------------------ the CLI says error: and exits 2
@pytest.fixture
def trained_run(sandbox):
    store = dlcore.RunStore()
    config = dlcore.for_data(TINY, dlcore.dataset_info("digits"))
    run_id = store.create(DataSpec(name="digits"), config, TrainSpec(epochs=1))
    weights = {f"model.{k}": v for k, v in dlcore.build_model(config).state_dict().items()}
    save_checkpoint(store.run_dir(run_id), weights, {"step": 1, "epoch": 1}, model_config=config)
    store.update(run_id, status="completed")
    return run_id


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_export_out_under_a_file(trained_run, sandbox, capsys):
    blocker = sandbox.cwd / "blocker"
    blocker.write_text("a file, not a folder")
    code, err = _cli(capsys, "export", trained_run, "--format", "safetensors", "--out", str(blocker / "m.safetensors"))
    assert code == 2 and err.startswith("error: ") and "blocker" in err


def test_export_into_an_unwritable_place(trained_run, sandbox, capsys, monkeypatch):
    import dlcore.export as export

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied", str(sandbox.cwd / "ro" / "m.safetensors"))

    monkeypatch.setattr(export, "to_safetensors", read_only)
    code, err = _cli(capsys, "export", trained_run, "--format", "safetensors", "--out", str(sandbox.cwd / "ro" / "m"))
    assert code == 2 and err.startswith("error: permission denied")
    if os.geteuid() != 0:  # a real read-only folder (root may write anywhere)
        ro = sandbox.cwd / "ro2"
        ro.mkdir()
        ro.chmod(0o500)
        monkeypatch.undo()
        code, err = _cli(capsys, "export", trained_run, "--format", "safetensors", "--out", str(ro / "m.safetensors"))
        assert code == 2 and err.startswith("error: ")


@pytest.mark.parametrize("junk", [b"this is not sqlite", b"SQLite format 3\x00" + b"\xff" * 200, b"\x00" * 4096])
@pytest.mark.parametrize("command", [["runs"], ["show", "x"], ["resume", "x"], ["cancel", "x"]])
def test_a_junk_store_db(junk, command, sandbox, capsys):
    sandbox.data.mkdir(parents=True, exist_ok=True)
    (sandbox.data / "store.db").write_bytes(junk)
    code, err = _cli(capsys, *command)
    assert code == 2 and err.startswith("error: ") and "store.db" in err, err


@pytest.mark.parametrize("command", [["runs"], ["datasets"], ["show", "x"]])
def test_data_dir_pointing_at_a_file(command, sandbox, capsys, monkeypatch):
    target = sandbox.cwd / "not-a-folder"
    target.write_text("x")
    monkeypatch.setenv("DLE_DATA_DIR", str(target))
    code, err = _cli(capsys, *command)
    assert code == 2 and err.startswith("error: ") and "DLE_DATA_DIR must name a folder" in err, err


def test_resume_of_a_completed_run_is_a_cli_error(trained_run, capsys):
    code, err = _cli(capsys, "resume", trained_run)
    assert code == 2 and "already completed" in err
