"""Shared fixtures: made-up records in the Video-R1 formats, with media files on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from factories import image_record, video_record

# One thread per test process: the suite runs on 2 workers over 2 cores, and torch's default of
# one thread per core, oversubscribed, made some tests 5-40x slower.
torch.set_num_threads(1)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mini"


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    """A media root with one real video and one real image (copied from examples/mini)."""
    root = tmp_path / "media"
    (root / "videos").mkdir(parents=True)
    (root / "images").mkdir()
    shutil.copy(EXAMPLES / "videos" / "right_red.mp4", root / "videos" / "clip.mp4")
    shutil.copy(EXAMPLES / "images" / "three_circles.png", root / "images" / "circles.png")
    return root


@pytest.fixture
def mixed_file(media_dir: Path) -> Path:
    """Good and bad records side by side, stored next to the media (the default media root)."""
    records = [
        video_record(1),
        image_record(2),
        video_record(3, solution="<answer>E</answer>"),  # letter not among the options
        image_record(4, path="images/missing.png"),  # media missing
        video_record(5, problem_type="yes/no"),  # unknown problem type
        image_record(6, solution="3"),  # no answer tags
        image_record(7, solution="<answer>three-ish</answer>"),  # numerical answer that is no number
        video_record(8, problem_type="free-form", options=[], solution="<answer>it moves right</answer>"),
    ]
    path = media_dir / "train.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
