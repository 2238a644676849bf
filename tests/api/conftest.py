"""The synthetic dataset and a tiny Qwen2.5-VL, and a real `videor1 serve` app over them on a free
loopback port (helpers in api_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import LIMIT, Served, running, serve_config

from videor1.api.server import create_app
from videor1.data.synth import SynthConfig, synthesize
from videor1.models.tiny import build_tiny_from_records


@pytest.fixture(scope="session")
def api_root(tmp_path_factory) -> Path:
    """synth/ (eval.json: 8 items, 84x84 videos of 8 frames) and tiny/ (an untrained tiny model)."""
    root = tmp_path_factory.mktemp("api")
    synthesize(root / "synth", n=16, seed=0, config=SynthConfig(eval_size=8))
    build_tiny_from_records(root / "tiny", [root / "synth" / "eval.json", root / "synth" / "cot_train.json"])
    return root


@pytest.fixture(scope="session")
def server(api_root) -> Iterator[Served]:
    """The untrained tiny model served with the synthetic dataset as media root, requests ≤ 512 KiB."""
    app = create_app(serve_config(api_root / "tiny", api_root / "synth", max_request_mb=LIMIT / 2**20))
    with running(app) as url:
        yield Served(url, "tiny", api_root / "synth", api_root / "tiny")
