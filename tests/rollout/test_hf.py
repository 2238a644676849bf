"""The `hf` engine: its random streams (one per call, or one per prompt), its inputs, and its stop hook."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videor1.media import FrameSampling, read_image, read_video
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision, shallow_copy
from videor1.rollout import EncodedPrompts, HFEngine, SamplingConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
SAMPLING = SamplingConfig(temperature=0.9, top_p=0.95, top_k=40, max_new_tokens=16)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> HFEngine:
    directory = build_tiny_from_records(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl",
                                        [EXAMPLES / "train.json"], "qwen2_5_vl", "tiny", 0)
    return HFEngine(load_model(ModelOptions(path=directory, dtype="float32")), load_processor(directory))


@pytest.fixture(scope="module")
def prompts() -> list[Prompt]:
    def frames(n):
        return FrameSampling(nframes=n, min_pixels=4 * 28**2, max_pixels=9 * 28**2, factor=28)

    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", frames(8))
    image = read_image(EXAMPLES / "images" / "three_circles.png", 4 * 28**2, 9 * 28**2, 28)
    short = read_video(EXAMPLES / "videos" / "up_green.mp4", frames(4))
    return [Prompt("Which way does it move?", video=clip), Prompt("How many circles?", image=image),
            Prompt("Which way?", video=short)]


def test_a_seeded_call_draws_what_transformers_draws_after_manual_seed(engine, prompts):
    """Oracle: `generate(do_sample=True)` itself, after torch.manual_seed, with the vision computed inside."""
    batch = encode(engine.processor, prompts)
    inputs = {k: v for k, v in batch.items() if k != "video_metadata"}
    with torch.random.fork_rng():
        torch.manual_seed(3)
        expected = engine.model.generate(
            **inputs, do_sample=True, temperature=SAMPLING.temperature, top_p=SAMPLING.top_p,
            top_k=SAMPLING.top_k, max_new_tokens=SAMPLING.max_new_tokens, num_return_sequences=3,
            eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id, suppress_tokens=engine.suppressed)
    state = torch.random.get_rng_state()
    out = engine.generate(prompts, 3, SAMPLING, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is left as it was
    expected = expected[:, batch["input_ids"].shape[1]:][:, :out.ids.shape[1]]
    assert torch.equal(out.ids, expected.masked_fill(out.mask == 0, engine.pad_id))
    assert out.lengths.sum() > 9 and len(set(out.texts)) > 1  # sampled, and the samples differ


def test_per_prompt_streams_do_not_depend_on_the_other_prompts_of_the_call(engine, prompts):
    """What the exact skip of shuffled groups needs: prompt b's completions are those of b alone."""
    seeds = [11, 12, 13]
    together = engine.generate(prompts, 2, SAMPLING, seeds=seeds, logprobs=True)
    for b, prompt in enumerate(prompts):
        alone = engine.generate([prompt], 2, SAMPLING, seed=seeds[b], logprobs=True)
        rows, width = slice(2 * b, 2 * b + 2), alone.ids.shape[1]
        assert torch.equal(together.ids[rows, :width], alone.ids)
        assert (together.mask[rows, width:] == 0).all() and together.texts[rows] == alone.texts
        # the same tokens, scored in a batch padded differently: equal up to float rounding
        assert torch.allclose(together.logprobs[rows, :width], alone.logprobs, atol=1e-4)
    swapped = engine.generate(prompts[::-1], 2, SAMPLING, seeds=seeds[::-1])
    assert swapped.texts == together.texts[4:6] + together.texts[2:4] + together.texts[0:2]


def test_precomputed_vision_is_used_instead_of_the_pixels(engine, prompts):
    batch = encode(engine.processor, prompts)
    with torch.no_grad():
        vision = encode_vision(engine.model, batch)
    same = engine.generate(prompts, 2, SAMPLING, seed=5, encoded=EncodedPrompts(batch, vision))
    assert torch.equal(same.ids, engine.generate(prompts, 2, SAMPLING, seed=5).ids)
    zeroed = shallow_copy(vision)
    zeroed["video"].pooler_output = tuple(torch.zeros_like(x) for x in zeroed["video"].pooler_output)
    blind = engine.generate(prompts, 2, SAMPLING, seed=5, encoded=EncodedPrompts(batch, zeroed),
                            logprobs=True)
    reference = engine.generate(prompts, 2, SAMPLING, seed=5, encoded=EncodedPrompts(batch, vision),
                                logprobs=True)
    video_rows = [0, 1, 4, 5]
    assert not torch.equal(blind.logprobs[video_rows], reference.logprobs[video_rows])


def test_the_stop_hook_ends_generation_early(engine, prompts):
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) >= 3

    long = SamplingConfig(temperature=1.0, max_new_tokens=64)
    out = engine.generate(prompts[:1], 1, long, seed=0, stop=stop)
    assert out.ids.shape[1] <= 4 and not out.finished.any()
    with pytest.raises(ValueError, match="not both"):
        engine.generate(prompts[:1], 1, long, seed=0, seeds=[0])
