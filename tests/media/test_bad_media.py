"""Every kind of bad media raises its own MediaError naming the file; images are read like Qwen's."""

from __future__ import annotations

import pickle

import av
import numpy as np
import pytest
from PIL import Image

from videor1.media import (
    BadGeometry,
    CorruptMedia,
    EmptyMedia,
    FrameSampling,
    MediaError,
    MediaNotFound,
    NoVideoStream,
    TooFewFrames,
    UnreadableImage,
    check_video,
    probe_video,
    read_image,
    read_video,
    smart_resize,
)

SAMPLING = FrameSampling(nframes=4)


def assert_media_error(call, kind, path):
    """`call` raises exactly `kind`, naming `path`; returns the error."""
    with pytest.raises(MediaError) as caught:
        call()
    assert type(caught.value) is kind, f"{type(caught.value).__name__}: {caught.value}"
    assert str(path) in str(caught.value)
    return caught.value


def cut(source, target, fraction):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


# --- the error type ---------------------------------------------------------------------------------

def test_with_record_names_the_record_and_keeps_the_type(tmp_path):
    error = CorruptMedia(tmp_path / "x.mp4", "moov atom not found")
    assert str(error) == f"{tmp_path / 'x.mp4'}: moov atom not found" and error.record is None
    labelled = error.with_record("problem_id=7")
    assert type(labelled) is CorruptMedia and labelled.record == "problem_id=7"
    assert str(labelled) == f"problem_id=7: {tmp_path / 'x.mp4'}: moov atom not found"
    assert error.record is None  # the original is unchanged
    copy = pickle.loads(pickle.dumps(labelled))  # crosses DataLoader worker processes intact
    assert type(copy) is CorruptMedia and str(copy) == str(labelled) and copy.path == labelled.path


