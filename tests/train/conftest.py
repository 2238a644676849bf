"""The RL workspace fixture shared by the trainer tests (helpers in tests/rl_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rl_support import supervise

from videor1.data.synth import synthesize
from videor1.models.tiny import build_tiny_from_records


@pytest.fixture(scope="session")
def rl_workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rl")
    synthesize(root / "synth", n=48, seed=0)
    data = [root / "synth" / "rl_train.json", root / "synth" / "cot_train.json"]
    build_tiny_from_records(root / "tiny", data, "qwen2_5_vl", "tiny", 0)
    supervise(root / "tiny", root / "formatted", root / "synth" / "cot_train.json")
    return root
