"""Resource exhaustion inside the documented limits: each cost (memory, CPU-seconds, bytes on disk) is
bounded by what it costs, checked before the work, with the number in the message — and what is accepted
costs about what was predicted. The before/after table of the probe's cases: tests/hostile/measure_costs.py."""
from __future__ import annotations

import io
import os
import struct
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hostile_files import good_images, make_zip, png, png_header_only

import dlcore
import dlcore.data.user as user
import dlcore.train.jobs as jobs
from dlcore import DataError, DataSpec, SpecError, TrainSpec
from dlcore.data.user import _central_directory_entries


def _peak_meter():
    """(reset, peak_bytes): the process's peak RSS since reset, from /proc (Linux only)."""
    status, refs = Path("/proc/self/status"), Path("/proc/self/clear_refs")
    if not status.exists():
        pytest.skip("needs Linux's /proc to measure peak memory")

    def kb(key):
        for line in status.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    base = {}

    def reset():
        refs.write_text("5")  # VmHWM := VmRSS
        base["rss"] = kb("VmRSS")

    def peak():
        return kb("VmHWM") - base["rss"]

    return reset, peak


# ------------------------------------------------------------------ zip central directory
def _records_zip(n: int, declared: int | None = None, zip64: bool = False) -> bytes:
    """A zip whose central directory holds n records (one 7-byte name), its end record declaring ``declared``."""
    name = b"a/b.png"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    cd = record * n
    count = n if declared is None else declared
    if not zip64:
        return local + cd + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                                        len(cd), len(local), 0)
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(cd), len(local))
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(local) + len(cd), 1)
    eocd = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + cd + end64 + locator + eocd


@pytest.fixture
def no_zipfile(monkeypatch):
    """zipfile must not be reached: the count is refused from the end records alone."""
    def parse(*a, **k):
        raise AssertionError("zipfile parsed the central directory before the entry limit was checked")

    monkeypatch.setattr(user.zipfile, "ZipFile", parse)


@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
def test_too_many_central_directory_records_are_refused_before_parsing(zip64, refuses, no_zipfile):
    data = _records_zip(60_000, zip64=zip64)
    t0 = time.perf_counter()
    refuses(DataError, lambda: dlcore.import_image_zip(data), r"60,000 entries; the limit is 50,000 \(DLE_MAX_ZIP_FILES\)")
    assert time.perf_counter() - t0 < 0.5


def test_a_forged_small_count_cannot_hide_records(refuses, no_zipfile):
    data = _records_zip(60_000, declared=3)
    refuses(DataError, lambda: dlcore.import_image_zip(data), r"more than 50,000 entries")


def test_millions_of_records_declared_in_zip64_cost_nothing(refuses, no_zipfile):
    data = _records_zip(10, declared=3_550_000, zip64=True)
    refuses(DataError, lambda: dlcore.import_image_zip(data), r"3,550,000 entries")


def test_the_entry_count_of_real_zips(monkeypatch):
    real = make_zip({f"c{i % 2}/{i}.png": b"x" for i in range(300)})
    assert _central_directory_entries(real, 50_000) == (300, True)
    assert _central_directory_entries(real, 100) == (300, True)  # the declared count is past the limit: no walk
    pos = real.rfind(b"PK\x05\x06")
    forged = real[:pos + 8] + struct.pack("<2H", 3, 3) + real[pos + 12:]  # the end record claims 3 entries
    assert _central_directory_entries(forged, 50_000) == (300, True)  # the records are counted
    assert _central_directory_entries(forged, 100) == (101, False)  # and the walk stops past the limit
    commented = real[:-2] + struct.pack("<H", 5) + b"hello"  # an archive comment after the end record
    assert _central_directory_entries(commented, 50_000) == (300, True)
    assert _central_directory_entries(b"not a zip", 10) is None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.comment = b"PK\x05\x06 inside a comment"
        zf.writestr("a/1.png", b"x")
    assert _central_directory_entries(buf.getvalue(), 10) in ((1, True), None)  # never a crash


# ------------------------------------------------------------------ pixels, memory and disk of image zips
def test_total_decoded_pixels_are_bounded_before_any_decode(refuses, monkeypatch):
    """The probe's 120 PNGs of 4096×4096: 2 billion pixels, 33 s of CPU. Refused from the headers alone."""
    decoded = []
    monkeypatch.setattr(user, "decode_image", lambda *a, **k: decoded.append(1))
    heads = {f"{'ab'[i % 2]}/{i}.png": png_header_only(4096, 4096) for i in range(120)}
    t0 = time.perf_counter()
    refuses(DataError, lambda: dlcore.import_image_zip(make_zip(heads)),
            r"120 images hold 2,013,265,920 pixels together; the limit is 400,000,000 \(DLE_MAX_ZIP_PIXELS\)")
    assert time.perf_counter() - t0 < 2.0 and decoded == []


