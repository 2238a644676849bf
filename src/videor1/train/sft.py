"""Supervised fine-tuning, the cold start of Video-R1 (paper §3.3): `videor1 sft --config …`.

The model learns to answer a question about an image or a video with the record's chain of thought
and answer (`<think>…</think><answer>…</answer>`, Video-R1-COT-165k). A step: for each micro-batch,
mixed images and videos, token-level cross-entropy on the assistant's tokens, normalised over all
labelled tokens of the optimizer step on all processes (so accumulation and data parallelism equal
one big batch); clip the gradient norm, step. Periodically, on held-out records: the loss, and the
format and accuracy rewards of greedy responses. Data, checkpoints and metrics are the RL stage's,
so a run resumes exactly and the export (`checkpoint-N/hf`) is the RL stage's `model.path`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from videor1.media.loader import MediaConfig, SkipLog
from videor1.models.inputs import Question, encode
from videor1.models.loading import ModelOptions, load_processor, trainable_summary
from videor1.models.vision import MODALITIES, encode_vision
from videor1.rewards import accuracy_rewards, format_reward
from videor1.rollout.base import EncodedPrompts, SamplingConfig
from videor1.rollout.hf import HFEngine
from videor1.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from videor1.train.config import DataConfig, OptimConfig, RunConfig, StageConfig, load_config
from videor1.train.metrics import MetricsWriter
from videor1.train.parallel import Parallel
from videor1.train.run import TrainResult, load_policy, make_optimizer, resolve_media_factor, start_run
from videor1.train.sft_data import IGNORE, ExampleSource, held_out_examples, load_splits, with_targets

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- configuration

class SFTDataConfig(DataConfig):
    train_file: Path = Field(description="SFT records with a chain of thought (Video-R1-COT-165k: `process` "
                                         "and `solution`); .json, .jsonl or a saved datasets directory.")
    media_root: Path | None = Field(default=None, description="Root of the records' media paths, for "
                                    "train_file and eval_file (default: each file's directory).")
    eval_file: Path | None = Field(default=None, description="Held-out CoT records to evaluate on.")
    eval_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="Or hold out this share of "
                                 "train_file (seeded by run.seed, never trained on). 0 and no eval_file: no "
                                 "evaluation.")
    max_target_tokens: int = Field(default=4096, ge=1, description="Token budget of an assistant turn "
                                   "(reasoning, answer, end of turn); a record over it is skipped, never "
                                   "truncated.")
    target: Literal["cot", "answer"] = Field(
        default="cot",
        description="The assistant turn: `process` + `solution` (cot), or `solution` alone (answer: "
        "records without a chain of thought, e.g. dense descriptions for a perception stage).")


class SFTRunConfig(RunConfig):
    output_dir: Path = Field(default=Path("runs/sft"), description="Checkpoints, metrics, resolved config.")
    epochs: float = Field(default=1.0, gt=0.0, description="Passes over the training records (paper: 1), "
                          "used when max_steps is not set; the last step completes its batch.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; set, it replaces epochs.")
    prompts_per_device: int = Field(default=1, ge=1, description="Examples (images and videos mixed) per "
                                    "process per micro-step.")
    save_every: int = Field(default=500, ge=1, description="Checkpoint every this many steps (and at the "
                                                           "end).")


class SFTEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(default=0, ge=0, description="Evaluate on the held-out records every this many steps; "
                       "with a held-out split there is always one evaluation before the first step and one "
                       "after the last (0: only those).")
    samples: int = Field(default=64, ge=1, description="Held-out records evaluated (the split's first ones), "
                         "shared among the processes.")
    batch_size: int = Field(default=8, ge=1, description="Held-out records per forward and generate call.")
    max_new_tokens: int = Field(default=768, ge=1, description="Longest greedy response (paper: 768 tokens).")


class SFTConfig(StageConfig):
    """Every setting of an SFT run; paper values by default (lr 1e-6, 1 epoch, grad clip 5, wd 0.01)."""

    model: ModelOptions
    data: SFTDataConfig
    media: MediaConfig = Field(default_factory=MediaConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: SFTEvalConfig = Field(default_factory=SFTEvalConfig)
    run: SFTRunConfig = Field(default_factory=SFTRunConfig)

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.data.eval_file is not None and self.data.eval_fraction > 0:
            raise ValueError("give data.eval_file or data.eval_fraction, not both")
        if self.eval.every > 0 and not self.has_held_out:
            raise ValueError(f"eval.every={self.eval.every} needs held-out records: set data.eval_file or "
                             "data.eval_fraction (or eval.every=0)")
        return self

    @property
    def has_held_out(self) -> bool:
        return self.data.eval_file is not None or self.data.eval_fraction > 0


def load_sft_config(path: str | Path | None, overrides: list[str] = ()) -> SFTConfig:
    """The SFT config from a YAML recipe plus `key=value` overrides; every error reported at once."""
    return load_config(path, overrides, SFTConfig)


# ---------------------------------------------------------------- loss

def token_cross_entropy(logits: Tensor, labels: Tensor, normalizer: float) -> Tensor:
    """Summed cross-entropy of the labelled tokens, divided by `normalizer`.

    logits: (B, T, V), position t predicting labels[:, t]; labels: (B, T), IGNORE where unlabelled.
    """
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                           reduction="sum") / normalizer


def target_loss(model, batch, normalizer: float) -> Tensor:
    """`token_cross_entropy` of a `with_targets` batch. Targets end every (left-padded) row, so logits
    are computed only for the last span that holds them (not for the prompt and vision tokens)."""
    labels = batch["labels"]
    labelled = (labels != IGNORE).any(dim=0).nonzero()
    span = labels.shape[1] - int(labelled[0])
    # one vision-tower call for the batch's images and videos (lockstep under sharded weights)
    vision = encode_vision(model, batch)
    drop = {"labels", *(pixels for pixels, _ in MODALITIES.values())}
    inputs = {k: v for k, v in batch.items() if k not in drop}
    out = model(**inputs, mm_encoder_outputs=vision, logits_to_keep=span + 1, use_cache=False)
    logits = out.logits[:, :-1]
    return token_cross_entropy(logits, labels[:, -span:], normalizer)


class SupervisedPolicy(nn.Module):
    """The model behind accelerate's wrapper (`.model`, as the checkpoint code expects); the whole
    forward, vision included, runs inside `forward` so that DDP / FSDP see every trained weight."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, normalizer: float) -> Tensor:
        if batch is None:  # every record of this micro-batch was skipped: a zero loss keeps DDP in step
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        return target_loss(self.model, batch, normalizer)


