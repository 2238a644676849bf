"""Tiny real videos, encoded once per session with PyAV, whose frames say which frame they are.

Frame i shows i in binary on a 4 x 3 grid of black / white cells (12 bits), which survives lossy
codecs and any resize, so a test can read back exactly which source frames a reader returned.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 10, 40  # 4 s at 10 fps


def id_frame(i: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(height, width, 3) uint8: bit b of i lights cell b of a 4-wide, 3-high grid."""
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(12):
        if i >> bit & 1:
            row, col = divmod(bit, 4)
            frame[row * height // 3:(row + 1) * height // 3, col * width // 4:(col + 1) * width // 4] = 255
    return frame


def read_id(frame: np.ndarray) -> int:
    """The index drawn by `id_frame`, read at the cell centres of a frame of any size."""
    height, width = frame.shape[:2]
    bits = [frame[int((bit // 4 + 0.5) * height / 3), int((bit % 4 + 0.5) * width / 4)].mean() > 128
            for bit in range(12)]
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def write_video(path: Path, codec: str = "libx264", frames: int = FRAMES, rate: int | Fraction = FPS,
                options: dict | None = None, width: int = WIDTH, height: int = HEIGHT, gop: int | None = None,
                pts_ms: list[int] | None = None, rotation: int | None = None, draw=id_frame,
                container_options: dict | None = None) -> Path:
    """Encode `frames` frames (frame i = draw(i, width, height)); pts_ms gives irregular times (VFR)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options or {}
        if gop:
            stream.codec_context.gop_size = gop
        if pts_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(draw(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# (codec, encoder options, file suffix): near-lossless settings, each in its usual container.
FORMATS = {
    "mp4": ("libx264", {"qp": "0"}, ".mp4"),  # default preset: B-frames, so decode order != display order
    "mkv": ("libx264", {"qp": "0", "preset": "ultrafast"}, ".mkv"),
    "webm": ("libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx", {"lossless": "1"}, ".webm"),
    "avi": ("mpeg4", {"qscale": "2"}, ".avi"),
}


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """One 64x48, 40-frame, 10 fps video per container format, keyframe every 8 frames."""
    root = tmp_path_factory.mktemp("videos")
    return {name: write_video(root / f"ids{suffix}", codec, options=options, gop=8)
            for name, (codec, options, suffix) in FORMATS.items()}


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("more_videos")


@pytest.fixture
def encode():
    """write_video, for tests that need their own video."""
    return write_video


@pytest.fixture
def frame_id():
    """read_id: which source frame a returned frame is."""
    return read_id
