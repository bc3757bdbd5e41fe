"""Cost of the issue-10 resource cases: seconds and peak memory of each, one fresh process per case.

Not a test (pytest does not collect it): ``python tests/hostile/measure_costs.py [CASE ...]`` prints one row per
case — the outcome (accepted, or the first words of the refusal), wall seconds, the peak RSS above the
process's RSS before the call, and the bytes written to the data folder. Run it before and after a change.
"""
from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

# the code measured: this checkout, or another one (``MEASURE_ROOT=/tmp/before``, e.g. made with
# ``git archive HEAD dlcore | tar -x -C /tmp/before``) for the numbers before a change
ROOT = Path(os.environ.get("MEASURE_ROOT") or Path(__file__).resolve().parents[2])


def _png(size, color=0, mode="L") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in entries:
            zf.writestr(name, blob)
    return buf.getvalue()


def many_records_zip(n: int = 3_550_000) -> bytes:
    """A zip whose central directory lists n records (all the same 7-byte name), each 53 bytes: 199 MB."""
    name = b"a/b.png"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    cd = record * n
    if n < 0xFFFF:
        return local + cd + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n, len(cd), len(local), 0)
    # zip64, as any tool writes more than 65,535 entries: the counts are in the zip64 end record
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), len(local))
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(local) + len(cd), 1)
    eocd = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + cd + end64 + locator + eocd


def case_zip_records():
    import dlcore
    data, fn = many_records_zip(), dlcore.import_image_zip
    return lambda: fn(data), f"{len(data) / 2**20:.0f} MB zip, 3.55 M records"


def case_zip_big_pngs():
    import dlcore
    big = _png((4096, 4096))
    data, fn = _zip([(f"{'ab'[i % 2]}/{i}.png", big) for i in range(120)]), dlcore.import_image_zip
    return lambda: fn(data), f"{len(data) / 2**20:.1f} MB zip, 120 PNGs of 4096×4096"


def case_zip_tiny_pngs_512():
    import dlcore
    data = _zip([(f"{'ab'[i % 2]}/{i}.png", _png((1, 1), (i % 256, 0, 0), "RGB")) for i in range(340)])
    fn = dlcore.import_image_zip
    return lambda: fn(data, image_size=512), f"{len(data) / 2**10:.0f} KB zip, 340 1-px RGB PNGs at 512"


def case_text_csv():
    import dlcore
    import random
    rng = random.Random(0)
    words = ["good", "bad", "film", "plot", "really", "not", "the", "was", "acting", "score"]
    lines, size = ["text,label"], 0
    while size < 72 * 2**20:
        text = " ".join(rng.choice(words) for _ in range(50))[:250]
        lines.append(f"{text},{'pos' if rng.random() < 0.5 else 'neg'}")
        size += len(lines[-1]) + 1
    data, fn = ("\n".join(lines) + "\n").encode(), dlcore.import_text_csv
    return lambda: fn(data), f"{len(data) / 2**20:.0f} MB text CSV, {len(lines) - 1:,} rows"


def case_cnn_10000_blocks():
    import dlcore
    from dlcore.models import summarize

    summarize(dlcore.get_preset("cnn-tiny"))  # the flop counter's one-time import, outside the measurement

    def run():
        cfg = dlcore.CNNConfig(channels=(8,) * 10_000, pools=(1,) * 10_000, padding="same")
        return summarize(cfg)
    return run, "CNNConfig with 10,000 conv blocks, then summarize()"


def case_cnn_largest_allowed():
    import dlcore
    from dlcore.models import summarize
    from dlcore.specs import field_specs
    bound = {f.name: getattr(f, "max_items", None) for f in field_specs(dlcore.CNNConfig)}
    n = bound["channels"] or 10_000
    summarize(dlcore.get_preset("cnn-tiny"))

    def run():
        cfg = dlcore.CNNConfig(channels=(8192,) * n, pools=(1,) * n, padding="same", image_size=2048,
                               hidden=(65_536,) * (bound["hidden"] or 1))
        return summarize(cfg)
    return run, f"the largest CNN the spec allows ({n} blocks of 8192 channels at 2048 px), summarize()"


def _png_13000() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (13_000, 13_000), 0).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def case_explain_png_13000():
    """The Explain page's upload path: dlcore.inspect.image_from_bytes."""
    import dlcore
    data = _png_13000()
    info = dlcore.DatasetInfo("d", "d", "", "image-classification", "image", (1, 28, 28), 10)
    fn = dlcore.inspect.image_from_bytes
    return lambda: fn(data, info), f"{len(data) / 2**10:.0f} KB PNG of 13000×13000, Explain"


def case_explain_png_13000_unchecked():
    """What image_from_bytes did before the checked decoder: open, load, convert (no pixel limit)."""
    from PIL import Image
    data = _png_13000()

    def run():
        with Image.open(io.BytesIO(data), formats=("PNG",)) as im:
            im.load()
            return im.convert("RGBA")
    return run, f"{len(data) / 2**10:.0f} KB PNG of 13000×13000, decoded without a limit (the old path)"


def case_reverse_10m(max_train: int = 10_000_000):
    import dlcore
    import dlcore.train.jobs as jobs
    jobs._spawn = lambda *a, **k: None  # the check under test is the caller's, not the worker's
    start_run, preset = dlcore.start_run, dlcore.get_preset("transformer-tiny")
    dlcore.dataset_info("reverse")  # imports and the default set, outside the measurement

    def run():
        return start_run(dlcore.DataSpec(name="reverse", seq_len=256, max_train=max_train),
                         preset, dlcore.TrainSpec(epochs=1))
    return run, f"start_run(reverse, seq_len=256, max_train={max_train:,})"


def case_reverse_1m():
    return case_reverse_10m(1_000_000)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child(name: str) -> None:
    """Capped at 12 GB of address space (a case that would take more fails instead of swapping the machine).
    Build the case's input, then time the call alone: its seconds and peak RSS above the RSS before it."""
    resource.setrlimit(resource.RLIMIT_AS, (12 * 2**30, resource.RLIM_INFINITY))
    fn, what = CASES[name]()
    import gc
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    try:
        fn()
        outcome = "accepted"
    except Exception as e:  # the outcome of the case is what we report
        outcome = f"{type(e).__name__}: {str(e)[:110]}"
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    disk = _disk(Path(os.environ["DLE_DATA_DIR"]) / "datasets") if (Path(os.environ["DLE_DATA_DIR"]) / "datasets").exists() else 0
    print(json.dumps({"case": name, "what": what, "outcome": outcome, "seconds": round(seconds, 2),
                      "peak_mb": round(max(0, peak - base) / 2**20), "disk_mb": round(disk / 2**20, 1)}))


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "DLE_DATA_DIR": tmp, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else json.dumps(
                {"case": name, "outcome": f"process died (rc {out.returncode}): {out.stderr.strip()[-200:]}"})
            print(line, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main(sys.argv[1:])
