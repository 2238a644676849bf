"""A tiny Qwen2.5-VL briefly supervised on the synthetic chains of thought (so its answers differ from
item to item and carry answer tags), and the synthetic evaluation split it is evaluated on."""

from __future__ import annotations

from pathlib import Path

import pytest
from rl_support import supervise

from videor1.data.synth import SynthConfig, synthesize
from videor1.models.tiny import build_tiny_from_records


@pytest.fixture(scope="session")
def eval_workspace(tmp_path_factory) -> Path:
    """synth/ (eval.json: 24 items) and model/ (tiny, 160 SFT steps)."""
    root = tmp_path_factory.mktemp("eval")
    synthesize(root / "synth", n=16, seed=0, config=SynthConfig(eval_size=24))
    build_tiny_from_records(root / "tiny", [root / "synth" / "eval.json", root / "synth" / "cot_train.json"])
    # 16 CoT records: 160 SFT steps bring the loss to ~0.3, so most answers carry tags (80 leave it at ~2)
    supervise(root / "tiny", root / "model", root / "synth" / "cot_train.json", steps=160,
              template="video-r1-eval")
    return root
