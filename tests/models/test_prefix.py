"""The shared-prefix forward equals the full forward: per-token log-probs and gradients, on the tiny
Qwen2.5-VL and Qwen3-VL, for image and video prompts of different lengths (left padding) in one batch.

The oracle is the full forward written out here (B*G sequences of prompt + response, each prompt's
vision embeddings repeated G times), independent of videor1.models.prefix. Responses are random
token ids of random lengths (right padding), not generated: the tests do not depend on what an
untrained model says.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from videor1.media import FrameSampling, read_image, read_video
from videor1.models import logprobs, prefix
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import LoraOptions, ModelOptions, load_model, load_processor
from videor1.models.prefix import prefix_logits, shared_prefix_supported, unsupported_reason
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision, repeat_items

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
G, T = 3, 10


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    files = [EXAMPLES / "train.json", EXAMPLES / "cot.json"]
    return {arch: build_tiny_from_records(root / arch, files, arch, "tiny", 0)
            for arch in ("qwen2_5_vl", "qwen3_vl")}


def _batch(processor, arch: str):
    """A long video, an image, a short video: three prompt lengths, so two are left-padded."""
    factor = 32 if arch == "qwen3_vl" else 28
    low, high = 4 * factor**2, 9 * factor**2
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", FrameSampling(8, min_pixels=low, max_pixels=high,
                                                                            factor=factor))
    short = read_video(EXAMPLES / "videos" / "up_green.mp4", FrameSampling(4, min_pixels=low, max_pixels=high,
                                                                           factor=factor))
    image = read_image(EXAMPLES / "images" / "three_circles.png", low, high, factor)
    prompts = [Prompt("Which way does it move?", video=clip), Prompt("How many circles?", image=image),
               Prompt("Which way?", video=short)]
    batch = encode(processor, prompts)
    assert (batch["attention_mask"][:, 0] == 0).sum() == 2  # two prompts are left-padded
    return batch


def _responses(processor, rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random text token ids (rows, T) of random lengths 1..T, padded after their end."""
    generator = torch.Generator().manual_seed(seed)
    vocabulary = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") + 1  # past the special tokens
    ids = torch.randint(vocabulary, len(processor.tokenizer), (rows, T), generator=generator)
    lengths = torch.randint(1, T + 1, (rows,), generator=generator)
    lengths[0] = T
    mask = (torch.arange(T) < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, processor.tokenizer.pad_token_id), mask


def _token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def _full(model, batch, ids, mask, vision) -> torch.Tensor:
    """The oracle: B*G whole sequences, per-token log-probs (B*G, T)."""
    rows = ids.shape[0]
    every = {key: batch[key].repeat_interleave(G, 0)
             for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
    timing = {key: batch[key].repeat_interleave(G, 0) for key in ("image_grid_thw", "video_grid_thw",
                                                                   "second_per_grid_ts") if key in batch}
    out = model(input_ids=torch.cat([every["input_ids"], ids], 1),
                attention_mask=torch.cat([every["attention_mask"], mask], 1),
                mm_token_type_ids=torch.cat([every["mm_token_type_ids"], torch.zeros_like(ids)], 1),
                mm_encoder_outputs=repeat_items(vision, G), use_cache=False, **timing)
    assert out.logits.shape[0] == rows
    return _token_logprobs(out.logits[:, -T - 1:-1], ids)


def _shared(model, batch, ids, mask, vision) -> torch.Tensor:
    return _token_logprobs(prefix_logits(model, batch, ids, mask, G, vision), ids)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_log_probs_equal_the_full_forward(tiny_dirs, arch, monkeypatch):
    processor = load_processor(tiny_dirs[arch])
    model = load_model(ModelOptions(path=tiny_dirs[arch], dtype="float32", attn_implementation="sdpa"))
    original = prefix.prompt_positions
    batch = _batch(processor, arch)
    ids, mask = _responses(processor, 3 * G)
    with torch.no_grad():
        vision = encode_vision(model, batch)
        full, shared = _full(model, batch, ids, mask, vision), _shared(model, batch, ids, mask, vision)
    assert full.shape == shared.shape == (3 * G, T)
    assert ((full - shared) * mask).abs().max().item() < 1e-5
    # the check can fail: the responses' M-RoPE positions one further on move the log-probs far more
    def one_further(*args):
        positions = original(*args).clone()
        positions[..., -1] += 1  # the response pass starts from the last prompt token's position
        return positions

    monkeypatch.setattr(prefix, "prompt_positions", one_further)
    with torch.no_grad():
        assert ((full - _shared(model, batch, ids, mask, vision)) * mask).abs().max().item() > 1e-4


@pytest.mark.parametrize(("arch", "setting"), [
    ("qwen2_5_vl", "full"),  # every weight trains, the vision tower included
    ("qwen3_vl", "full"),
    ("qwen2_5_vl", "frozen-vision-checkpointing"),  # gradient checkpointing drops caches unless told
    ("qwen3_vl", "lora"),
])
def test_gradients_equal_the_full_forward(tiny_dirs, arch, setting):
    processor = load_processor(tiny_dirs[arch])
    options = ModelOptions(path=tiny_dirs[arch], dtype="float32", freeze_vision=setting != "full",
                           gradient_checkpointing=setting.endswith("checkpointing"),
                           lora=LoraOptions(r=4, dropout=0.0) if setting == "lora" else None)
    model = load_model(options)
    model.train()
    batch = _batch(processor, arch)
    ids, mask = _responses(processor, 3 * G, seed=1)
    weights = torch.randn(3 * G, T, generator=torch.Generator().manual_seed(2)) * mask
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}

    def gradients(forward) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        (forward(model, batch, ids, mask, encode_vision(model, batch)) * weights).sum().backward()
        return {name: p.grad.clone() for name, p in trainable.items() if p.grad is not None}

    full, shared = gradients(_full), gradients(_shared)
    assert full.keys() == shared.keys() and len(full) > 0
    if setting == "full":
        assert any("visual" in name for name in full)  # vision's gradient came via the prompt pass
    for name in full:
        scale = full[name].abs().max().item()
        assert (full[name] - shared[name]).abs().max().item() <= 1e-4 * max(scale, 1e-3), name