def test_pixel_budget_follows_its_variable(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_ZIP_PIXELS", "200")
    refuses(DataError, lambda: dlcore.import_image_zip(make_zip(good_images())), r"4 images hold 256 pixels")
    monkeypatch.setenv("DLE_MAX_ZIP_PIXELS", "256")
    assert dlcore.import_image_zip(make_zip(good_images())).num_outputs == 2


def _one_pixel_rgb(n: int) -> bytes:
    return make_zip({f"{'ab'[i % 2]}/{i}.png": png((1, 1), (i % 256, 0, 0), "RGB") for i in range(n)})


def test_memory_of_a_large_resize_is_predicted_and_refused(refuses, monkeypatch):
    """The probe's 340 one-pixel PNGs at image_size=512 (+4.4 GB): the prediction carries the number."""
    monkeypatch.setenv("DLE_MAX_DATASET_MB", "512")
    refuses(DataError, lambda: dlcore.import_image_zip(_one_pixel_rgb(340), image_size=512),
            r"340 images at 512×512 would take 1,020 MB in memory; the limit is 512 MB \(DLE_MAX_DATASET_MB\)")


def test_an_accepted_resize_costs_what_was_predicted(sandbox):
    reset, peak = _peak_meter()
    data = _one_pixel_rgb(200)
    stored = 200 * 3 * 256 * 256  # bytes: images are kept as 0..255
    reset()
    info = dlcore.import_image_zip(data, image_size=256)
    used = peak()
    assert used < 2.5 * stored + 48 * 2**20, f"import peak {used / 2**20:.0f} MB for {stored / 2**20:.0f} MB of pixels"
    on_disk = (sandbox.data / "datasets" / info.name / "data.safetensors").stat().st_size
    assert on_disk < 1.05 * stored, "images are stored as float32, four times what they need"
    ds = dlcore.load_dataset(DataSpec(name=info.name))
    assert ds.train[0].dtype == torch.float32 and 0.0 <= float(ds.train[0].min()) <= float(ds.train[0].max()) <= 1.0
    assert ds.info.pixel_mean == pytest.approx(info.pixel_mean, abs=1e-3)


def test_uint8_storage_round_trips_the_pixels(sandbox):
    images = {"a/1.png": png((4, 4), 0), "a/2.png": png((4, 4), 51), "b/1.png": png((4, 4), 204),
              "b/2.png": png((4, 4), 255)}
    info = dlcore.import_image_zip(make_zip(images), image_size=4)
    ds = dlcore.load_dataset(DataSpec(name=info.name, val_fraction=0.0))
    values = sorted({round(float(v), 4) for v in torch.cat([ds.train[0], ds.test[0]]).unique()})
    assert values == [0.0, 0.2, 0.8, 1.0]


# ------------------------------------------------------------------ text: compact tokens, bounded by bytes
def _text_csv(rows: int, length: int = 200) -> bytes:
    body = "\n".join(f"{('good film ' * 40)[:length]},{'pos' if i % 2 else 'neg'}" for i in range(rows))
    return ("text,label\n" + body + "\n").encode()


def test_text_tokens_are_stored_compactly_and_read_as_int64(sandbox):
    info = dlcore.import_text_csv(_text_csv(400), name="reviews")
    on_disk = (sandbox.data / "datasets" / info.name / "data.safetensors").stat().st_size
    assert on_disk < 400 * 200 * 1.2, f"{on_disk} bytes for 80,000 tokens: not one byte each"
    ds = dlcore.load_dataset(DataSpec(name=info.name))
    assert ds.train[0].dtype == torch.long and ds.train[0].shape[1] == 200
    from dlcore.data.tokens import decode_tokens
    assert decode_tokens(ds.info, ds.test[0][0].tolist()) == ("good film " * 40)[:200]


def test_text_memory_is_bounded_before_tokenising(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_DATASET_MB", "1")
    monkeypatch.setattr("dlcore.data.builtin.text_classification", lambda *a, **k: pytest.fail("tokenised"))
    refuses(DataError, lambda: dlcore.import_text_csv(_text_csv(1000)),
            r"1,000 texts padded to 200 characters would take 1.5 MB in memory for training; the limit is 1.0 MB")


def test_corpus_memory_is_bounded(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_DATASET_MB", "0.1")
    refuses(DataError, lambda: dlcore.import_text_corpus(b"abcd" * 5000), r"20,000 characters would take 0.3 MB")


def test_corpus_tokens_are_compact_and_reload_exactly(sandbox):
    text = "the quick brown fox jumps over the lazy dog. " * 50
    info = dlcore.import_text_corpus(text.encode(), window=16)
    ds = dlcore.load_dataset(DataSpec(name=info.name, val_fraction=0.0))
    x, y = ds.train
    rows = {"".join(info.vocab[i] for i in row) for row in x.tolist()}
    assert x.dtype == torch.long and text[:16] in rows
    assert torch.equal(x[:, 1:], y[:, :-1])


# ------------------------------------------------------------------ list fields of specs
@pytest.mark.parametrize("make", [
    lambda: dlcore.CNNConfig(channels=(8,) * 10_000, pools=(1,) * 10_000),
    lambda: dlcore.CNNConfig.from_json('{"channels": [' + ",".join(["8"] * 10_000) + "]}"),
    lambda: dlcore.model_from_dict({"family": "cnn", "config": {"channels": [8] * 10_000, "pools": [1] * 10_000}}),
    lambda: dlcore.MLPConfig(hidden=(4,) * 10_000),
    lambda: dlcore.CNNConfig(hidden=(4,) * 33),
    lambda: dlcore.TrainSpec(freeze=("body",) * 100_000),
], ids=["cnn-direct", "cnn-json", "cnn-dict", "mlp-hidden", "cnn-hidden-33", "freeze-list"])
def test_long_list_fields_are_refused_at_once(make):
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"may list at most [\d,]+ items, got [\d,]+"):
        make()
    assert time.perf_counter() - t0 < 0.5


def test_the_largest_cnn_allowed_is_summarised_quickly():
    from dlcore.params import MAX_ITEMS
    from dlcore.specs import field_specs

    bounds = {f.name: f.max_items for f in field_specs(dlcore.CNNConfig) if f.is_tuple}
    assert bounds["channels"] <= 64 and bounds["hidden"] <= 32 and MAX_ITEMS <= 256
    dlcore.summarize(dlcore.get_preset("cnn-tiny"))  # the flop counter's one-time import
    n = bounds["channels"]
    biggest = dlcore.CNNConfig(channels=(8192,) * n, pools=(1,) * n, padding="same", image_size=2048,
                               hidden=(65_536,) * bounds["hidden"])
    t0 = time.perf_counter()
    summary = dlcore.summarize(biggest)
    assert time.perf_counter() - t0 < 3.0 and summary.params > 10**15


def test_long_text_values_are_refused():
    with pytest.raises(SpecError, match=r"name may be at most 1,000 characters"):
        DataSpec(name="x" * 10**6)


# ------------------------------------------------------------------ generated data sets
@pytest.mark.parametrize("spec, pattern", [
    (DataSpec(name="reverse", seq_len=256, max_train=10_000_000), r"'reverse' with max_train=10,000,000 and seq_len=256 "
                                                                  r"would take about 78,\d{3} MB to build"),
    (DataSpec(name="sort", seq_len=200, max_train=2_000_000), r"'sort' .* seq_len=200"),
    (DataSpec(name="sentiment-synth", max_train=10_000_000), r"'sentiment-synth' with max_train=10,000,000"),
])
def test_generated_sets_are_sized_before_they_are_built(spec, pattern, refuses, monkeypatch):
    """The probe's reverse task: every field in range, 20.5 GB allocated by start_run before the fit check."""
    monkeypatch.setattr(jobs, "_spawn", lambda *a, **k: pytest.fail("no worker may start"))
    reset, peak = _peak_meter()
    store = dlcore.RunStore()
    reset()
    t0 = time.perf_counter()
    refuses(DataError, lambda: dlcore.start_run(spec, dlcore.get_preset("transformer-tiny"), TrainSpec(epochs=1),
                                                store=store), pattern, r"limit is 2,048 MB \(DLE_MAX_DATASET_MB\)")
    assert time.perf_counter() - t0 < 3.0 and peak() < 200 * 2**20
    assert store.list() == []


_MEASURE_BUILD = """
import json, sys
from pathlib import Path
import dlcore
from dlcore.data.builtin import build_bytes
status, refs = Path("/proc/self/status"), Path("/proc/self/clear_refs")
def kb(key):
    return next(int(l.split()[1]) * 1024 for l in status.read_text().splitlines() if l.startswith(key + ":"))
spec = dlcore.DataSpec.from_json(sys.argv[1])
build_bytes(spec)  # its imports are not the dataset's cost
refs.write_text("5")
base = kb("VmRSS")
dlcore.load_dataset(spec)
print(json.dumps([kb("VmHWM") - base, build_bytes(spec)]))
"""


def test_the_estimate_covers_what_building_takes():
    """build_bytes is an upper bound of the measured peak (and not wildly above it). Each is measured in a
    fresh process: in the suite's own, memory freed by earlier tests is reused without raising the peak."""
    import json
    import subprocess
    import sys

    _peak_meter()  # skips where /proc cannot measure
    for spec in (DataSpec(name="reverse", seq_len=64, max_train=100_000), DataSpec(name="sentiment-synth",
                                                                                   max_train=40_000)):
        out = subprocess.run([sys.executable, "-c", _MEASURE_BUILD, spec.to_json()], capture_output=True, text=True,
                             timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        used, predicted = json.loads(out.stdout.strip().splitlines()[-1])
        assert used <= predicted * 1.1 + 16 * 2**20, (spec.name, used, predicted)
        assert predicted < 8 * used + 64 * 2**20, (spec.name, used, predicted)