# --- videos -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("read", [probe_video, lambda p: read_video(p, SAMPLING)], ids=["probe", "read"])
def test_missing_file_and_directory(tmp_path, read):
    assert_media_error(lambda: read(tmp_path / "nope.mp4"), MediaNotFound, tmp_path / "nope.mp4")
    assert_media_error(lambda: read(tmp_path), MediaNotFound, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    error = assert_media_error(lambda: read_video(path, SAMPLING), EmptyMedia, path)
    assert str(error.with_record("problem_id=7")).startswith("problem_id=7: ")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    assert_media_error(lambda: read_video(path, SAMPLING), CorruptMedia, path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    assert_media_error(lambda: read_video(path, SAMPLING), CorruptMedia, path)


def test_truncated_mp4(videos, tmp_path):
    # PyAV writes the index (moov) last: half a file has no index and cannot be opened.
    path = cut(videos["mp4"], tmp_path / "half.mp4", 0.5)
    assert_media_error(lambda: read_video(path, SAMPLING), CorruptMedia, path)


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_truncated_faststart_mp4(video_dir, encode, tmp_path, fraction):
    # Index first: the file opens and announces 40 frames, but its data stops early (or the index is cut).
    good = encode(video_dir / "faststart.mp4", options={"qp": "0"},
                  container_options={"movflags": "faststart"})
    path = cut(good, tmp_path / "cut.mp4", fraction)
    assert_media_error(lambda: read_video(path, SAMPLING), CorruptMedia, path)


def test_check_video_decodes_the_sampled_frames_that_a_probe_never_reaches(video_dir, encode, tmp_path):
    # `data validate --media open`: a faststart mp4 cut to 80% probes fine (index first, 40 frames
    # announced) but training and evaluation fail on it; decoding the sampled frames catches it.
    good = encode(video_dir / "faststart-check.mp4", options={"qp": "0"},
                  container_options={"movflags": "faststart"})
    assert check_video(good, (16, 32)).total_frames == 40
    path = cut(good, tmp_path / "cut80.mp4", 0.8)  # the index and the first frames are intact
    assert probe_video(path).total_frames == 40
    assert_media_error(lambda: check_video(path, (16, 32)), CorruptMedia, path)
    assert_media_error(lambda: read_video(path, FrameSampling(nframes=16)), CorruptMedia, path)
    short = encode(video_dir / "eight.mp4", frames=8)  # fewer frames than sampled: each decoded once
    assert check_video(short, (16, 32)).total_frames == 8
    assert_media_error(lambda: check_video(encode(video_dir / "single.mp4", frames=1)), TooFewFrames,
                       video_dir / "single.mp4")


def test_truncated_mkv_is_not_padded_with_its_last_frame(videos, tmp_path):
    path = cut(videos["mkv"], tmp_path / "half.mkv", 0.5)
    error = assert_media_error(lambda: read_video(path, SAMPLING), CorruptMedia, path)
    assert "stream ends" in error.reason


def test_audio_only(tmp_path):
    path = tmp_path / "speech.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    error = assert_media_error(lambda: read_video(path, SAMPLING), NoVideoStream, path)
    assert "audio" in error.reason
    assert_media_error(lambda: probe_video(path), NoVideoStream, path)


def test_one_frame_video(video_dir, encode):
    path = encode(video_dir / "one.mp4", frames=1)
    assert probe_video(path).total_frames == 1  # probing is fine; sampling needs 2 frames
    assert_media_error(lambda: read_video(path, FrameSampling(nframes=2)), TooFewFrames, path)
    assert_media_error(lambda: read_video(path, FrameSampling()), TooFewFrames, path)


def test_more_frames_than_the_video_or_range_has(videos):
    path = videos["mp4"]
    assert_media_error(lambda: read_video(path, FrameSampling(nframes=64)), TooFewFrames, path)
    too_short = FrameSampling(nframes=2, start=3.95, end=4.5)  # 3.95 s rounds up to frame 40: past the end
    assert_media_error(lambda: read_video(path, too_short), TooFewFrames, path)


def test_extreme_aspect_ratio_video(video_dir, encode):
    def black(i, width, height):
        return np.zeros((height, width, 3), np.uint8)

    path = encode(video_dir / "sliver.mp4", frames=4, width=2, height=600, draw=black)
    error = assert_media_error(lambda: probe_video(path), BadGeometry, path)
    assert "aspect ratio" in error.reason
    assert_media_error(lambda: read_video(path, SAMPLING), BadGeometry, path)


# --- images -----------------------------------------------------------------------------------------

def test_read_image_composites_alpha_on_white_and_resizes(tmp_path):
    path = tmp_path / "logo.png"
    pixels = np.zeros((50, 80, 4), np.uint8)
    pixels[:, :40] = (255, 0, 0, 255)  # left: opaque red; right: fully transparent black
    Image.fromarray(pixels, "RGBA").save(path)
    image = read_image(path)
    assert image.mode == "RGB" and (image.height, image.width) == smart_resize(50, 80) == (56, 84)
    array = np.asarray(image)
    assert tuple(array[28, 5]) == (255, 0, 0) and tuple(array[28, -5]) == (255, 255, 255)
    small = read_image(path, min_pixels=4 * 32 * 32, max_pixels=4 * 32 * 32, factor=32)
    assert (small.height, small.width) == smart_resize(50, 80, 32, 4 * 32 * 32, 4 * 32 * 32) == (64, 64)


def test_read_image_applies_exif_orientation(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    Image.new("RGB", (280, 140), "gray").save(path, exif=exif)
    assert read_image(path, min_pixels=1, max_pixels=10**6).size == (140, 280)


def test_image_missing_empty(tmp_path):
    assert_media_error(lambda: read_image(tmp_path / "nope.png"), MediaNotFound, tmp_path / "nope.png")
    (tmp_path / "empty.png").touch()
    assert_media_error(lambda: read_image(tmp_path / "empty.png"), EmptyMedia, tmp_path / "empty.png")


def test_unreadable_images(tmp_path):
    text = tmp_path / "text.png"
    text.write_text("not an image")
    assert_media_error(lambda: read_image(text), UnreadableImage, text)
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated = cut(good, tmp_path / "truncated.png", 0.5)
    assert_media_error(lambda: read_image(truncated), UnreadableImage, truncated)


def test_extreme_aspect_ratio_image(tmp_path):
    path = tmp_path / "line.png"
    Image.new("RGB", (300, 1)).save(path)
    error = assert_media_error(lambda: read_image(path), BadGeometry, path)
    assert "aspect ratio" in error.reason


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns, read_image raises
def test_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(path)
    for limit in (25_000, 10_000):  # 40,000 pixels: over the limit (Pillow warns), twice over (Pillow raises)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        assert_media_error(lambda: read_image(path), BadGeometry, path)
