"""RL with T-GRPO or GRPO on accelerate (DDP, FSDP, DeepSpeed): `videor1 rl --config …`.

A step: for each micro-batch, `collect` (rollouts, rewards, temporal reward, advantages); then mu
times over the micro-batches: policy log-probs, clipped loss with KL to the reference (Eq. 4),
backward; clip the gradient norm, step; the engine then takes the new weights. Every step logs how
far the engine's log-probs are from the training forward's (`videor1.algo.importance`), and can
correct for it. Checkpoints are atomic and resume exactly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace

import torch
from torch import Tensor

from videor1.algo import policy_loss
from videor1.algo.importance import Parity, rollout_parity, truncated_importance_weights
from videor1.data.loading import load_records
from videor1.media.loader import SkipLog
from videor1.models.loading import load_processor, load_reference, reference_context
from videor1.models.logprobs import GroupedPolicy, sequence_logprobs
from videor1.models.vision import encode_vision, has_trainable_vision
from videor1.rollout import make_engine
from videor1.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from videor1.train.config import RLConfig
from videor1.train.data import QuestionSource
from videor1.train.metrics import MetricsWriter
from videor1.train.parallel import Parallel
from videor1.train.rollout_step import RolloutBatch, collect
from videor1.train.run import (
    TrainResult,
    load_policy,
    make_optimizer,
    placement,
    resolve_media_factor,
    start_run,
)

log = logging.getLogger(__name__)


def _temperature(config: RLConfig) -> float:
    return config.sampling.temperature or 1.0


@torch.no_grad()
def reference_logprobs(rollout: RolloutBatch, reference, policy_model, config: RLConfig,
                       shared_vision: bool) -> Tensor:
    """log pi_ref of the sampled completions: a frozen copy, or the LoRA policy with adapters off.
    When no vision weight is ever trained, the rollout's embeddings are the reference's too."""
    c = rollout.completions
    model = reference if reference is not None else policy_model
    context = reference_context(policy_model) if reference is None else contextlib.nullcontext()
    with context:
        vision = rollout.vision if shared_vision else encode_vision(model, rollout.inputs)
        return sequence_logprobs(model, rollout.inputs, c.ids, c.mask, config.algo.num_generations,
                                 _temperature(config), vision, config.model.shared_prefix)


def update(rollouts: list[RolloutBatch], policy, accelerator, optimizer, scheduler, config: RLConfig,
           vision_trainable: bool, parallel: Parallel | None = None) -> dict:
    """mu iterations of the clipped, KL-regularised loss (Eq. 4) over the micro-batches, one
    optimizer step each; losses are normalised over all micro-batches of all processes, so that
    accumulation and N processes x B prompts equal one process x N*B. The first iteration's
    log-probs are pi_old (the policy that sampled), compared with the engine's (`rollout/*` metrics)
    and, with `rollout.importance_cap`, used to reweight the engine's samples."""
    algo, started = config.algo, time.perf_counter()
    rollouts, parity, cap = list(rollouts), [], config.rollout.importance_cap
    parallel = parallel or Parallel(accelerator, "none")
    masks = [r.completions.mask for r in rollouts]
    local = float(sum(m.shape[0] for m in masks) if algo.aggregation == "sequence"
                  else sum(m.sum() for m in masks))
    # over every process, so that N processes x B prompts equal 1 process x N*B; the gradients are
    # averaged over the processes (DDP, FSDP), hence the count per process
    normalizer = parallel.sum([local])[0] / parallel.world
    stats = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
    for iteration in range(algo.num_iterations):
        for i, rollout in enumerate(rollouts):
            last = i == len(rollouts) - 1
            c = rollout.completions
            with contextlib.nullcontext() if last else parallel.no_sync(policy):
                logps = policy(rollout.inputs, c.ids, c.mask, algo.num_generations, _temperature(config),
                               None if vision_trainable else rollout.vision)
                if iteration == 0:  # no step taken yet: pi_old, the policy that sampled, for every iteration
                    rollouts[i] = rollout = replace(rollout, old_logps=logps.detach())
                    if rollout.engine_logps is not None:
                        parity.append(rollout_parity(rollout.engine_logps, rollout.old_logps, c.mask))
                weights = None
                if cap is not None:
                    weights = truncated_importance_weights(rollout.old_logps, rollout.engine_logps, c.mask,
                                                           cap)
                out = policy_loss(logps, rollout.old_logps, rollout.advantages, c.mask.to(logps.dtype),
                                  rollout.ref_logps, algo.beta, algo.clip_eps, algo.clip, algo.aggregation,
                                  normalizer, weights)
                accelerator.backward(out.loss)
            share = 1.0 / (len(rollouts) * algo.num_iterations)
            stats["loss"] += out.loss.item() * len(rollouts) * share
            stats["kl"] += out.kl.item() * share
            stats["clip_fraction"] += out.clip_fraction.item() * share
        grad_norm = parallel.clip_grad_norm(policy, config.optim.max_grad_norm)
        stats["grad_norm"] += grad_norm / algo.num_iterations
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    stats["time/update"] = time.perf_counter() - started
    stats.update(_parity_metrics(parity))
    return {f"train/{k}" if "/" not in k else k: v for k, v in stats.items()}


