"""The HF engine prefills each prompt once for its n responses (models/prefix.py): the completions and
their log-probs equal those of `generate` prefilling the n copies itself, from the same seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videor1.media import FrameSampling, read_image, read_video
from videor1.models.inputs import Prompt
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.tiny import build_tiny_from_records
from videor1.rollout.base import SamplingConfig
from videor1.rollout.hf import HFEngine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_prefill_once_samples_what_generate_samples(tmp_path, arch):
    path = build_tiny_from_records(tmp_path / arch, [EXAMPLES / "train.json", EXAMPLES / "cot.json"], arch)
    engine = HFEngine(load_model(ModelOptions(path=path, dtype="float32")), load_processor(path))
    factor = 32 if arch == "qwen3_vl" else 28
    low, high = 4 * factor**2, 9 * factor**2
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", FrameSampling(8, min_pixels=low, max_pixels=high,
                                                                            factor=factor))
    image = read_image(EXAMPLES / "images" / "three_circles.png", low, high, factor)
    prompts = [Prompt("Which way does it move?", video=clip), Prompt("How many circles?", image=image)]
    sampling = SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=16)
    for seeds in ({"seed": 3}, {"seeds": [3, 4]}):
        once = engine.generate(prompts, 4, sampling, logprobs=True, **seeds)
        engine.prefill_once = False
        copies = engine.generate(prompts, 4, sampling, logprobs=True, **seeds)
        engine.prefill_once = True
        assert torch.equal(once.ids, copies.ids) and torch.equal(once.mask, copies.mask)
        assert once.mask.sum() > 8  # something was generated
        assert (once.logprobs - copies.logprobs).abs().max().item() < 1e-5
