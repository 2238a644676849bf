"""The media of a record, decoded with one stage's settings; errors name the record and the file.

A record whose media fails raises a `MediaError` carrying the record's id: the caller reports it
and skips the record. Nothing here ever substitutes other media.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from videor1.data.loading import resolve_media
from videor1.data.records import Record
from videor1.media.cache import FrameCache, load_clip
from videor1.media.errors import MediaError
from videor1.media.image import read_image
from videor1.media.sampling import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS, TRAIN_PIXELS, FrameSampling
from videor1.media.shuffle import ShuffleMode
from videor1.media.video import Clip

log = logging.getLogger(__name__)


class MediaConfig(BaseModel):
    """How one stage (SFT, RL, evaluation) samples and sizes its media. Paper defaults: training.

    Evaluation uses more pixels (256·28·28) and 16–64 frames; set them in the stage's config.
    """

    model_config = ConfigDict(extra="forbid")

    nframes: int | None = Field(default=16, description="Fixed frame count (paper: 16 in training). None: "
                                                        "use fps.")
    fps: float = Field(default=2.0, description="Frames per second to sample when nframes is None (Qwen: 2).")
    min_frames: int = Field(default=4, description="At least this many frames when sampling by fps.")
    max_frames: int = Field(default=768, description="At most this many frames when sampling by fps.")
    video_min_pixels: int = Field(default=TRAIN_PIXELS, description="Minimum pixels per video frame.")
    video_max_pixels: int = Field(default=TRAIN_PIXELS, description="Maximum pixels per video frame (paper: "
                                  "128·28·28).")
    image_min_pixels: int = Field(default=IMAGE_MIN_PIXELS, description="Minimum pixels per image.")
    image_max_pixels: int = Field(default=IMAGE_MAX_PIXELS, description="Maximum pixels per image.")
    factor: int = Field(default=28, description="Side multiple: patch size x merge size (28 Qwen2/2.5-VL, 32 "
                                                "Qwen3-VL).")
    shuffle: ShuffleMode = Field(default="temporal_patch", description="How T-GRPO shuffles frames: "
                                 "temporal_patch (exact embedding reuse) or frame (the reference code).")
    cache_dir: Path | None = Field(default=None, description="Frame cache directory; None turns caching off.")
    cache_max_gb: float = Field(default=20.0, description="Frame cache size bound, in GiB.")

    @model_validator(mode="after")
    def _check(self) -> MediaConfig:
        self.sampling()  # FrameSampling reports every inconsistency at once
        if self.image_min_pixels > self.image_max_pixels:
            raise ValueError("image_min_pixels must not exceed image_max_pixels")
        return self

    def sampling(self) -> FrameSampling:
        return FrameSampling(nframes=self.nframes, fps=self.fps, min_frames=self.min_frames,
                             max_frames=self.max_frames, min_pixels=self.video_min_pixels,
                             max_pixels=self.video_max_pixels, factor=self.factor)

    def cache(self) -> FrameCache | None:
        return None if self.cache_dir is None else FrameCache(self.cache_dir, int(self.cache_max_gb * 2**30))


def load_media(record: Record, media_root: str | Path | None, config: MediaConfig,
               cache: FrameCache | None = None) -> Clip | Image.Image:
    """The record's video clip or image; `MediaError` (with the record's id) when it cannot be read."""
    try:
        path = resolve_media(record, media_root)
    except ValueError as error:
        raise MediaError(Path(record.path), str(error), record.label) from None
    try:
        if record.data_type == "video":
            sampling = config.sampling()
            start, end = getattr(record, "start", None), getattr(record, "end", None)
            if start is not None or end is not None:  # a segment of the video (MVBench items carry one)
                sampling = dataclasses.replace(sampling, start=start, end=end)
            return load_clip(path, sampling, cache)
        return read_image(path, config.image_min_pixels, config.image_max_pixels, config.factor)
    except MediaError as error:
        raise error.with_record(record.label) from None


@dataclass
class SkipLog:
    """Records skipped because of their media: each logged once with its reason, counted by kind."""

    errors: dict[str, MediaError] = field(default_factory=dict)  # record label -> its error

    def add(self, error: MediaError) -> None:
        label = error.record or str(error.path)
        if label not in self.errors:
            log.warning("skipping %s", error)
            self.errors[label] = error

    def counts(self) -> Counter:
        return Counter(type(error).__name__ for error in self.errors.values())


def load_media_or_skip(record: Record, media_root: str | Path | None, config: MediaConfig, skips: SkipLog,
                       cache: FrameCache | None = None) -> Clip | Image.Image | None:
    """The record's media, or None after noting the record in `skips` (never other media)."""
    try:
        return load_media(record, media_root, config, cache)
    except MediaError as error:
        skips.add(error)
        return None