def _parity_metrics(parity: list[Parity]) -> dict:
    """The step's engine-trainer parity over all its micro-batches' response tokens."""
    tokens = sum(p.tokens for p in parity)
    if tokens == 0:
        return {}
    return {"rollout/logp_diff_mean": sum(p.mean_abs * p.tokens for p in parity) / tokens,
            "rollout/logp_diff_max": max(p.max_abs for p in parity),
            "rollout/kl": sum(p.kl * p.tokens for p in parity) / tokens}


def train(config: RLConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run RL as configured."""
    run = config.run
    processor = load_processor(config.model.path)
    resolve_media_factor(config, processor)  # before start_run saves the config with the run
    accelerator, out_dir = start_run(config)
    parallel = Parallel(accelerator, run.sharding)
    model = parallel.shard(load_policy(config.model, accelerator))
    reference = None
    if config.algo.beta > 0 and config.model.lora is None:
        reference = parallel.shard(load_reference(config.model, placement(accelerator)))
    vision_trainable = has_trainable_vision(model)
    with _only_main_logs(accelerator, "videor1.data.loading"):  # every process parses the same file
        records = load_records(config.data.train_file, media_root=config.data.media_root,
                               allow_outside_media_root=config.data.allow_outside_media_root)
    skips = SkipLog()
    source = QuestionSource(records, config, processor, skips, accelerator.process_index,
                            accelerator.num_processes)
    optimizer, scheduler = make_optimizer(model, config.optim, run.max_steps * config.algo.num_iterations)
    policy, optimizer, scheduler = parallel.prepare(GroupedPolicy(model, config.model.shared_prefix),
                                                    optimizer, scheduler)
    policy.train()  # from_pretrained returns eval mode: checkpointing and LoRA dropout need train mode
    policy_model = accelerator.unwrap_model(policy).model
    engine = make_engine(config.rollout, policy_model, processor)

    start = 0
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        start = load_checkpoint(checkpoint, accelerator, parallel, policy, optimizer)
        log.info("resumed from %s at step %d", checkpoint, start)
    writer = MetricsWriter(out_dir, accelerator, config, start_step=start,
                           enabled=accelerator.is_main_process)
    bar = writer.progress(run.max_steps, start) if progress else contextlib.nullcontext()
    parity_warned = False
    with bar:
        for step in range(start, run.max_steps):
            step_started = time.perf_counter()
            rollouts = []
            for micro in range(run.grad_accum):
                questions = source.questions(step, micro)
                rollouts.append(collect(questions, config, engine, processor, policy_model, step,
                                        accelerator.process_index, micro, parallel))
            if config.algo.beta > 0:
                rollouts = [replace(r, ref_logps=reference_logprobs(r, reference, policy_model, config,
                                                                    shared_vision=not vision_trainable))
                            for r in rollouts]
            metrics = update(rollouts, policy, accelerator, optimizer, scheduler, config, vision_trainable,
                             parallel)
            engine.load_weights(policy_model)  # the next rollouts sample from the updated policy
            metrics.update(_mean_metrics([r.metrics for r in rollouts]))
            metrics.update({"train/lr": scheduler.get_last_lr()[0], "data/epoch": source.epoch(step),
                            "time/step": time.perf_counter() - step_started})
            metrics = _across_processes(metrics, accelerator, {"data/skipped_records": len(skips.errors),
                                                               "data/over_budget": len(source.over_budget)})
            writer.log(step + 1, metrics)
            parity_warned = parity_warned or _warn_parity(metrics, config, accelerator)
            if (step + 1) % run.save_every == 0 or step + 1 == run.max_steps:
                save_checkpoint(out_dir, step + 1, accelerator, policy, processor, config, parallel=parallel,
                                optimizer=optimizer)
    writer.close()
    return TrainResult(out_dir, accelerator.unwrap_model(policy).model)


def _warn_parity(metrics: dict, config: RLConfig, accelerator) -> bool:
    """Warn (main process) when the engine's log-probs are far from the training forward's: the
    engine then samples from another policy than the one trained (wrong inputs, stale weights)."""
    kl = metrics.get("rollout/kl")
    if kl is None or kl <= config.rollout.parity_warn_kl:
        return False
    if accelerator.is_main_process:
        log.warning("rollout engine %r vs training forward: KL %.3g per token (> rollout.parity_warn_kl=%g), "
                    "|log-prob difference| mean %.3g, max %.3g. The engine is not sampling from the policy "
                    "being trained: check its inputs (media, vision tokens) and weights; "
                    "rollout.importance_cap corrects small mismatches. Warned once.", config.rollout.engine,
                    kl, config.rollout.parity_warn_kl, metrics["rollout/logp_diff_mean"],
                    metrics["rollout/logp_diff_max"])
    return True


def _mean_metrics(items: list[dict]) -> dict:
    """Micro-batch metrics merged into one step: times add up, everything else is averaged."""
    keys = {k for item in items for k in item}
    merged = {}
    for key in sorted(keys):
        values = [item[key] for item in items if item.get(key) is not None]
        total = sum(values)
        merged[key] = (total if key.startswith("time/") else total / len(values)) if values else None
    return merged


def _across_processes(metrics: dict, accelerator, sums: dict) -> dict:
    """The step's metrics over the whole batch, not rank 0's share: each metric averaged over the
    processes that have a value for it, `sums` (counts) added up. One collective per step."""
    if accelerator.num_processes == 1:
        return {**metrics, **sums}
    keys, sum_keys = sorted(metrics), sorted(sums)
    rows = [[float(metrics[k]), 1.0] if metrics[k] is not None else [0.0, 0.0] for k in keys]
    rows += [[float(sums[k]), 1.0] for k in sum_keys]
    rows = torch.tensor(rows, dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(rows, reduction="sum")
    total = total.tolist()
    merged = {k: (s / n if n else None) for k, (s, n) in zip(keys, total)}
    merged.update({k: int(s) for k, (s, _) in zip(sum_keys, total[len(keys):])})
    return merged


@contextlib.contextmanager
def _only_main_logs(accelerator, name: str):
    """Silence logger `name` on all but the main process (for work every process repeats)."""
    logger = logging.getLogger(name)
    disabled = logger.disabled
    logger.disabled = disabled or not accelerator.is_main_process
    try:
        yield
    finally:
        logger.disabled = disabled
