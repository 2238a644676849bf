"""read_video returns the right frames, at the right times and sizes, by seeking or not."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from videor1.media import FrameSampling, frame_indices, frame_range, probe_video, read_video, video_frame_size
from videor1.media import video as video_module

FORMATS = ["mp4", "mkv", "webm", "avi"]


@pytest.mark.parametrize("name", FORMATS)
def test_probe(videos, name):
    info = probe_video(videos[name])
    assert (info.width, info.height, info.fps, info.total_frames, info.rotation) == (64, 48, 10.0, 40, 0)
    assert info.duration == pytest.approx(4.0, abs=0.11) and info.start_time == 0.0


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("seek", [True, False])
def test_returns_the_sampled_frames(videos, name, seek, frame_id):
    sampling = FrameSampling(nframes=8)
    clip = read_video(videos[name], sampling, seek=seek)
    assert clip.indices == frame_indices(40, 8) == [0, 6, 11, 17, 22, 28, 33, 39]
    assert [frame_id(frame) for frame in clip.frames] == clip.indices
    assert clip.timestamps == pytest.approx([i / 10 for i in clip.indices], abs=1e-6)
    assert clip.sampled_fps == pytest.approx(8 / 40 * 10)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (8, *video_frame_size(48, 64, 8, sampling), 3) == (8, 280, 392, 3)


@pytest.mark.parametrize("name", FORMATS)
def test_seek_and_decode_everything_agree_pixel_for_pixel(videos, name):
    sampling = FrameSampling(nframes=6, min_pixels=16, max_pixels=64 * 48, factor=16)  # native size
    seeking, straight = read_video(videos[name], sampling), read_video(videos[name], sampling, seek=False)
    assert seeking.frames.shape == (6, 48, 64, 3)
    assert np.array_equal(seeking.frames, straight.frames)
    assert seeking.timestamps == straight.timestamps and seeking.indices == straight.indices


def test_fps_sampling_and_dense_sampling(videos, frame_id):
    clip = read_video(videos["mp4"], FrameSampling(fps=2.0))  # 4 s * 2 fps = 8 frames
    assert len(clip.frames) == 8 and clip.sampled_fps == pytest.approx(2.0)
    every = read_video(videos["mkv"], FrameSampling(nframes=40))  # every frame: decoded straight through
    assert [frame_id(frame) for frame in every.frames] == list(range(40))


@pytest.mark.parametrize("name", ["mp4", "webm"])
def test_start_and_end_seconds(videos, name, frame_id):
    sampling = FrameSampling(nframes=4, start=1.0, end=3.0)
    clip = read_video(videos[name], sampling)
    assert frame_range(sampling, 40, 10.0) == (10, 30, 21)
    assert clip.indices == [10, 17, 23, 30]
    assert [frame_id(frame) for frame in clip.frames] == clip.indices
    assert clip.timestamps == pytest.approx([1.0, 1.7, 2.3, 3.0], abs=1e-6)
    assert clip.sampled_fps == pytest.approx(4 / 21 * 10)  # Qwen: nframes / frames in range * fps


@pytest.mark.parametrize("factor, max_pixels", [(28, 4 * 28 * 28), (32, 16 * 32 * 32), (28, 256 * 28 * 28)])
def test_frame_size_follows_video_frame_size(videos, factor, max_pixels):
    sampling = FrameSampling(nframes=2, min_pixels=4 * factor * factor, max_pixels=max_pixels, factor=factor)
    clip = read_video(videos["mp4"], sampling)
    assert clip.frames.shape[1:3] == video_frame_size(48, 64, 2, sampling)
    assert clip.frames.shape[1] % factor == 0 and clip.frames.shape[2] % factor == 0


def test_ntsc_rate_takes_exact_frames(video_dir, encode, frame_id):
    # 29.97 fps in a 1/30000 time base: index / fps lands on each frame only up to rounding.
    path = encode(video_dir / "ntsc.mp4", frames=60, rate=Fraction(30000, 1001), options={"qp": "0"})
    clip = read_video(path, FrameSampling(nframes=20))
    assert clip.info.fps == pytest.approx(30000 / 1001)
    assert [frame_id(frame) for frame in clip.frames] == clip.indices == frame_indices(60, 20)


def test_variable_frame_rate_is_sampled_by_time(video_dir, encode, frame_id):
    # 20 frames 50 ms apart, then 20 frames 250 ms apart: uniform in time is not uniform in frame count.
    pts = [50 * i for i in range(20)] + [1000 + 250 * i for i in range(20)]
    path = encode(video_dir / "vfr.mp4", pts_ms=pts, options={"qp": "0"})
    clip = read_video(path, FrameSampling(nframes=8))
    info = clip.info
    got = [frame_id(frame) for frame in clip.frames]
    # the first frame at or after each target time (half a frame period of slack)
    targets = [i / info.fps for i in clip.indices]
    expected = [next(k for k, p in enumerate(pts) if p / 1000 >= t - 0.5 / info.fps) for t in targets]
    assert got == expected
    assert clip.timestamps == pytest.approx([pts[k] / 1000 for k in expected])
    assert got != frame_indices(40, 8)  # sampling by frame count would pick other frames
    assert sum(k < 20 for k in got) <= 2  # the dense first second is 1/6 of the time, not half the frames


@pytest.mark.parametrize("rotation, corner", [(90, "bottom_left"), (180, "bottom_right"), (270, "top_right")])
def test_rotation_metadata_is_honoured(video_dir, encode, rotation, corner):
    def marker(i, width, height):  # a white block in the top-left corner of the stored frame
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:16, :16] = 255
        return frame

    path = encode(video_dir / f"rot{rotation}.mp4", frames=10, rotation=rotation, draw=marker,
                  options={"qp": "0"})
    info = probe_video(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))
    sampling = FrameSampling(nframes=2, min_pixels=16, max_pixels=64 * 64, factor=16)
    frame = read_video(path, sampling).frames[0]
    assert frame.shape[:2] == video_frame_size(info.height, info.width, 2, sampling)
    height, width = frame.shape[:2]
    corners = {"top_left": frame[0, 0], "top_right": frame[0, width - 1],
               "bottom_left": frame[height - 1, 0], "bottom_right": frame[height - 1, width - 1]}
    assert [name for name, pixel in corners.items() if pixel.mean() > 128] == [corner]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_seeking_decodes_only_a_few_frames(video_dir, encode, frame_id, monkeypatch, suffix):
    path = encode(video_dir / f"long{suffix}", frames=400, gop=10, options={"preset": "ultrafast"})
    decoded = []
    original = video_module._Decoder._next

    def counting(self):
        moved = original(self)
        decoded.append(moved)
        return moved

    monkeypatch.setattr(video_module._Decoder, "_next", counting)
    seeking = read_video(path, FrameSampling(nframes=4))
    seeks = len(decoded)
    decoded.clear()
    straight = read_video(path, FrameSampling(nframes=4), seek=False)
    assert [frame_id(f) for f in seeking.frames] == [0, 133, 266, 399]
    assert [frame_id(f) for f in straight.frames] == [0, 133, 266, 399]
    assert seeks <= 4 * 11  # at most one GOP per target, against the whole video
    assert len(decoded) >= 399
