"""Whether a media file can be used, as `videor1 data validate --media open` asks: a video decoded at
the frames training and evaluation sample (a probe alone passes a file whose data was cut after its
index), an image fully decoded.

Record validation (`data/`, below media in the pipeline) receives `open_problem` from its caller
instead of importing it (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path

from videor1.media.errors import MediaError
from videor1.media.image import read_image
from videor1.media.video import check_video

# Frames per video decoded by the check: the training (16) and evaluation (32) defaults' samplings.
SAMPLED_FRAMES = (16, 32)


def open_problem(path: Path, data_type: str) -> str | None:
    """Why the media file at `path` cannot be decoded as `data_type` ("video" or "image"), or None."""
    try:
        if data_type == "video":
            check_video(path, SAMPLED_FRAMES)
        else:
            read_image(path)
    except MediaError as error:
        return f"path: {type(error).__name__}: {error}"
    return None
