"""Which frames to take from a video and what size to give them: Qwen's rules, as pure functions.

The released Video-R1 checkpoints saw frames chosen by qwen-vl-utils (`smart_nframes`, a rounded
linspace over the frame range) and resized by `smart_resize`. These functions reproduce those rules
(tests check them against qwen-vl-utils, which src/ never imports) but take every setting from a
`FrameSampling` instead of library constants or environment variables (docs/reference.md).

No I/O here: `videor1.media.video` reads the file and calls these. Invalid inputs raise ValueError;
the readers turn that into a MediaError that names the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FRAME_FACTOR = 2  # temporal patch size: Qwen's vision tower packs frames in pairs
FPS = 2.0  # default sampling rate when no frame count is given
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MAX_RATIO = 200  # Qwen refuses images and frames more elongated than this
MAX_SIDE = 16384  # larger video frames are treated as broken metadata, not as content to decode

# Pixel budgets, in units of one merged vision token's area (Qwen2/2.5-VL: 14-pixel patches merged 2x2).
PIXELS = 28 * 28
TRAIN_PIXELS = 128 * PIXELS  # per training frame (paper: at most 128·28·28)
EVAL_MAX_PIXELS = 256 * PIXELS  # per frame or image at evaluation and inference (paper: 256·28·28)
EVAL_MIN_PIXELS = 16 * PIXELS  # set explicitly: the processor's default upsizes small videos
IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS = 4 * PIXELS, 1024 * PIXELS  # training images
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 4 * PIXELS, 16384 * PIXELS  # qwen-vl-utils' own defaults


def _round_by(x: float, factor: int) -> int:
    # Python's round (half to even), exactly as qwen-vl-utils, so ties land on the same multiple.
    return round(x / factor) * factor


def _ceil_by(x: float, factor: int) -> int:
    return math.ceil(x / factor) * factor


def _floor_by(x: float, factor: int) -> int:
    return math.floor(x / factor) * factor


def geometry_problem(height: int, width: int, max_side: int | None = MAX_SIDE) -> str | None:
    """Why a (height, width) frame cannot be used, or None when it can."""
    if height < 1 or width < 1:
        return f"frame size {width}x{height} has an empty side"
    if max_side is not None and max(height, width) > max_side:
        return f"frame size {width}x{height} exceeds {max_side} pixels per side"
    if max(height, width) / min(height, width) > MAX_RATIO:
        return f"aspect ratio of {width}x{height} exceeds {MAX_RATIO}"
    return None


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = QWEN_MIN_PIXELS,
                 max_pixels: int = QWEN_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) snapped to multiples of `factor`, with height * width in [min_pixels, max_pixels]
    where possible, aspect ratio kept.

    factor = patch size * spatial merge: 28 for Qwen2/2.5-VL, 32 for Qwen3-VL. Equal to qwen-vl-utils'
    `smart_resize`, except that a side never shrinks below `factor` when downscaling an elongated frame
    (qwen-vl-utils would return 0 there; transformers' processors clamp the same way).
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize a {width}x{height} frame: both sides must be >= 1")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must be <= max_pixels ({max_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be at most {MAX_RATIO}, got {ratio:.1f} "
                         f"({width}x{height})")
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, _floor_by(height / beta, factor))
        w_bar = max(factor, _floor_by(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


@dataclass(frozen=True)
class FrameSampling:
    """How to turn one video into model frames; configs and CLI flags fill this in, per stage.

    Either a fixed `nframes` (the paper: 16 in training, 16-64 at evaluation), or a rate `fps` clamped
    to [min_frames, max_frames]. `start` / `end` (seconds) restrict sampling to part of the video.
    Each frame is resized to at most `max_pixels` (paper: 128*28*28 in training, 256*28*28 at
    evaluation) and at least `min_pixels`, with sides multiple of `factor` (28 Qwen2.5-VL, 32 Qwen3-VL).
    `total_pixels`, when set, also caps the pixels of the whole clip as qwen-vl-utils does (per-frame
    cap = total_pixels / nframes * FRAME_FACTOR, but never below 1.05 * min_pixels).
    """

    nframes: int | None = None
    fps: float = FPS
    min_frames: int = FPS_MIN_FRAMES
    max_frames: int = FPS_MAX_FRAMES
    start: float | None = None
    end: float | None = None
    min_pixels: int = TRAIN_PIXELS
    max_pixels: int = TRAIN_PIXELS
    factor: int = 28
    total_pixels: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.nframes is not None and self.nframes < FRAME_FACTOR:
            problems.append(f"nframes={self.nframes}: need at least {FRAME_FACTOR} frames (or leave it unset "
                            "to sample by fps)")
        if not self.fps > 0:
            problems.append(f"fps={self.fps}: must be > 0")
        if self.min_frames < 1:
            problems.append(f"min_frames={self.min_frames}: must be >= 1")
        if self.min_frames > self.max_frames:
            problems.append(f"min_frames={self.min_frames} > max_frames={self.max_frames}: "
                            "min must be <= max")
        if self.start is not None and self.start < 0:
            problems.append(f"start={self.start}: seconds from the beginning, must be >= 0")
        if self.start is not None and self.end is not None and not self.start < self.end:
            problems.append(f"start={self.start} >= end={self.end}: start must come before end")
        if self.min_pixels < 1:
            problems.append(f"min_pixels={self.min_pixels}: must be >= 1")
        if self.min_pixels > self.max_pixels:
            problems.append(f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}: "
                            "min must be <= max")
        if self.factor < 1:
            problems.append(f"factor={self.factor}: must be >= 1 (28 for Qwen2.5-VL, 32 for Qwen3-VL)")
        if self.total_pixels is not None and self.total_pixels < 1:
            problems.append(f"total_pixels={self.total_pixels}: must be >= 1 (or None for no clip budget)")
        if problems:
            raise ValueError("invalid FrameSampling: " + "; ".join(problems))


def frame_range(sampling: FrameSampling, total_frames: int, video_fps: float) -> tuple[int, int, int]:
    """(start_frame, end_frame, count) covered by sampling.start / sampling.end, end inclusive.

    Like qwen-vl-utils' `calculate_video_frame_range`: times are clamped to the video, start rounds
    up and end rounds down to whole frames, and a range of fewer than 2 frames raises ValueError.
    """
    if video_fps <= 0:
        raise ValueError(f"video fps must be > 0, got {video_fps}")
    if total_frames <= 0:
        raise ValueError(f"video has no frames (total_frames={total_frames})")
    if sampling.start is None and sampling.end is None:
        return 0, total_frames - 1, total_frames
    duration = total_frames / video_fps
    start_frame = 0
    if sampling.start is not None:
        start_frame = math.ceil(max(0.0, min(sampling.start, duration)) * video_fps)
    end_frame = total_frames - 1
    if sampling.end is not None:
        end_frame = min(math.floor(max(0.0, min(sampling.end, duration)) * video_fps), total_frames - 1)
    if start_frame >= end_frame:
        raise ValueError(f"time range {sampling.start}..{sampling.end} s covers frames "
                         f"{start_frame}..{end_frame} of a {duration:.2f} s video ({total_frames} frames at "
                         f"{video_fps:.3f} fps): need at least 2 frames")
    return start_frame, end_frame, end_frame - start_frame + 1


def smart_nframes(sampling: FrameSampling, total_frames: int, video_fps: float) -> int:
    """How many frames to sample from `total_frames` frames (the range's count) at `video_fps`.

    A fixed `nframes` is rounded to a multiple of FRAME_FACTOR; otherwise duration * fps, clamped to
    [min_frames, max_frames] (rounded inward to the factor) and to total_frames, then floored to the
    factor. Raises ValueError when the result is outside [FRAME_FACTOR, total_frames], like qwen-vl-utils.
    """
    if sampling.nframes is not None:
        nframes = _round_by(sampling.nframes, FRAME_FACTOR)
    else:
        min_frames = _ceil_by(sampling.min_frames, FRAME_FACTOR)
        max_frames = _floor_by(sampling.max_frames, FRAME_FACTOR)
        wanted = total_frames / video_fps * sampling.fps
        nframes = _floor_by(min(max(wanted, min_frames), max_frames, total_frames), FRAME_FACTOR)
    if not FRAME_FACTOR <= nframes <= total_frames:
        raise ValueError(f"need {nframes} frames but the video (range) has {total_frames}: "
                         f"the frame count must be in [{FRAME_FACTOR}, {total_frames}]")
    return nframes


def frame_indices(total_frames: int, nframes: int, start_frame: int = 0,
                  end_frame: int | None = None) -> list[int]:
    """`nframes` frame indices spread uniformly over [start_frame, end_frame] (end inclusive; default last).

    Qwen's `torch.linspace(start, end, nframes).round()`, computed exactly in integers (ties to even):
    float32 linspace can tip a value across .5, so Qwen's indices may differ from these by one frame
    where a position falls (nearly) halfway between two frames.
    """
    end_frame = total_frames - 1 if end_frame is None else end_frame
    if not 0 <= start_frame <= end_frame < total_frames:
        raise ValueError(f"frame range {start_frame}..{end_frame} is not inside 0..{total_frames - 1}")
    if nframes < 1:
        raise ValueError(f"nframes must be >= 1, got {nframes}")
    if nframes == 1:
        return [start_frame]
    span, steps = end_frame - start_frame, nframes - 1
    indices = []
    for i in range(nframes):
        whole, rest = divmod(span * i, steps)  # position = start + whole + rest / steps
        up = 2 * rest > steps or (2 * rest == steps and whole % 2 == 1)  # round half to even
        indices.append(start_frame + whole + int(up))
    return indices


def video_frame_size(height: int, width: int, nframes: int, sampling: FrameSampling) -> tuple[int, int]:
    """(height, width) every sampled frame is resized to.

    smart_resize with the sampling's explicit pixel bounds (the processor's defaults would upsize small
    videos, docs/reference.md). `nframes` matters only with `sampling.total_pixels` (a budget for the whole
    clip).
    """
    max_pixels = sampling.max_pixels
    if sampling.total_pixels is not None:
        budget = max(sampling.total_pixels / nframes * FRAME_FACTOR, int(sampling.min_pixels * 1.05))
        max_pixels = min(max_pixels, budget)
    return smart_resize(height, width, sampling.factor, sampling.min_pixels, max_pixels)
