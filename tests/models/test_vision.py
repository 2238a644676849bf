"""One vision-tower call per batch, images and videos together (the lockstep rule of sharded training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videor1.media import FrameSampling
from videor1.media.image import read_image
from videor1.media.video import read_video
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor, vision_module
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_images_and_videos_share_one_tower_call_with_the_embeddings_of_separate_calls(arch, tmp_path):
    directory = build_tiny_from_records(tmp_path / arch, [EXAMPLES / "train.json"], arch, "tiny", 0)
    processor = load_processor(directory)
    model = load_model(ModelOptions(path=directory, dtype="float32"))
    factor = 32 if arch == "qwen3_vl" else 28
    sampling = FrameSampling(nframes=4, min_pixels=4 * factor**2, max_pixels=9 * factor**2, factor=factor)
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", sampling)
    image = read_image(EXAMPLES / "images" / "three_circles.png", 4 * factor**2, 9 * factor**2, factor)
    batch = encode(processor, [Prompt("a", video=clip), Prompt("b", image=image), Prompt("c", video=clip)])

    calls = []
    hook = vision_module(model).register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        together = encode_vision(model, batch)
        assert len(calls) == 1  # one collective-bearing call, not one per modality
        separate = {"image": model.get_image_features(batch["pixel_values"], batch["image_grid_thw"]),
                    "video": model.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"])}
    hook.remove()
    for modality in ("image", "video"):
        ours, theirs = together[modality], separate[modality]
        assert len(ours.pooler_output) == len(theirs.pooler_output) == (2 if modality == "video" else 1)
        for a, b in zip(ours.pooler_output, theirs.pooler_output):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # fp32, batched kernels
        if arch == "qwen3_vl":
            for layer_a, layer_b in zip(ours.deepstack_features, theirs.deepstack_features, strict=True):
                for a, b in zip(layer_a, layer_b, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert encode_vision(model, {"input_ids": batch["input_ids"]}) == {}


@pytest.mark.parametrize("arch, factor", [("qwen2_5_vl", 28), ("qwen3_vl", 32)])
def test_media_factor_comes_from_the_checkpoints_processor(arch, factor, tmp_path):
    from videor1.eval.generate import vision_factor as checkpoint_factor
    from videor1.models.loading import vision_factor
    from videor1.train.config import load_config
    from videor1.train.run import resolve_media_factor

    directory = build_tiny_from_records(tmp_path / arch, [EXAMPLES / "train.json"], arch, "tiny", 0)
    processor = load_processor(directory)
    assert vision_factor(processor) == checkpoint_factor(directory) == factor
    config = load_config(None, [f"model.path={directory}", "data.train_file=x.json"])
    resolve_media_factor(config, processor)
    assert config.media.factor == config.media.sampling().factor == factor
    wrong = load_config(None, [f"model.path={directory}", "data.train_file=x.json", "media.factor=14"])
    with pytest.raises(ValueError, match=f"processor needs {factor}"):
        resolve_media_factor(wrong, processor)
