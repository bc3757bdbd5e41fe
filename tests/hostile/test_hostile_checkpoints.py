"""Hostile checkpoints: pickles are refused without being executed, truncated or forged safetensors and
weights that do not fit their spec are clear CheckpointErrors, and a good checkpoint still loads."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as st_save

import dlcore
from dlcore import CheckpointError, SpecError
from dlcore.runs.checkpoint import read_safetensors, save_checkpoint

TINY = dlcore.MLPConfig(in_features=4, num_outputs=2, hidden=(3,))


def weights(config=TINY) -> dict[str, torch.Tensor]:
    torch.manual_seed(1234)
    return {f"model.{k}": v.contiguous() for k, v in dlcore.build_model(config).state_dict().items()}


def spec(config=TINY) -> str:
    return json.dumps({"model": dlcore.model_to_dict(config)})


class Boom:
    """Unpickling this creates the marker file: proof that a loader executed the pickle."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_good_checkpoint_round_trips(tmp_path):
    config, model = dlcore.import_checkpoint(st_save(weights()), spec())
    assert config == TINY and isinstance(model, torch.nn.Module) and not model.training
    save_checkpoint(tmp_path, weights(), {"step": 7}, model_config=TINY)
    (tmp_path / ".checkpoint.safetensors.999.tmp").write_bytes(b"half a write")  # a kill -9 mid-save
    (tmp_path / "checkpoint.json").unlink()  # the metadata also lives inside the safetensors file
    tensors, meta = dlcore.load_checkpoint(tmp_path)
    assert meta["step"] == 7 and dlcore.model_from_dict(meta["model"]) == TINY and set(tensors) == set(weights())


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_malicious_pickle_is_refused_without_running(protocol, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"model.net.1.weight": Boom(str(marker))}, protocol=protocol)
    with pytest.raises(CheckpointError, match="pickle|not a safetensors"):
        read_safetensors(payload)
    with pytest.raises(CheckpointError, match="pickle|not a safetensors"):
        dlcore.import_checkpoint(payload, spec())
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(payload)
    (run / "checkpoint.json").write_text(spec())
    with pytest.raises(CheckpointError, match="pickle|not a safetensors"):
        dlcore.load_checkpoint(run)
    assert not marker.exists(), "the pickle was executed"


def test_torch_save_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"x": Boom(str(marker))}, buf)
    with pytest.raises(CheckpointError, match=r"zip archive \(the format of torch.save\).*arbitrary code"):
        dlcore.import_checkpoint(buf.getvalue(), spec())
    assert not marker.exists()


def _with_header(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


GOOD = st_save(weights())
CHECKPOINT_CASES = {
    "empty": (b"", spec(), CheckpointError, r"empty"),
    "random-bytes": (bytes(range(256)) * 4, spec(), CheckpointError, r"not a safetensors checkpoint"),
    "truncated-half": (GOOD[: len(GOOD) // 2], spec(), CheckpointError, r"truncated or corrupt"),
    "truncated-header": (GOOD[:40], spec(), CheckpointError, r"truncated or corrupt"),
    "header-claims-terabytes": (struct.pack("<Q", 2**40) + b"{}" * 8, spec(), CheckpointError, r"header claims"),
    "header-not-json": (_with_header(b"{not json at all}"), spec(), CheckpointError, r"truncated or corrupt"),
    "offsets-past-end": (_with_header(b'{"model.net.1.weight":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}'),
                         spec(), CheckpointError, r"truncated or corrupt"),
    "spec-not-json": (GOOD, "{model: cnn", CheckpointError, r"JSON is unreadable"),
    "spec-is-a-list": (GOOD, "[1, 2]", CheckpointError, r"must be an object"),
    "spec-unknown-family": (GOOD, json.dumps({"family": "gan", "config": {}}), SpecError, r"family must be one of"),
    "spec-field-out-of-range": (GOOD, json.dumps({"family": "mlp", "config": {"hidden": [0]}}), SpecError,
                                r"hidden\[0\] must be 1\.\.65536"),
    "spec-of-another-model": (GOOD, spec(dlcore.MLPConfig(in_features=4, num_outputs=2, hidden=(5,))), CheckpointError,
                              r"do not match the model spec.*shape mismatch.*file \(3, 4\), spec \(5, 4\)"),
    "spec-of-another-family": (GOOD, spec(dlcore.get_preset("cnn-tiny")), CheckpointError,
                               r"do not match.*missing.*unexpected"),
    "weight-missing": (st_save({k: v for k, v in weights().items() if not k.endswith("net.3.bias")}), spec(),
                       CheckpointError, r"1 weight\(s\) missing \(e\.g\. net\.3\.bias\)"),
    "extra-weight": (st_save({**weights(), "model.trojan": torch.zeros(3)}), spec(), CheckpointError,
                     r"unexpected weight\(s\) \(e\.g\. trojan\)"),
    "integer-weights": (st_save({k: v.to(torch.int32) for k, v in weights().items()}), spec(), CheckpointError,
                        r"wrong number type"),
    "nan-weights": (st_save({k: v.fill_(float("nan")) if k.endswith("net.1.weight") else v
                             for k, v in weights().items()}), spec(), CheckpointError, r"NaN or infinite.*diverged"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_hostile_checkpoint_is_refused(case):
    data, spec_json, exc, pattern = CHECKPOINT_CASES[case]
    with pytest.raises(exc, match=pattern):
        dlcore.import_checkpoint(data, spec_json)


def test_spec_of_a_huge_model_costs_nothing():
    """A 4-billion-parameter spec (17 GB of weights) next to tiny weights is refused on the meta device, without
    allocating it: the check runs with the address space capped 1 GiB above what the process maps (building the
    model for real fails at once), and it touches less than 256 MiB of new memory."""
    resource = pytest.importorskip("resource")
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs Linux's /proc to read the mapped size")
    huge = dlcore.MLPConfig(in_features=4, num_outputs=2, hidden=(65_536, 65_536))
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = mapped + 2**30 if hard == resource.RLIM_INFINITY else min(mapped + 2**30, hard)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        with pytest.raises(CheckpointError, match="shape mismatch"):
            dlcore.import_checkpoint(GOOD, spec(huge))
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 256 * 1024  # KiB on Linux


def test_checkpoint_size_limit(monkeypatch):
    monkeypatch.setenv("DLE_MAX_UPLOAD_MB", "0.0001")
    with pytest.raises(CheckpointError, match=r"MB; the limit is .*DLE_MAX_UPLOAD_MB"):
        dlcore.import_checkpoint(GOOD + b"\0" * 200, spec())


def test_damaged_run_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="has not finished an epoch"):
        dlcore.load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, weights(), {"step": 3}, model_config=TINY)
    data = (tmp_path / "checkpoint.safetensors").read_bytes()
    (tmp_path / "checkpoint.safetensors").write_bytes(data[: len(data) - 10])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        dlcore.load_checkpoint(tmp_path)
    # an older checkpoint without embedded metadata relies on checkpoint.json, which may be damaged too
    (tmp_path / "checkpoint.safetensors").write_bytes(st_save(weights()))
    (tmp_path / "checkpoint.json").write_text('{"step": 3')
    with pytest.raises(CheckpointError, match="JSON is unreadable"):
        dlcore.load_checkpoint(tmp_path)
    os.remove(tmp_path / "checkpoint.json")
    with pytest.raises(CheckpointError, match="no metadata"):
        dlcore.load_checkpoint(tmp_path)
