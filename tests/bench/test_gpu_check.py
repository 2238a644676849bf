"""bench/gpu_check.py runs at a tiny size on CPU, so that it cannot rot between GPU runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def test_gpu_check_tiny_on_cpu_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--size", "tiny", "--steps", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["attention"], r["gradient_checkpointing"]) for r in rows] == [("sdpa", False), ("sdpa", True)]
    for row in rows:
        assert "error" not in row, row
        # fixed-length responses: G ordered + G~ shuffled, each `response_tokens` long
        assert row["response_tokens"] == 8 and row["G"] == 2 and row["G_shuffled"] == 2
        assert row["tgrpo_s"] == row["rollout_s"] + row["reference_s"] + row["update_s"]
        assert row["generated_tokens_per_s"] > 0 and row["update_tflops"] > 0
        assert row["update_mfu"] is None and row["peak_memory_gb"] is None  # CPU: no card peak
    assert "update_mfu" in proc.stdout and "sdpa | True" in proc.stdout
