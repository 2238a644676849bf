"""Video and image inputs: decoding, Qwen's frame sampling and resizing, typed media errors."""

from videor1.media.cache import FrameCache, load_clip
from videor1.media.errors import (
    BadGeometry,
    CorruptMedia,
    EmptyMedia,
    MediaError,
    MediaNotFound,
    NoVideoStream,
    TooFewFrames,
    UnreadableImage,
)
from videor1.media.image import read_image
from videor1.media.sampling import (
    FPS,
    FPS_MAX_FRAMES,
    FPS_MIN_FRAMES,
    FRAME_FACTOR,
    MAX_RATIO,
    MAX_SIDE,
    FrameSampling,
    frame_indices,
    frame_range,
    geometry_problem,
    smart_nframes,
    smart_resize,
    video_frame_size,
)
from videor1.media.shuffle import (
    ShuffleMode,
    apply_permutation,
    embedding_permutation,
    sample_seed,
    shuffle_permutation,
)
from videor1.media.video import Clip, VideoInfo, check_video, probe_video, read_video

__all__ = [
    "FrameCache",
    "ShuffleMode",
    "apply_permutation",
    "embedding_permutation",
    "load_clip",
    "sample_seed",
    "shuffle_permutation",
    "FPS",
    "FPS_MAX_FRAMES",
    "FPS_MIN_FRAMES",
    "FRAME_FACTOR",
    "MAX_RATIO",
    "MAX_SIDE",
    "BadGeometry",
    "Clip",
    "CorruptMedia",
    "EmptyMedia",
    "FrameSampling",
    "MediaError",
    "MediaNotFound",
    "NoVideoStream",
    "TooFewFrames",
    "UnreadableImage",
    "VideoInfo",
    "frame_indices",
    "frame_range",
    "geometry_problem",
    "check_video",
    "probe_video",
    "read_image",
    "read_video",
    "smart_nframes",
    "smart_resize",
    "video_frame_size",
]