def test_unsupported_settings_are_named_and_warned_once(tiny_dirs, caplog):
    model = load_model(ModelOptions(path=tiny_dirs["qwen2_5_vl"], dtype="float32"))
    batch = _batch(load_processor(tiny_dirs["qwen2_5_vl"]), "qwen2_5_vl")
    assert unsupported_reason(model, batch) is None
    model.config._attn_implementation = "flex_attention"  # as a checkpoint loaded with it reports
    with caplog.at_level(logging.WARNING, logger="videor1.models.prefix"):
        assert not shared_prefix_supported(model, batch)
        assert not shared_prefix_supported(model, batch)
    warnings = [r.getMessage() for r in caplog.records if "shared-prefix" in r.getMessage()]
    assert len(warnings) == 1 and "flex_attention" in warnings[0]


def test_sequence_logprobs_switch(tiny_dirs, monkeypatch):
    """On by default and equal to off; off never runs the prompt pass."""
    processor = load_processor(tiny_dirs["qwen2_5_vl"])
    model = load_model(ModelOptions(path=tiny_dirs["qwen2_5_vl"], dtype="float32"))
    batch = _batch(processor, "qwen2_5_vl")
    ids, mask = _responses(processor, 3 * G)
    calls = []
    monkeypatch.setattr(logprobs, "prefix_logits", lambda *args: calls.append(1) or prefix_logits(*args))
    with torch.no_grad():
        vision = encode_vision(model, batch)
        on = logprobs.sequence_logprobs(model, batch, ids, mask, G, 0.7, vision)
        assert len(calls) == 1
        off = logprobs.sequence_logprobs(model, batch, ids, mask, G, 0.7, vision, shared_prefix=False)
        assert len(calls) == 1
    assert ((on - off) * mask).abs().max().item() < 1e-5


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_generation_from_a_prefill_once_per_prompt_equals_generation(tiny_dirs, arch):
    """`generate` on the repeated prompts with `prefill`'s cache samples the tokens that `generate` with
    num_return_sequences samples from the same seed, with the same logits."""
    from videor1.models.compat import cache_argument
    from videor1.models.prefix import prefill
    from videor1.models.vision import shallow_copy

    processor = load_processor(tiny_dirs[arch])
    model = load_model(ModelOptions(path=tiny_dirs[arch], dtype="float32")).eval()
    batch = _batch(processor, arch)
    options = {"max_new_tokens": T, "return_dict_in_generate": True, "output_logits": True, "do_sample": True,
               "top_k": 0, "pad_token_id": processor.tokenizer.pad_token_id}
    with torch.no_grad():
        vision = encode_vision(model, batch)
        inputs = {key: value for key, value in batch.items()
                  if key not in ("pixel_values", "pixel_values_videos", "video_metadata")}
        torch.manual_seed(5)
        expected = model.generate(**inputs, mm_encoder_outputs=shallow_copy(vision), num_return_sequences=G,
                                  **options)
        cache, deltas = prefill(model, batch, vision, G)
        assert cache.get_seq_length() == batch["input_ids"].shape[1] - 1 and deltas.shape == (3 * G, 1)
        model.model.rope_deltas = deltas
        repeated = {key: batch[key].repeat_interleave(G, 0)
                    for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
        torch.manual_seed(5)
        got = model.generate(**repeated, **{cache_argument(): cache}, **options)
    assert torch.equal(got.sequences, expected.sequences)
    assert (torch.stack(got.logits, 1) - torch.stack(expected.logits, 1)).abs().max().item() < 1e-5


@pytest.mark.parametrize("room", [0, 1, 5])
def test_the_reserved_cache_layer_equals_repeating_and_concatenating(room):
    """Generation's cache after a prefill (`_ReservedLayer`): each prompt's keys and values repeated n
    times, then every step's appended; in place within the room and past it (the buffer grows)."""
    torch.manual_seed(0)
    keys, values = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    layer = prefix._ReservedLayer(keys, values, copies=3, room=room)
    expected = [keys.repeat_interleave(3, 0), values.repeat_interleave(3, 0)]
    assert torch.equal(layer.keys, expected[0]) and torch.equal(layer.values, expected[1])
    for width in (1, 2, 1):  # past any room of 0, 1 or 5 positions
        new = torch.randn(6, 3, width, 5), torch.randn(6, 3, width, 5)
        expected = [torch.cat([old, step], dim=-2) for old, step in zip(expected, new)]
        got = layer.update(*new)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
        assert layer.get_seq_length() == expected[0].shape[-2]