def labelled_tokens(batches: list, accelerator) -> float:
    """Labelled tokens of one optimizer step's micro-batches, over all processes."""
    local = sum(int((b["labels"] != IGNORE).sum()) for b in batches if b is not None)
    return accelerator.reduce(torch.tensor(float(local), device=accelerator.device), reduction="sum").item()


def accumulate_gradients(policy, batches: list, accelerator,
                         parallel: Parallel | None = None) -> tuple[float, float]:
    """Backward of the step's micro-batches (None: all skipped), loss normalised over the step's
    labelled tokens on all processes; gradients synchronised once, after the last. Returns the
    step's loss per labelled token and its labelled tokens, over all processes."""
    tokens = labelled_tokens(batches, accelerator)
    normalizer = max(tokens, 1.0) / accelerator.num_processes  # DDP averages gradients over processes
    total = 0.0
    for i, batch in enumerate(batches):
        no_sync = (parallel or Parallel(accelerator, "none")).no_sync
        with contextlib.nullcontext() if i == len(batches) - 1 else no_sync(policy):
            loss = policy(batch, normalizer)
            accelerator.backward(loss)
        total += loss.item()
    loss = accelerator.reduce(torch.tensor(total, device=accelerator.device), reduction="mean").item()
    return loss, tokens


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, engine: HFEngine, processor, examples: list[Question], config: SFTConfig, accelerator,
             parallel: Parallel | None = None, padding: Question | None = None) -> dict:
    """Held-out loss (per labelled token) and the format and accuracy rewards of greedy responses
    (paper §3.1), over the examples of every process.

    Under sharded weights every process scores as many batches: one with fewer scores `padding` (its
    first example, or the one given) and discards the result."""
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=config.eval.max_new_tokens)
    sums = torch.zeros(6, dtype=torch.float64)  # loss, tokens, format, accuracy, length, examples
    was_training = model.training
    model.eval()
    size = config.eval.batch_size
    chunks = [examples[first:first + size] for first in range(0, len(examples), size)]
    if parallel is not None and parallel.lockstep:
        spare = examples[:1] or ([padding] if padding is not None else [])
        chunks += [None] * (parallel.agree_max(len(chunks)) - len(chunks)) if spare else []
    for chunk in chunks:
        scored = chunk is not None
        chunk = chunk if scored else spare
        records = [q.record for q in chunk]
        prompts = encode(processor, [q.prompt for q in chunk]).to(accelerator.device)
        batch = with_targets(processor, prompts, [r.target for r in records])
        loss = target_loss(model, batch, 1.0).item()
        out = engine.generate([q.prompt for q in chunk], 1, sampling, encoded=EncodedPrompts(prompts))
        if not scored:
            continue
        sums[0] += loss
        sums[1] += int((batch["labels"] != IGNORE).sum())
        sums[2] += sum(format_reward(text) for text in out.texts)
        sums[3] += sum(accuracy_rewards(out.texts, [r.solution for r in records],
                                        [r.problem_type for r in records], [r.options for r in records]))
        sums[4] += out.lengths.sum().item()
        sums[5] += len(chunk)
    model.train(was_training)
    loss, tokens, fmt, accuracy, length, n = accelerator.reduce(sums.to(accelerator.device),
                                                                reduction="sum").tolist()
    if n == 0:
        return {}
    return {"eval/loss": loss / tokens, "eval/format": fmt / n, "eval/accuracy": accuracy / n,
            "eval/length": length / n, "eval/samples": int(n)}


