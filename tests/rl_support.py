"""Helpers of the trainer tests (an importable module: `conftest` names collide across test folders)
for a small RL workspace: synthetic data, a tiny Qwen2.5-VL, and a copy of
it briefly supervised on the synthetic chains of thought, so that its responses have the right
format and are sometimes correct (rewards vary, so advantages and the temporal branch do work)."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from videor1.data import CotRecord, load_records
from videor1.data.synth import synthesize
from videor1.media.loader import MediaConfig, load_media
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.tiny import build_tiny_from_records
from videor1.prompts import build_question

MEDIA = ["media.nframes=8", "media.video_min_pixels=7056", "media.video_max_pixels=7056",
         "media.image_min_pixels=3136", "media.image_max_pixels=7056"]


def media_config() -> MediaConfig:
    return MediaConfig(nframes=8, video_min_pixels=7056, video_max_pixels=7056, image_min_pixels=3136,
                       image_max_pixels=7056)


def supervise(model_dir: Path, out_dir: Path, cot_file: Path, steps: int = 80, seed: int = 0,
              template: str = "video-r1") -> Path:
    """A few teacher-forced steps on the CoT targets (labels on the target tokens only)."""
    torch.manual_seed(seed)
    processor = load_processor(model_dir)
    model = load_model(ModelOptions(path=model_dir, dtype="float32"))
    loaded = load_records(cot_file, kind=CotRecord)
    examples = []
    for record in loaded.records:
        media = load_media(record, loaded.media_root, media_config())
        prompt = Prompt(build_question(record, template), **({"video": media} if record.data_type == "video" else {"image": media}))
        examples.append((prompt, record.target))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        chosen = rng.sample(examples, 8)
        batch = encode(processor, [p for p, _ in chosen], [t for _, t in chosen])
        labels = torch.full_like(batch["input_ids"], -100)
        for row, (_, target) in enumerate(chosen):
            n = len(processor.tokenizer(target + processor.tokenizer.eos_token, add_special_tokens=False)["input_ids"])
            labels[row, -n:] = batch["input_ids"][row, -n:]
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def rl_overrides(root: Path, out: Path, model: str = "formatted", **extra) -> list[str]:
    """key=value overrides of a fast CPU run (the same form as on the command line)."""
    base = {"model.path": root / model, "model.dtype": "float32", "data.train_file": root / "synth" / "rl_train.json",
            "data.max_prompt_tokens": 2048, "sampling.max_new_tokens": 64, "algo.num_generations": 4,
            "algo.num_shuffled": 2, "algo.length_reward": False, "run.max_steps": 3, "run.prompts_per_device": 4,
            "run.output_dir": out, "run.save_every": 100, "run.tensorboard": False, "optim.lr": 1e-4}
    base.update(extra)
    return MEDIA + [f"{k}={v}" for k, v in base.items()]
