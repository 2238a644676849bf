"""bench/credit_routes.py runs at a tiny size on CPU (a random tiny model), so that it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from videor1.data.synth import ShortcutConfig, SynthConfig, synthesize
from videor1.models.tiny import build_tiny_from_records

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "credit_routes.py"


@pytest.mark.slow
def test_credit_routes_prints_both_tables_on_a_shortcut_split(tmp_path):
    config = SynthConfig(shortcut=ShortcutConfig(agreement=1.0), tasks={"direction": 1}, eval_size=24,
                         image_fraction=0.0, temporal_fraction=1.0)
    synthesize(tmp_path / "synth", n=16, seed=0, config=config)
    build_tiny_from_records(tmp_path / "tiny", [tmp_path / "synth" / "eval.json"], "qwen2_5_vl", "tiny", 0)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tmp_path / "tiny"),
                           "--data", str(tmp_path / "synth" / "eval.json"), "--batches", "1",
                           "--prompts", "2", "--generations", "2", "--max-new-tokens", "6"],
                          capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin",
                               "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "by route" in out and "separate the routes" in out
    # 2 questions x 2 responses, every one on some route (a random model mostly on neither)
    counts = [int(line.split("│")[2]) for line in out.splitlines()
              if line.startswith("│") and line.split("│")[1].strip() in ("truth", "cue", "neither")]
    assert len(counts) == 3 and sum(counts) == 4


def test_auc_is_the_mann_whitney_statistic():
    sys.path.insert(0, str(SCRIPT.parent))
    from credit_routes import auc

    assert auc([3, 4], [1, 2]) == 1.0 and auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 2], [1, 2]) == 0.5 and auc([2], [1, 2, 3]) == 0.5
