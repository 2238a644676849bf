"""Records plus media into processor inputs: the sampled fps reaches the model's timing inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videor1.media import FrameSampling, read_image, read_video
from videor1.models.inputs import Prompt, encode, video_metadata
from videor1.models.tiny import build_processor, build_tokenizer
from videor1.prompts import VIDEO_R1

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
VIDEO = EXAMPLES / "videos" / "right_red.mp4"  # 8 frames at 2 fps, 64 x 64
IMAGE = EXAMPLES / "images" / "three_circles.png"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer([VIDEO_R1.body, "Which direction does the square move? How many "
                                           "circles?"] * 5, 400)


def _sampling(arch: str, **kw) -> FrameSampling:
    factor = 32 if arch == "qwen3_vl" else 28
    return FrameSampling(min_pixels=4 * factor**2, max_pixels=9 * factor**2, factor=factor, **kw)


def test_qwen25_second_per_grid_ts_follows_the_sampled_fps(tokenizer):
    processor = build_processor("qwen2_5_vl", tokenizer)
    every_frame = read_video(VIDEO, _sampling("qwen2_5_vl", nframes=8))  # 2 fps sampled
    every_other = read_video(VIDEO, _sampling("qwen2_5_vl", nframes=4))  # 1 fps sampled
    assert (every_frame.sampled_fps, every_other.sampled_fps) == (2.0, 1.0)
    image = read_image(IMAGE, 4 * 28**2, 9 * 28**2)
    prompts = [Prompt("Which way?", video=every_frame), Prompt("How many?", image=image),
               Prompt("Which way?", video=every_other)]
    batch = encode(processor, prompts)
    # temporal patch of 2 frames: seconds per grid step = 2 / sampled fps
    assert batch["second_per_grid_ts"].tolist() == pytest.approx([1.0, 2.0])
    ids, types = batch["input_ids"], batch["mm_token_type_ids"]
    assert torch.equal(types == 2, ids == processor.video_token_id)
    assert torch.equal(types == 1, ids == processor.image_token_id)
    grids = batch["video_grid_thw"].tolist()
    assert [int((types[i] == 2).sum()) for i in (0, 2)] == [t * h * w // 4 for t, h, w in grids]
    assert int((types[1] == 1).sum()) == batch["image_grid_thw"][0].prod().item() // 4
    assert batch["attention_mask"][1, 0] == 0  # left padding for generation


def test_qwen3_timestamps_follow_the_real_frame_times(tokenizer):
    processor = build_processor("qwen3_vl", tokenizer)
    clip = read_video(VIDEO, _sampling("qwen3_vl", nframes=4, start=1.0, end=3.5))
    text = processor.tokenizer.decode(encode(processor, [Prompt("Which way?", video=clip)])["input_ids"][0])
    seconds = [index / clip.info.fps for index in clip.indices]
    for a, b in zip(seconds[0::2], seconds[1::2]):
        assert f"<{(a + b) / 2:.1f} seconds>" in text
    assert video_metadata(clip).sampled_fps == pytest.approx(clip.sampled_fps)
