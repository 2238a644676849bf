"""What every training stage does first: the accelerator and run directory, and the policy model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from videor1.models.loading import ModelOptions, load_model, vision_module
from videor1.train.config import OptimConfig
from videor1.train.metrics import trackers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training stage (RL or SFT) returns."""

    output_dir: Path  # checkpoints, metrics.jsonl, config.yaml
    model: nn.Module  # the trained policy (unwrapped), on this process


def start_run(config):
    """(accelerator, output directory) of a stage config with `run` and `save`; the resolved config is
    written next to the checkpoints. The scheduler steps once per optimizer step: by default
    accelerate would step it once per process."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out_dir = Path(config.run.output_dir)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), log_with=trackers(config.run) or None,
                              project_dir=str(out_dir), step_scheduler_with_optimizer=False)
    set_seed(config.run.seed)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir / "config.yaml")
    return accelerator, out_dir


def resolve_media_factor(config, processor) -> None:
    """Set `config.media.factor` from the checkpoint's processor (patch size x merge size): 28 for
    Qwen2/2.5-VL, 32 for Qwen3-VL. A factor set in the recipe that differs is an error, not a guess."""
    from videor1.models.loading import vision_factor

    factor = vision_factor(processor)
    if "factor" in config.media.model_fields_set and config.media.factor != factor:
        raise ValueError(f"media.factor={config.media.factor}, but {config.model.path}'s processor needs "
                         f"{factor} (patch size x merge size): drop media.factor, the checkpoint sets it")
    config.media.factor = factor


def placement(accelerator) -> torch.device | None:
    """Where to load weights: the process's device, or None under DeepSpeed (ZeRO-3 places them)."""
    return None if accelerator.state.deepspeed_plugin is not None else accelerator.device


def load_policy(options: ModelOptions, accelerator):
    """The trainable model, placed for this process; warns about half-precision weights that a plain
    optimizer would update directly (an Adam step at lr 1e-6 is below bf16's spacing for typical
    weights; DeepSpeed keeps fp32 master weights, elsewhere load float32 and use mixed precision)."""
    model = load_model(options, placement(accelerator))
    dtype = next(model.parameters()).dtype
    if dtype in (torch.bfloat16, torch.float16) and accelerator.state.deepspeed_plugin is None:
        log.warning("model.dtype=%s without DeepSpeed: the optimizer updates half-precision weights directly "
                    "and small updates round to zero; prefer model.dtype=float32 with accelerate's "
                    "mixed_precision=bf16",
                    str(dtype).removeprefix("torch."))
    return model


def make_optimizer(model, optim: OptimConfig, steps: int):
    """AdamW over the trainable weights (the vision ones at `vision_lr` when set) and its schedule."""
    from transformers import get_scheduler

    vision = {id(p) for p in vision_module(model).parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": trainable}]
    if optim.vision_lr is not None:
        groups = [{"params": [p for p in trainable if id(p) not in vision]},
                  {"params": [p for p in trainable if id(p) in vision], "lr": optim.vision_lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr,
                                  weight_decay=optim.weight_decay, betas=optim.betas, eps=optim.adam_eps)
    scheduler = get_scheduler(optim.schedule, optimizer, num_warmup_steps=optim.warmup_steps,
                              num_training_steps=steps)
    return optimizer, scheduler
