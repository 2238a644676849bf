"""The RL workspace fixture shared by the trainer tests (helpers in tests/rl_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rl_support import build_rl_workspace


@pytest.fixture(scope="session")
def rl_workspace(tmp_path_factory) -> Path:
    return build_rl_workspace(tmp_path_factory.mktemp("rl"))
