"""The rollout engine against the trainer: how far the sampling policy's log-probs are from the training
forward's, and the truncated importance-sampling correction for the gap.

The engine that samples (transformers `generate`, vLLM) and the training forward compute the same
policy with different kernels, batch shapes or, when something is wrong, different inputs (a video
dropped, vision wrapper tokens lost). Samples then come from pi_engine, not from pi_old, and the
policy gradient is off-policy. Measuring the gap each step catches wrong inputs (verl PR #7802: a
rollout without the video showed a rollout-to-actor KL of 0.09-0.11 against 0.003-0.006);
truncated importance sampling (TIS: Yao et al., "Your Efficient RL Framework Secretly Brings You
Off-Policy RL Training", 2025; verl's and TRL's `*_importance_sampling_cap`) reweights each token's
policy-gradient term by pi_old / pi_engine, capped so that rare tokens cannot blow up the gradient.
See docs/algorithm.md, "The rollout engine against the trainer".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from videor1.algo.loss import kl_k3


@dataclass(frozen=True)
class Parity:
    """Engine vs trainer over the response tokens: |log pi_old - log pi_engine| mean and max, and the
    k3 estimate of KL(pi_engine || pi_old) per token (samples come from the engine)."""

    mean_abs: float
    max_abs: float
    kl: float
    tokens: int


def rollout_parity(engine_logps: Tensor, old_logps: Tensor, mask: Tensor) -> Parity:
    """engine_logps, old_logps: (N, T) log-probs of the sampled tokens; mask: (N, T), 1 on response tokens."""
    keep = mask.bool()
    engine, old = engine_logps[keep].double(), old_logps[keep].double()
    if engine.numel() == 0:
        return Parity(0.0, 0.0, 0.0, 0)
    difference = (old - engine).abs()
    return Parity(difference.mean().item(), difference.max().item(), kl_k3(engine, old).mean().item(),
                  engine.numel())


def truncated_importance_weights(old_logps: Tensor, engine_logps: Tensor, mask: Tensor, cap: float) -> Tensor:
    """Per-token TIS weights min(pi_old / pi_engine, cap): (N, T), no gradient, 1 on padding.

    Multiplies the policy-gradient term of each token (not the KL term): the expectation over the
    engine's samples then estimates the expectation over pi_old's, up to the truncation."""
    if cap <= 0:
        raise ValueError(f"the importance-sampling cap must be > 0, got {cap}")
    log_ratio = torch.where(mask.bool(), old_logps - engine_logps, torch.zeros_like(old_logps))
    return torch.exp(log_ratio.detach()).clamp(max=cap)
