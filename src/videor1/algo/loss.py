"""The T-GRPO / GRPO policy objective (Eq. 4): clipped importance ratio and k3 KL to a reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["sequence", "token"]


def kl_k3(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref): exp(r) - r - 1 with r = log pi_ref - log pi_theta.

    Unbiased, always >= 0, and low-variance (Schulman, "Approximating KL divergence"). Shapes (N, T).
    """
    log_ratio = ref_logps - logps
    return torch.exp(log_ratio) - log_ratio - 1.0


@dataclass
class PolicyLoss:
    """The loss to minimise (negative Eq. 4) and what to log about it."""

    loss: Tensor  # scalar, carries the gradient
    kl: Tensor  # mean k3 KL per token (detached)
    clip_fraction: Tensor  # fraction of tokens whose ratio was clipped (detached)


def policy_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    ref_logps: Tensor | None = None,
    beta: float = 0.04,
    clip_eps: float = 0.2,
    clip: bool = True,
    aggregation: Aggregation = "sequence",
    normalizer: float | None = None,
    weights: Tensor | None = None,
) -> PolicyLoss:
    """Negative of Eq. 4 for a batch of completions.

    logps, old_logps, ref_logps: (N, T) per-token log-probs of the sampled completions under the
    current, the sampling (old) and the frozen reference policy; advantages: (N,); mask: (N, T),
    1 on completion tokens. With one update per batch (mu = 1) `old_logps` is `logps.detach()` and the
    ratio is 1 in value but carries the policy gradient. `clip=False` is the reference code's
    variant (no ratio clipping).

    aggregation="sequence" is Eq. 4: mean over tokens of each response, then mean over responses.
    aggregation="token" sums over all tokens and divides by the token count (longer responses weigh
    more). `normalizer` replaces the local count (responses or tokens) by a global one, so that
    gradient accumulation over micro-batches equals one large batch. `weights`: (N, T) per-token
    factors of the policy-gradient term, not of the KL term (truncated importance sampling,
    `videor1.algo.importance`); None: 1.
    """
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    advantages = advantages.unsqueeze(1)
    surrogate = ratio * advantages
    if clip:
        clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
        surrogate = torch.minimum(surrogate, clipped)
    per_token = -surrogate if weights is None else -surrogate * weights
    kl = torch.zeros_like(logps)
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs the reference policy's log-probs (ref_logps)")
        # padding positions hold arbitrary values: exp() of them can overflow to inf, and inf * 0 = nan
        kl = kl_k3(logps, torch.where(mask > 0, ref_logps, logps))
        per_token = per_token + beta * kl

    if aggregation == "sequence":
        per_sequence = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        loss = per_sequence.sum() / (normalizer if normalizer is not None else logps.shape[0])
    elif aggregation == "token":
        tokens_in_batch = normalizer if normalizer is not None else mask.sum().clamp(min=1.0)
        loss = (per_token * mask).sum() / tokens_in_batch
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}: use 'sequence' or 'token'")

    tokens = mask.sum().clamp(min=1.0)
    with torch.no_grad():
        # tokens where min() takes the clipped term, i.e. whose gradient clipping removes
        positive = advantages > 0
        was_clipped = ((positive & (ratio > 1.0 + clip_eps))
                       | (~positive & (advantages < 0) & (ratio < 1.0 - clip_eps)))
        was_clipped = was_clipped.to(mask.dtype) if clip else torch.zeros_like(mask)
        return PolicyLoss(
            loss=loss,
            kl=(kl.detach() * mask).sum() / tokens,
            clip_fraction=(was_clipped * mask).sum() / tokens,
        )
