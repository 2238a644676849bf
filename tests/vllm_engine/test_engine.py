"""The vllm engine against transformers on a tiny Qwen2.5-VL: the same prompt tokens, n seeded samples
per video / image prompt, log-probs equal to the training forward's, and weights that follow the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("vllm", reason="the vLLM engine's tests run in .venv-vllm (scripts/setup_vllm.sh), "
                    "after the main suite, in scripts/test.sh")
pytestmark = pytest.mark.vllm

from videor1.media import FrameSampling  # noqa: E402
from videor1.media.image import read_image  # noqa: E402
from videor1.media.video import read_video  # noqa: E402
from videor1.models.inputs import Prompt, encode  # noqa: E402
from videor1.models.loading import ModelOptions, load_model, load_processor  # noqa: E402
from videor1.models.tiny import build_tiny_from_records  # noqa: E402
from videor1.rollout.base import SamplingConfig  # noqa: E402
from videor1.rollout.vllm import VISION_TOKENS, VLLMEngine  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
TOLERANCE = 5e-3  # float32 on both sides; the kernels differ (vLLM's CPU attention, fused layers)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    directory = build_tiny_from_records(tmp_path_factory.mktemp("vllm") / "tiny", [EXAMPLES / "train.json"],
                                        "qwen2_5_vl", "tiny", 0)
    processor = load_processor(directory)
    policy = load_model(ModelOptions(path=directory, dtype="float32"))
    engine = VLLMEngine(policy, processor)
    # 5 x 5 tokens per temporal patch, 2 patches one second apart (temporal positions 0 and 4): the text
    # after the video starts at position +5 both in vLLM (the largest video position + 1, as Qwen2.5-VL's
    # original code) and in transformers 5.16-5.25 (+ max(h, w) of the merged grid). With fewer tokens per
    # frame than the temporal extent the two disagree (see README, "Training with vLLM").
    sampling = FrameSampling(nframes=4, min_pixels=25 * 28**2, max_pixels=25 * 28**2, factor=28)
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", sampling)
    image = read_image(EXAMPLES / "images" / "three_circles.png", 4 * 28**2, 9 * 28**2, 28)
    prompts = [Prompt("What moves, and where to?", video=clip), Prompt("How many circles?", image=image)]
    return policy, processor, engine, prompts


def teacher_forced(policy, processor, prompts, n, completions, temperature, grad=False):
    """log softmax(logits / T) of each completion token under `policy`, vision tokens excluded as the
    engine excludes them (B*n, T), 0 on padding: the training forward, one sequence at a time, as oracle."""
    suppressed = [processor.tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
    rows = []
    for b, prompt in enumerate(prompts):
        batch = encode(processor, [prompt])
        text = ("input_ids", "attention_mask", "mm_token_type_ids")
        media = {k: v for k, v in batch.items() if k not in text}
        for i in range(n):
            ids, mask = completions.ids[b * n + i], completions.mask[b * n + i]
            length = int(mask.sum())
            full = torch.cat([batch["input_ids"], ids[None, :length]], dim=1)
            types = torch.cat([batch["mm_token_type_ids"], torch.zeros((1, length), dtype=torch.long)], dim=1)
            with torch.set_grad_enabled(grad):
                logits = policy(input_ids=full, attention_mask=torch.ones_like(full), mm_token_type_ids=types,
                                **media).logits[0, -length - 1:-1].float() / temperature
                vision = torch.isin(torch.arange(logits.shape[-1]), torch.tensor(suppressed))
                logits = logits.masked_fill(vision, float("-inf"))
                picked = torch.log_softmax(logits, -1).gather(1, ids[:length, None])[:, 0]
                rows.append(torch.cat([picked, torch.zeros(len(ids) - length)]))
    return torch.stack(rows)


def test_prompt_tokens_are_the_hf_processors(setup):
    policy, processor, engine, prompts = setup
    for prompt in prompts:
        (output,) = engine.llm.generate([engine.request(prompt)], engine.sampling_params(
            SamplingConfig(max_new_tokens=1), 1, None, False), use_tqdm=False)
        assert output.prompt_token_ids == encode(processor, [prompt])["input_ids"][0].tolist()


def test_n_seeded_samples_per_prompt_whatever_else_is_in_the_call(setup):
    policy, processor, engine, prompts = setup
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12)
    both = engine.generate(prompts, 4, sampling, seeds=[11, 12])
    assert both.ids.shape[0] == 8 and both.mask.shape == both.ids.shape and len(both.texts) == 8
    assert len({tuple(row.tolist()) for row in both.ids}) == 8  # n different samples, no shared streams
    alone = engine.generate(prompts[1:], 4, sampling, seeds=[12])
    assert torch.equal(alone.ids, both.ids[4:]) and torch.equal(alone.mask, both.mask[4:])
    again = engine.generate(prompts, 4, sampling, seed=3)
    assert torch.equal(again.ids, engine.generate(prompts, 4, sampling, seed=3).ids)  # one seed: repeatable
    ends = set(engine.eos_ids)
    for row, mask, finished in zip(both.ids, both.mask, both.finished):
        tokens = row[mask == 1].tolist()
        assert finished == (tokens[-1] in ends) and not ends & set(tokens[:-1])
        assert (row[mask == 0] == processor.tokenizer.pad_token_id).all()
    vision = {processor.tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    assert not vision & set(both.ids[both.mask == 1].tolist())


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_equal_the_training_forward(setup, temperature):
    policy, processor, engine, prompts = setup
    completions = engine.generate(prompts, 3, SamplingConfig(temperature=temperature, max_new_tokens=24),
                                  seeds=[5, 6], logprobs=True)
    oracle = teacher_forced(policy, processor, prompts, 3, completions, temperature)
    diff = (completions.logprobs - oracle).abs()[completions.mask == 1]
    print(f"T={temperature}: vLLM vs transformers log-probs over {diff.numel()} tokens: "
          f"mean {diff.mean():.2e}, max {diff.max():.2e}")
    assert diff.max() < TOLERANCE
    assert (completions.logprobs[completions.mask == 0] == 0).all()


def test_weight_push_makes_the_engine_sample_from_the_updated_policy(setup):
    policy, processor, engine, prompts = setup
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=16)
    before = engine.generate(prompts, 2, sampling, seeds=[1, 2], logprobs=True)
    saved = {k: v.clone() for k, v in policy.state_dict().items()}
    try:
        # one optimizer step that makes the sampled responses more likely (every weight moves: the vision
        # tower, the layers and the tied embeddings / lm_head)
        optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
        (-teacher_forced(policy, processor, prompts, 2, before, 1.0, grad=True).sum()).backward()
        optimizer.step()
        moved = teacher_forced(policy, processor, prompts, 2, before, 1.0) - before.logprobs
        moved = moved[before.mask == 1]
        assert moved.abs().mean() > 20 * TOLERANCE  # the step changed the policy far beyond the tolerance

        stale = engine.generate(prompts, 2, sampling, seeds=[1, 2], logprobs=True)
        assert torch.equal(stale.ids, before.ids)  # the engine does not follow the policy until pushed
        engine.load_weights(policy)
        after = engine.generate(prompts, 2, sampling, seeds=[1, 2], logprobs=True)
        diff = (after.logprobs - teacher_forced(policy, processor, prompts, 2, after, 1.0)).abs()
        diff = diff[after.mask == 1]
        print(f"after a weight push: mean {diff.mean():.2e}, max {diff.max():.2e} (the step moved them by "
              f"{moved.abs().mean():.2f} on average)")
        assert diff.max() < TOLERANCE
    finally:
        policy.load_state_dict(saved)
        engine.load_weights(policy)
