"""Bad media is reported per record, with its kind, id and path, by `data validate` and the loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from factories import image_record, video_record
from typer.testing import CliRunner

from videor1.cli import app
from videor1.data import Record
from videor1.media import (
    BadGeometry,
    CorruptMedia,
    EmptyMedia,
    MediaNotFound,
    TooFewFrames,
    UnreadableImage,
)
from videor1.media.loader import MediaConfig, load_media

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"


def _one_frame_video(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=2)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8),
                                                               format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture
def bad_media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    good = (EXAMPLES / "videos" / "right_red.mp4").read_bytes()
    (root / "good.mp4").write_bytes(good)
    (root / "empty.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (root / "text.mp4").write_text("this is not a video\n")
    _one_frame_video(root / "one_frame.mp4")
    (root / "text.png").write_text("not an image")
    shutil.copy(EXAMPLES / "images" / "three_circles.png", root / "good.png")
    from PIL import Image

    Image.new("RGB", (600, 2)).save(root / "sliver.png")
    return root


CASES = [  # (file, data type, error type)
    ("missing.mp4", "video", MediaNotFound),
    ("empty.mp4", "video", EmptyMedia),
    ("truncated.mp4", "video", CorruptMedia),
    ("text.mp4", "video", CorruptMedia),
    ("one_frame.mp4", "video", TooFewFrames),
    ("text.png", "image", UnreadableImage),
    ("sliver.png", "image", BadGeometry),
]


@pytest.mark.parametrize(("name", "data_type", "error_type"), CASES)
def test_loader_raises_the_kind_with_record_and_path(bad_media: Path, name, data_type, error_type):
    factory = video_record if data_type == "video" else image_record
    record = Record.model_validate(factory(77, path=name))
    config = MediaConfig(nframes=4, video_min_pixels=4 * 784, video_max_pixels=16 * 784)
    with pytest.raises(error_type) as caught:
        load_media(record, bad_media, config)
    assert str(caught.value).startswith(f"problem_id=77: {bad_media / name}")


def test_good_media_loads(bad_media: Path):
    config = MediaConfig(nframes=4, video_min_pixels=4 * 784, video_max_pixels=16 * 784)
    clip = load_media(Record.model_validate(video_record(1, path="good.mp4")), bad_media, config)
    assert clip.frames.shape[0] == 4
    image = load_media(Record.model_validate(image_record(2, path="good.png")), bad_media, config)
    assert image.size[0] % 28 == 0


def test_validate_opens_media_and_reports_each_kind(bad_media: Path, tmp_path: Path):
    rows = [video_record(i, path=name) if kind == "video" else image_record(i, path=name)
            for i, (name, kind, _) in enumerate(CASES)]
    rows += [video_record(100, path="good.mp4"), image_record(101, path="good.png")]
    (bad_media / "records.json").write_text(json.dumps(rows))
    report = tmp_path / "bad.jsonl"
    result = CliRunner().invoke(app, ["data", "validate", str(bad_media / "records.json"), "--report",
                                      str(report)])
    assert result.exit_code == 1 and "7 of 9 records are bad" in result.output
    reasons = {row["problem_id"]: row["reasons"][0] for row in map(json.loads,
                                                                   report.read_text().splitlines())}
    for i, (name, _, error_type) in enumerate(CASES):
        assert name in reasons[i]
        if error_type not in (MediaNotFound, EmptyMedia):  # those two are found before opening
            assert error_type.__name__ in reasons[i]
    only_exists = CliRunner().invoke(app, ["data", "validate", str(bad_media / "records.json"), "--media",
                                           "exists", "--report", str(report)])
    assert "2 of 9 records are bad" in only_exists.output  # missing and empty


def test_media_config_checks_itself():
    with pytest.raises(ValueError, match="min_pixels"):
        MediaConfig(video_min_pixels=10 * 784, video_max_pixels=4 * 784)
    with pytest.raises(ValueError, match="image_min_pixels"):
        MediaConfig(image_min_pixels=10 * 784, image_max_pixels=4 * 784)


def test_bad_records_are_skipped_counted_and_logged_once(bad_media: Path, caplog):
    from videor1.media.loader import SkipLog, load_media_or_skip

    config = MediaConfig(nframes=4, video_min_pixels=4 * 784, video_max_pixels=16 * 784)
    records = [Record.model_validate(video_record(i, path=name)) for i, name in
               enumerate(["good.mp4", "text.mp4", "missing.mp4", "good.mp4", "text.mp4"])]
    skips = SkipLog()
    loaded = [load_media_or_skip(r, bad_media, config, skips) for r in records + records[:2]]
    assert [m is not None for m in loaded] == [True, False, False, True, False, True, False]
    direct = load_media(records[0], bad_media, config)
    assert all(np.array_equal(loaded[i].frames, direct.frames) for i in (0, 3,
                                                                         # the video itself, never another
                                                                         5))
    assert set(skips.errors) == {"problem_id=1", "problem_id=2", "problem_id=4"}
    assert skips.counts() == {"CorruptMedia": 2, "MediaNotFound": 1}
    assert sum("skipping problem_id=1:" in m for m in caplog.messages) == 1  # warned once, not per epoch