# ---------------------------------------------------------------- training

def total_steps(config: SFTConfig, records: int, world: int) -> int:
    """Optimizer steps of the run: run.max_steps, or enough steps for run.epochs passes."""
    if config.run.max_steps is not None:
        return config.run.max_steps
    per_step = world * config.run.grad_accum * config.run.prompts_per_device
    return max(1, math.ceil(config.run.epochs * records / per_step))


def train(config: SFTConfig, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Run SFT as configured. `stop_after`: end once this step is done (and checkpointed), as a
    preempted job would; `resume=True` continues from the run directory's latest checkpoint."""
    run = config.run
    processor = load_processor(config.model.path)
    resolve_media_factor(config, processor)  # before start_run saves the config with the run
    accelerator, out_dir = start_run(config)
    parallel = Parallel(accelerator, run.sharding)
    model = parallel.shard(load_policy(config.model, accelerator))
    train_set, held_out_set = load_splits(config.data, run.seed)
    skips = SkipLog()
    rank, world = accelerator.process_index, accelerator.num_processes
    source = ExampleSource(train_set, config, processor, skips, rank, world)
    held_out: list[Question] = []
    if held_out_set is not None:
        held_out = held_out_examples(ExampleSource(held_out_set, config, processor, skips, rank, world),
                                     config.eval.samples, rank, world)
    # a process without held-out examples still joins the sharded evaluation's calls, on a training one
    padding = None
    if held_out_set is not None and not held_out and parallel.lockstep:
        padding = source.questions(0, 0)[0]
    steps = total_steps(config, len(train_set.records), world)
    optimizer, scheduler = make_optimizer(model, config.optim, steps)
    policy, optimizer, scheduler = parallel.prepare(SupervisedPolicy(model), optimizer, scheduler)
    policy.train()  # from_pretrained returns eval mode: checkpointing and LoRA dropout need train mode
    model = accelerator.unwrap_model(policy).model
    engine = HFEngine(model, processor)
    if accelerator.is_main_process:
        parts = trainable_summary(model)
        log.info("SFT: %d steps on %d records (%d held out); trainable: %s", steps, len(train_set.records),
                 len(held_out_set.records) if held_out_set else 0,
                 ", ".join(f"{k} {v['trainable']:,}/{v['total']:,}" for k, v in parts.items()))

    start = 0
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        start = load_checkpoint(checkpoint, accelerator, parallel, policy, optimizer)
        log.info("resumed from %s at step %d", checkpoint, start)
    writer = MetricsWriter(out_dir, accelerator, config, start_step=start,
                           enabled=accelerator.is_main_process, stage="sft")
    if start == 0 and held_out_set is not None:
        writer.log(0, evaluate(model, engine, processor, held_out, config, accelerator, parallel, padding))
    bar = writer.progress(steps, start) if progress else contextlib.nullcontext()
    with bar:
        for step in range(start, min(steps, stop_after or steps)):
            started = time.perf_counter()
            batches = []
            for micro in range(run.grad_accum):
                examples = source.questions(step, micro)
                batches.append(with_targets(processor, encode(processor, [q.prompt for q in examples]),
                                            [q.record.target for q in examples]).to(accelerator.device)
                               if examples else None)
            loss, tokens = accumulate_gradients(policy, batches, accelerator, parallel)
            grad_norm = parallel.clip_grad_norm(policy, config.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            metrics = {"train/loss": loss, "train/grad_norm": float(grad_norm),
                       "train/lr": scheduler.get_last_lr()[0], "train/tokens": tokens,
                       "data/skipped_records": len(skips.errors), "data/over_budget": len(source.over_budget),
                       "data/epoch": source.epoch(step), "time/step": time.perf_counter() - started}
            done = step + 1
            due = (config.eval.every and done % config.eval.every == 0) or done == steps
            if held_out_set is not None and due:
                evaluated = time.perf_counter()
                metrics.update(evaluate(model, engine, processor, held_out, config, accelerator, parallel,
                                        padding))
                metrics["time/eval"] = time.perf_counter() - evaluated
            writer.log(done, metrics)
            if done % run.save_every == 0 or done == steps or done == stop_after:
                save_checkpoint(out_dir, done, accelerator, policy, processor, config, parallel=parallel,
                                optimizer=optimizer)
    writer.close()
    return TrainResult(out_dir, model)
