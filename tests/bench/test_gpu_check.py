"""bench/gpu_check.py --dry-run: the GPU check's own code, on the CPU with tiny sizes (CI has no GPU)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_runs_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "DLE_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["device"] == "cpu" and result["failures"] == []
    assert result["matmul_peak"]["flops_per_s"] > 0
    assert [c["preset"] for c in result["cnn_vs_naive"]] == ["seed-cnn", "cnn-medium"]
    assert all(c["ratio"] > 0 and c["naive"]["samples_per_s"] > 0 for c in result["cnn_vs_naive"])
    assert all(c["tokens_per_s"] > 0 and c["mfu_measured_peak"] is not None for c in result["transformers_bf16"])
    assert result["job_system"]["status"] == "completed"
    assert result["cuda_tests"]["ok"] and "test_fast_path.py" in " ".join(result["cuda_tests"]["files"])
    for line in ("(a) seed-cnn trainer / naive", "(b) lm-tiny", "(c) start_run → completed", "(d) CUDA-only tests"):
        assert line in proc.stdout
