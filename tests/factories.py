"""Made-up records in the Video-R1 formats, for tests."""

from __future__ import annotations


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
