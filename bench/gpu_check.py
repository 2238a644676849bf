"""The GPU check in one command: SFT and T-GRPO steps of a random-init Qwen2.5-VL at the paper's shapes.

    python bench/gpu_check.py --size 7b            # one GPU: the table, and gpu_check.json
    python bench/gpu_check.py --size tiny          # CPU, seconds (the test suite runs this)

The 3B and 7B models are built from the published Qwen2.5-VL configurations written below (no
download: random weights, a tokenizer trained on the spot, the real processor), in bf16 on a GPU,
with sdpa and, where installed, flash-attention 2, gradient checkpointing off and on. Shapes are the
paper's: one video question of 16 frames at 128*28*28 pixels, G = 8 ordered and G~ = 4 shuffled
responses of a fixed length (768 tokens: end tokens are not sampled, so every run generates the same
number of tokens). What is trained: 3B, everything but the vision tower (AdamW, bf16 weights); 7B,
LoRA r=64 on the language model's linear layers (AdamW over 8 bf16 copies of 7B would not fit 80 GB).

Per configuration: seconds per SFT step, and per T-GRPO step split into rollout (ordered + shuffled
generation), reference (log-probs of the frozen model) and update (policy forward, loss, backward,
optimizer step); generated tokens per second; peak GPU memory; and the update's MFU: model FLOPs
over the card's dense bf16 peak. FLOPs are counted the usual way (PaLM, appendix B): 6 N per trained
token for the N language-model parameters (2 N forward, 4 N backward, also for LoRA, where the
backward through the frozen weights costs about as much), plus the attention's 12 * layers * hidden *
context per token (forward and backward of QK^T and AV, context = the sequence length / 2 on average,
causal); the vision tower runs once per prompt, outside the update when frozen, and is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from videor1.algo import policy_loss  # noqa: E402
from videor1.media import FrameSampling  # noqa: E402
from videor1.media.video import read_video  # noqa: E402
from videor1.models.inputs import Prompt, encode  # noqa: E402
from videor1.models.logprobs import GroupedPolicy, sequence_logprobs  # noqa: E402
from videor1.models.tiny import build_processor, build_tokenizer, corpus_from_records  # noqa: E402
from videor1.models.vision import encode_vision  # noqa: E402
from videor1.rollout.base import EncodedPrompts, SamplingConfig  # noqa: E402
from videor1.rollout.hf import HFEngine  # noqa: E402

VIDEO = ROOT / "examples" / "mini" / "videos" / "right_red.mp4"
MROPE = [16, 24, 24]  # Qwen2.5-VL's split of the rotary half between time, height and width
# The published Qwen2.5-VL configurations (config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct).
VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    window_size=112,
    spatial_merge_size=2,
    temporal_patch_size=2,
    tokens_per_second=2,
    fullatt_block_indexes=[7, 15, 23, 31],
)
SIZES = {
    "3b": dict(
        text=dict(
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            vocab_size=151936,
            rope_theta=1e6,
        ),
        vision=VISION,
        tie=True,
        lora=False,
        frames=16,
        pixels=128 * 28 * 28,
        G=8,
        G_shuffled=4,
        length=768,
    ),
    "7b": dict(
        text=dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
            rope_theta=1e6,
        ),
        vision=VISION,
        tie=False,
        lora=True,
        frames=16,
        pixels=128 * 28 * 28,
        G=8,
        G_shuffled=4,
        length=768,
    ),
    "tiny": dict(
        text=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=None,
            rope_theta=1e4,
        ),
        vision=dict(
            VISION, depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1]
        ),
        tie=True,
        lora=True,
        frames=4,
        pixels=4 * 28 * 28,
        G=2,
        G_shuffled=2,
        length=8,
    ),
}
# Dense bf16 peak of the card, FLOP/s (vendor data sheets, without sparsity).
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def build(size: str, device: torch.device, dtype: torch.dtype, attention: str, checkpointing: bool):
    """(model, processor) of `size`: random weights, the tokenizer and processor built here."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    spec = SIZES[size]
    tokenizer = build_tokenizer(corpus_from_records([]), 1024)
    processor = build_processor("qwen2_5_vl", tokenizer, spec["pixels"], spec["pixels"])
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    text = dict(spec["text"])
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": text.pop("rope_theta"),
        "mrope_section": MROPE if size != "tiny" else [2, 3, 3],
    }
    text.update(
        max_position_embeddings=32768,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    vision = dict(spec["vision"], out_hidden_size=text["hidden_size"])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=spec["tie"], **ids)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attention
        )
    model.model.visual.requires_grad_(False)  # frozen vision tower (the paper trains it; memory here)
    if spec["lora"]:
        from peft import LoraConfig, get_peft_model

        targets = r".*\blanguage_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
        model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, target_modules=targets))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def update_flops(model, tokens: int, context: float) -> float:
    """Model FLOPs of one forward + backward over `tokens` trained tokens (see the module docstring)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text = base.config.text_config
    n = sum(p.numel() for name, p in base.named_parameters() if "visual" not in name and "lora_" not in name)
    return 6 * n * tokens + 12 * text.num_hidden_layers * text.hidden_size * context * tokens


def run(size: str, device: torch.device, attention: str, checkpointing: bool, steps: int) -> dict:
    spec = SIZES[size]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, processor = build(size, device, dtype, attention, checkpointing)
    G, G_shuffled, length = spec["G"], spec["G_shuffled"], spec["length"]
    clip = read_video(
        VIDEO, FrameSampling(nframes=spec["frames"], min_pixels=spec["pixels"], max_pixels=spec["pixels"])
    )
    prompt = Prompt("Which way does the square move? Think, then answer.", video=clip)
    batch = encode(processor, [prompt]).to(device)
    engine = HFEngine(model, processor)
    engine.eos_ids = [processor.tokenizer.pad_token_id]  # never sampled (suppressed): fixed-length responses
    engine.suppressed = sorted({*engine.suppressed, processor.tokenizer.pad_token_id, *_end_ids(processor)})
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=length)
    policy = GroupedPolicy(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    reference = model.disable_adapter if hasattr(model, "disable_adapter") else contextlib.nullcontext
    times = {"sft": [], "rollout": [], "reference": [], "update": [], "tokens": []}
    for step in range(steps + 1):  # the first is a warm-up, not counted
        started = _sync(device)
        with torch.no_grad():
            vision = encode_vision(model, batch)
        ordered = engine.generate([prompt], G, sampling, seed=step, encoded=EncodedPrompts(batch, vision))
        engine.generate(
            [prompt], G_shuffled, sampling, seed=10_000 + step, encoded=EncodedPrompts(batch, vision)
        )
        rolled = _sync(device)
        if int(ordered.mask.sum()) != G * length:
            raise RuntimeError(
                f"responses of {ordered.lengths.tolist()} tokens, not {length}: the check "
                "compares fixed-length runs"
            )
        with torch.no_grad(), reference():
            ref = sequence_logprobs(model, batch, ordered.ids, ordered.mask, G, 1.0, vision)
        referenced = _sync(device)
        model.train()
        logps = policy(batch, ordered.ids, ordered.mask, G, 1.0, vision)
        advantages = torch.randn(G, device=device)
        out = policy_loss(logps, logps.detach(), advantages, ordered.mask.to(logps.dtype), ref, 0.04)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        updated = _sync(device)
        # SFT: cross-entropy of one target of `length` tokens after the prompt, the same forward and backward
        target = ordered.ids[:1]
        sft_logps = policy(batch, target, torch.ones_like(target), 1, 1.0, vision)
        (-sft_logps.mean()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        finished = _sync(device)
        if step > 0:
            times["rollout"].append(rolled - started)
            times["reference"].append(referenced - rolled)
            times["update"].append(updated - referenced)
            times["sft"].append(finished - updated)
            times["tokens"].append(int(ordered.mask.sum()) + G_shuffled * length)
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    prompt_tokens = batch["input_ids"].shape[1]
    flops = update_flops(model, G * (prompt_tokens + length), prompt_tokens + length / 2)
    peak = next(
        (v for k, v in PEAKS.items() if device.type == "cuda" and k in torch.cuda.get_device_name()), None
    )
    return {
        "size": size,
        "attention": attention,
        "gradient_checkpointing": checkpointing,
        "trained": "LoRA r=64 (language model)" if spec["lora"] else "all but the vision tower",
        "prompt_tokens": prompt_tokens,
        "response_tokens": length,
        "G": G,
        "G_shuffled": G_shuffled,
        "sft_s": mean["sft"],
        "rollout_s": mean["rollout"],
        "reference_s": mean["reference"],
        "update_s": mean["update"],
        "tgrpo_s": mean["rollout"] + mean["reference"] + mean["update"],
        "generated_tokens_per_s": mean["tokens"] / mean["rollout"],
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "update_tflops": flops / 1e12,
        "update_mfu": flops / mean["update"] / peak if peak else None,
    }


def _end_ids(processor) -> list[int]:
    tokenizer = processor.tokenizer
    ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    return [i for i in ids if isinstance(i, int)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="3b")
    parser.add_argument(
        "--steps", type=int, default=2, help="timed steps per configuration (after a warm-up)"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    attentions = ["sdpa"] + (
        ["flash_attention_2"]
        if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
        else []
    )
    rows = []
    for attention in attentions:
        for checkpointing in (False, True):
            try:
                rows.append(run(args.size, device, attention, checkpointing, args.steps))
            except torch.OutOfMemoryError as error:  # say so in the table, go on with the others
                rows.append(
                    {
                        "size": args.size,
                        "attention": attention,
                        "gradient_checkpointing": checkpointing,
                        "error": f"out of memory: {str(error).splitlines()[0]}",
                    }
                )
            if device.type == "cuda":
                torch.cuda.empty_cache()
    card = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "CPU"
    report = {"device": card, "torch": torch.__version__, "rows": rows}
    args.out.write_text(json.dumps(report, indent=2))
    _print(report)
    return rows


def _print(report: dict) -> None:
    columns = [
        ("attention", "{}"),
        ("gradient_checkpointing", "{}"),
        ("sft_s", "{:.2f}"),
        ("rollout_s", "{:.2f}"),
        ("reference_s", "{:.2f}"),
        ("update_s", "{:.2f}"),
        ("generated_tokens_per_s", "{:.0f}"),
        ("peak_memory_gb", "{:.1f}"),
        ("update_mfu", "{:.1%}"),
    ]
    print(f"{report['device']}, torch {report['torch']}")
    print(" | ".join(name for name, _ in columns))
    for row in report["rows"]:
        if "error" in row:
            print(f"{row['attention']} | {row['gradient_checkpointing']} | {row['error']}")
            continue
        print(" | ".join("-" if row.get(name) is None else form.format(row[name]) for name, form in columns))


if __name__ == "__main__":
    main()
