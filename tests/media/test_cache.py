"""The frame cache: same clip as decoding, keyed by file identity and sampling, atomic, shared, bounded."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from videor1.media.cache import FrameCache, load_clip
from videor1.media.sampling import FrameSampling
from videor1.media.video import read_video

SAMPLING = FrameSampling(nframes=8, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)


def _encode(path: Path, frames: int = 20, side: int = 56, shift: int = 0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0", "preset": "ultrafast"})
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((side, side, 3), (i * 10 + shift) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return _encode(tmp_path / "clip.mp4")


def _same(a, b):
    assert np.array_equal(a.frames, b.frames)
    assert a.timestamps == b.timestamps and a.indices == b.indices and a.sampled_fps == b.sampled_fps
    assert a.info == b.info


def test_cached_clip_equals_decoded_and_is_reused(video: Path, tmp_path: Path, monkeypatch):
    cache = FrameCache(tmp_path / "cache")
    first = cache.read_video(video, SAMPLING)
    _same(first, read_video(video, SAMPLING))
    assert np.array_equal(load_clip(video, SAMPLING, None).frames,
                          first.frames)  # caching off decodes directly
    calls = []
    monkeypatch.setattr("videor1.media.cache.read_video", lambda *a: calls.append(a))
    _same(cache.read_video(video, SAMPLING), first)  # from disk: no decode
    _same(load_clip(video, SAMPLING, cache), first)
    assert calls == []


def test_key_follows_file_identity_and_sampling(video: Path, tmp_path: Path):
    cache = FrameCache(tmp_path / "cache")
    key = cache.key(video, SAMPLING)
    assert key == FrameCache(tmp_path / "other").key(video, SAMPLING)
    assert key != cache.key(video, FrameSampling(nframes=4, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28))
    assert key != cache.key(video, FrameSampling(nframes=8, min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28))
    cache.read_video(video, SAMPLING)
    _encode(video, shift=100)  # the file changes: its cached frames must not be returned
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache.key(video, SAMPLING) != key
    _same(cache.read_video(video, SAMPLING), read_video(video, SAMPLING))


def test_a_damaged_entry_is_dropped_not_returned(video: Path, tmp_path: Path):
    cache = FrameCache(tmp_path / "cache")
    cache.read_video(video, SAMPLING)
    entry = cache._entry(cache.key(video, SAMPLING))
    entry.write_bytes(entry.read_bytes()[:100])
    assert cache.load(video, SAMPLING) is None and not entry.exists()
    _same(cache.read_video(video, SAMPLING), read_video(video, SAMPLING))


def test_size_bound_evicts_least_recently_used(tmp_path: Path):
    videos = [_encode(tmp_path / f"v{i}.mp4", shift=i) for i in range(4)]
    cache = FrameCache(tmp_path / "cache", max_bytes=None)
    for i, video in enumerate(videos):
        cache.read_video(video, SAMPLING)
        entry = cache._entry(cache.key(video, SAMPLING))
        os.utime(entry, (1000 + i, 1000 + i))
    size = entry.stat().st_size
    cache.load(videos[0], SAMPLING)  # v0 becomes the most recently used
    cache.evict(max_bytes=2 * size)
    kept = [cache._entry(cache.key(v, SAMPLING)).exists() for v in videos]
    assert kept == [True, False, False, True]


_WRITER = """
import sys, numpy as np
from pathlib import Path
from videor1.media.cache import FrameCache
from videor1.media.sampling import FrameSampling
from videor1.media.video import Clip, read_video
cache = FrameCache(sys.argv[1], max_bytes=None)
sampling = FrameSampling(nframes=8, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
clip = read_video(sys.argv[2], sampling)
big = Clip(np.tile(clip.frames, (400, 1, 1, 1)), clip.timestamps * 400, clip.sampled_fps, clip.indices * 400,
           clip.info)
print("ready", flush=True)
while True:
    cache.store(sys.argv[2], sampling, big)
"""


@pytest.mark.slow
def test_a_killed_writer_never_leaves_an_entry_that_loads_wrong(video: Path, tmp_path: Path):
    root = tmp_path / "cache"
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(video)],
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        clip = FrameCache(root, max_bytes=None).load(video, SAMPLING)
        if clip is not None:  # either no entry yet, or a complete one
            assert len(clip.frames) == len(clip.indices) == 8 * 400
            assert np.array_equal(clip.frames[:8], read_video(video, SAMPLING).frames)


def _reader_writer(args):
    root, video, rounds = args
    cache = FrameCache(root, max_bytes=None)
    expected = read_video(video, SAMPLING).frames
    for _ in range(rounds):
        cache.store(video, SAMPLING, read_video(video, SAMPLING))
        clip = cache.load(video, SAMPLING)
        if clip is not None and not np.array_equal(clip.frames, expected):
            return False
    return True


@pytest.mark.slow
def test_several_processes_share_one_cache(video: Path, tmp_path: Path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        assert all(pool.map(_reader_writer, [(str(tmp_path / "cache"), str(video), 15)] * 2))
    assert not list((tmp_path / "cache").glob("*/*.tmp"))


def test_a_missing_video_is_a_media_error_with_the_cache_on(tmp_path: Path):
    from videor1.media import MediaNotFound

    with pytest.raises(MediaNotFound):
        FrameCache(tmp_path / "cache").read_video(tmp_path / "gone.mp4", SAMPLING)
