"""Shared fixtures: made-up records in the Video-R1 formats, with media files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def video_record(problem_id, **overrides) -> dict:
    record = {
        "problem_id": problem_id,
        "problem": "Which direction does the red square move?",
        "data_type": "video",
        "problem_type": "multiple choice",
        "options": ["A. left", "B. right", "C. up", "D. down"],
        "solution": "<answer>B</answer>",
        "path": "videos/clip.mp4",
        "data_source": "synthetic-video",
    }
    record.update(overrides)
    return record


def image_record(problem_id, **overrides) -> dict:
    record = {
        "problem_id": problem_id,
        "problem": "How many circles are in the image?",
        "data_type": "image",
        "problem_type": "numerical",
        "options": [],
        "solution": "<answer>3</answer>",
        "path": "images/circles.png",
        "data_source": "synthetic-image",
    }
    record.update(overrides)
    return record


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    """A media root with one (placeholder) video and one image; these tests do not decode media."""
    root = tmp_path / "media"
    (root / "videos").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "videos" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (root / "images" / "circles.png").write_bytes(b"\x89PNG\r\n\x1a\n")
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
