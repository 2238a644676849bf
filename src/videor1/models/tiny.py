"""Tiny Qwen-architecture models built offline: the same classes as the real checkpoints, random
weights, a byte-level BPE tokenizer trained on the fly, and the real transformers processors.

Saved with `save_pretrained`, a tiny model directory loads through the same code as a downloaded
Qwen2.5-VL / Qwen3-VL checkpoint, so tests and the CPU demo exercise the real code paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Arch = Literal["qwen2_5_vl", "qwen3_vl"]

# Qwen's special tokens, in Qwen's order (the ids differ from the real vocabulary, the names do not).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Reasoning tags as single, non-special tokens: kept when decoding with skip_special_tokens.
REASONING_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen-style chat template. Qwen2.5-VL wraps each video in vision start/end; the Qwen3-VL processor
# inserts "<t seconds>" and start/end around every temporal patch itself, so only the pad is written.
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "<|im_start|>system{{ '\\n' }}You are a helpful assistant.<|im_end|>{{ '\\n' }}"
    "{%- endif -%}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' -%}__VIDEO__"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)


def chat_template(arch: Arch) -> str:
    video = "<|video_pad|>" if arch == "qwen3_vl" else "<|vision_start|><|video_pad|><|vision_end|>"
    return _CHAT_TEMPLATE.replace("__VIDEO__", video)


@dataclass(frozen=True)
class TinySize:
    """Dimensions of a tiny model (docs/demo.md: ~1 M parameters learn the synthetic task on 2 cores)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 256
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 128
    vocab: int = 1024


SIZES: dict[str, TinySize] = {
    "tiny": TinySize(),
    "small": TinySize(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768, vision_hidden=128,
                      vision_depth=4, vision_heads=4, vision_intermediate=256, vocab=4096),
}


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on `texts`, with Qwen's special tokens and a chat template.

    Byte-level: any text encodes (no unknown token), only the merges depend on the corpus.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    )
    wrapped.add_tokens(REASONING_TOKENS)
    return wrapped


def build_processor(arch: Arch, tokenizer, min_pixels: int | None = None, max_pixels: int | None = None):
    """The real transformers processor of `arch` around `tokenizer` (pixel budgets set explicitly)."""
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    patch = 16 if arch == "qwen3_vl" else 14
    factor = patch * 2
    size = {"shortest_edge": min_pixels or 4 * factor**2, "longest_edge": max_pixels or 16384 * factor**2}
    image_processor = Qwen2VLImageProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=size)
    if arch == "qwen3_vl":
        video_processor = Qwen3VLVideoProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                                size=size, do_sample_frames=False, cap_pixels_per_frame=True)
        return Qwen3VLProcessor(image_processor, tokenizer, video_processor,
                                chat_template=chat_template(arch))
    video_processor = Qwen2VLVideoProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=size,
                                            cap_pixels_per_frame=True)
    return Qwen2_5_VLProcessor(image_processor, tokenizer, video_processor, chat_template=chat_template(arch))


def tiny_config(arch: Arch, tokenizer, size: TinySize = SIZES["tiny"]):
    """A randomly initialisable config of `arch` whose token ids match `tokenizer`."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in [
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    head_dim = size.hidden // size.heads
    half = head_dim // 2  # M-RoPE splits the rotary half between time, height and width
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text = dict(
        vocab_size=len(tokenizer), hidden_size=size.hidden, intermediate_size=size.intermediate,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096, bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
    )
    vision = dict(depth=size.vision_depth, hidden_size=size.vision_hidden, num_heads=size.vision_heads,
                  intermediate_size=size.vision_intermediate, out_hidden_size=size.hidden,
                  spatial_merge_size=2, temporal_patch_size=2)
    if arch == "qwen3_vl":
        text.update(head_dim=head_dim)
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(patch_size=16, num_position_embeddings=256,
                      deepstack_visual_indexes=[size.vision_depth - 1])
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    vision.update(patch_size=14, window_size=112, fullatt_block_indexes=[size.vision_depth - 1],
                  tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def build_tiny(
    out_dir: str | Path,
    texts: Iterable[str],
    arch: Arch = "qwen2_5_vl",
    size: str = "tiny",
    seed: int = 0,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Path:
    """Build and save a tiny model, its tokenizer and processor to `out_dir` (a checkpoint directory)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    if size not in SIZES:
        raise ValueError(f"unknown tiny size {size!r}: use one of {sorted(SIZES)}")
    tokenizer = build_tokenizer(texts, SIZES[size].vocab)
    processor = build_processor(arch, tokenizer, min_pixels, max_pixels)
    config = tiny_config(arch, tokenizer, SIZES[size])
    torch.manual_seed(seed)
    qwen3 = arch == "qwen3_vl"
    model_class = Qwen3VLForConditionalGeneration if qwen3 else Qwen2_5_VLForConditionalGeneration
    model = model_class(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# Text every prompt or answer may contain besides the records: the chat template's fixed words, Qwen3-VL's
# timestamps, numbers and punctuation (answers are letters, counts and measurements).
_COVERAGE = [
    "system\nYou are a helpful assistant.\nuser\nassistant\n",
    " ".join(f"<{t / 2:.1f} seconds>" for t in range(64)),
    " ".join(str(n) for n in range(1000)),
    " ".join(f"{n / 10:.1f} {n / 100:.2f}" for n in range(100)),
    "0123456789 A B C D E F G H . , ; : ! ? ' \" ( ) [ ] { } - + * / = % $ # @ & _ < >",
]
# The question templates appear in every prompt: weigh them like that many records (up to this cap).
_TEMPLATE_WEIGHT_CAP = 1000


def _split_tags(text: str) -> list[str]:
    # The reasoning tags are added tokens, split off before BPE: train on the pieces between them.
    pattern = "|".join(re.escape(tag) for tag in REASONING_TOKENS)
    return [piece for piece in re.split(pattern, text) if piece]


def corpus_from_records(paths: Iterable[str | Path]) -> list[str]:
    """Texts to train a tiny tokenizer on, so that questions and answers take few tokens.

    Each record's problem, options, solution and process (Video-R1 JSON / JSONL files, or saved datasets),
    every preset template rendered for every problem type (weighted like the records, since each prompt
    repeats them), and digits / punctuation / the chat template's words. No paths: the presets alone.
    """
    from videor1.data import read_raw
    from videor1.prompts import PRESETS
    from videor1.rewards import PROBLEM_TYPES

    texts: list[str] = []
    for path in paths:
        for raw in read_raw(path):
            if not isinstance(raw, dict):
                continue
            options = raw.get("options") if isinstance(raw.get("options"), list) else []
            fields = [raw.get("problem"), *options, raw.get("solution"), raw.get("process")]
            texts.extend(piece for value in fields if isinstance(value, str) for piece in _split_tags(value))
    templates = [
        piece for template in PRESETS.values() for problem_type in PROBLEM_TYPES
        for piece in _split_tags(template.render("", problem_type, ["A. ", "B. "]))
    ]
    weight = max(1, min(len(texts), _TEMPLATE_WEIGHT_CAP))
    return texts + templates * weight + _COVERAGE


def build_tiny_from_records(
    out_dir: str | Path,
    data_files: Iterable[str | Path] = (),
    arch: Arch = "qwen2_5_vl",
    size: str = "tiny",
    seed: int = 0,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Path:
    """`build_tiny` with a tokenizer trained on `corpus_from_records(data_files)`."""
    return build_tiny(out_dir, corpus_from_records(data_files), arch, size, seed, min_pixels, max_pixels)
