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
from videor1.rollout.hf import _RowStreams, inverse_transform

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


def test_the_sampler_draws_the_warped_distribution_and_nothing_outside_it():
    """Oracle: transformers' warpers in transformers' order give the distribution; 40,000 rows of one
    distribution, drawn through the engine's last logits processor, hit each token as often as it says
    (within 5 standard errors) and never a token of probability 0 (cut by top-k / top-p, suppressed)."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    rows, vocab = 40_000, 60
    logits = torch.randn(1, vocab, generator=torch.Generator().manual_seed(0)) * 2
    logits[0, 7] = float("-inf")  # a suppressed token
    expected = logits
    for warper in (TemperatureLogitsWarper(SAMPLING.temperature), TopKLogitsWarper(SAMPLING.top_k),
                   TopPLogitsWarper(SAMPLING.top_p)):
        expected = warper(None, expected)
    expected = torch.softmax(expected, dim=-1)[0].double()
    assert 0 < int((expected > 0).sum()) < 40  # top-p cut below top-k's 40
    sampler = _RowStreams(SAMPLING, [torch.Generator().manual_seed(1)], None)
    scores = sampler(None, logits.expand(rows, vocab).clone())
    tokens = scores.argmax(dim=-1)
    assert torch.equal((scores == 0).sum(dim=-1), torch.ones(rows, dtype=torch.long))  # one-hot rows
    counts = torch.bincount(tokens, minlength=vocab).double() / rows
    assert (counts[expected == 0] == 0).all()
    error = (expected * (1 - expected) / rows).sqrt()
    assert ((counts - expected).abs() <= 5 * error + 1e-12).all()


def test_the_sampler_never_draws_a_suppressed_token():
    """The engine's vision tokens are suppressed inside the sampler (not by a second processor)."""
    logits = torch.zeros(1000, 8)
    logits[:, 3] = 50.0  # all the probability, were it not suppressed
    sampler = _RowStreams(SAMPLING, [torch.Generator().manual_seed(0)], None, suppressed=[3, 5])
    tokens = sampler(None, logits).argmax(dim=-1)
    assert not torch.isin(tokens, torch.tensor([3, 5])).any() and len(tokens.unique()) > 2


def test_inverse_transform_never_draws_a_zero_probability_token_at_the_edges():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    for u in (0.0, 0.25, 0.5 - 1e-12, 0.5, 1.0 - 1e-16, 1.0):  # u = 1.0: u * total rounded to the total
        tokens = inverse_transform(probs, torch.full((2, 1), u, dtype=torch.float64))
        assert probs.gather(1, tokens).gt(0).all(), u


def test_a_seeded_call_is_reproducible_and_leaves_the_global_stream_alone(engine, prompts):
    state = torch.random.get_rng_state()
    out = engine.generate(prompts, 3, SAMPLING, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is left as it was
    assert torch.equal(engine.generate(prompts, 3, SAMPLING, seed=3).ids, out.ids)
    assert not torch.equal(engine.generate(prompts, 3, SAMPLING, seed=4).ids, out.ids)
    assert out.lengths.sum() > 9 and len(set(out.texts)) > 1  # sampled, and the samples differ
    # every first token lies in the support of the warped distribution of the prompt's next token
    batch = encode(engine.processor, prompts)
    with torch.no_grad():
        logits = engine.model(**{k: v for k, v in batch.items() if k != "video_metadata"}).logits[:, -1]
    logits[:, engine.suppressed] = float("-inf")
    first = out.ids[:, 0].view(len(prompts), 3)
    for warper in _RowStreams(SAMPLING, [], None).warpers:
        logits = warper(None, logits)
    assert torch.isfinite(logits.gather(1, first)).all()


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
