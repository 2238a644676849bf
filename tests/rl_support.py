"""Helpers of the trainer and evaluation tests (an importable module: `conftest` names collide
across test folders): a fast CPU run's overrides, and a brief SFT that makes a tiny model answer
in the right format some of the time, so that rewards vary."""

from __future__ import annotations

import shutil
from pathlib import Path

from videor1.data.synth import synthesize
from videor1.media.loader import MediaConfig
from videor1.models.tiny import build_tiny_from_records
from videor1.train.sft import load_sft_config, train

MEDIA = ["media.nframes=8", "media.video_min_pixels=7056", "media.video_max_pixels=7056",
         "media.image_min_pixels=3136", "media.image_max_pixels=7056"]


def media_config() -> MediaConfig:
    return MediaConfig(nframes=8, video_min_pixels=7056, video_max_pixels=7056, image_min_pixels=3136,
                       image_max_pixels=7056)


def supervise(model_dir: Path, out_dir: Path, cot_file: Path, steps: int = 80, seed: int = 2,
              template: str = "video-r1") -> Path:
    """A brief SFT (videor1.train.sft) on the CoT targets, its export copied to `out_dir`: responses
    sampled at temperature 1 then have the answer format about half of the time and are sometimes
    correct (seed 2: ~0.5 and ~0.1 on rl_train; the seed moves both by 2x at this length)."""
    run = out_dir.with_name(f"{out_dir.name}-sft")
    overrides = {"model.path": model_dir, "model.dtype": "float32", "data.train_file": cot_file,
                 "media.cache_dir": run / "frames", "optim.lr": 3e-3, "optim.schedule": "constant",
                 "optim.max_grad_norm": 1e6, "run.max_steps": steps, "run.prompts_per_device": 8,
                 "run.seed": seed, "run.save_every": steps, "run.output_dir": run, "run.tensorboard": False,
                 "data.template": template}
    train(load_sft_config(None, MEDIA + [f"{k}={v}" for k, v in overrides.items()]), progress=False)
    shutil.copytree(run / f"checkpoint-{steps}" / "hf", out_dir)
    return out_dir


def build_rl_workspace(root: Path) -> Path:
    """Synthetic data, a tiny Qwen2.5-VL (`tiny/`) and its brief SFT (`formatted/`) under `root`: the
    workspace of the trainer tests, in the main environment and in the vLLM one."""
    synthesize(root / "synth", n=48, seed=0)
    data = [root / "synth" / "rl_train.json", root / "synth" / "cot_train.json"]
    build_tiny_from_records(root / "tiny", data, "qwen2_5_vl", "tiny", 0)
    supervise(root / "tiny", root / "formatted", root / "synth" / "cot_train.json")
    return root


def rl_overrides(root: Path, out: Path, model: str = "formatted", **extra) -> list[str]:
    """key=value overrides of a fast CPU run (the same form as on the command line)."""
    base = {"model.path": root / model, "model.dtype": "float32",
            "data.train_file": root / "synth" / "rl_train.json", "data.max_prompt_tokens": 2048,
            "sampling.max_new_tokens": 64, "algo.num_generations": 4, "algo.num_shuffled": 2,
            "reward.length": 0.0, "run.max_steps": 3, "run.prompts_per_device": 4, "run.output_dir": out,
            "run.save_every": 100, "run.tensorboard": False, "optim.lr": 1e-4}
    base.update(extra)
    return MEDIA + [f"{k}={v}" for k, v in base.items()]
