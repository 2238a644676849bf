"""Reward shaping of T-GRPO (paper §3.2–3.3): correctness, temporal reward, length bonus.

Pure functions on tensors: no model, no I/O, no global state. Responses of a batch are laid out
flat, group after group: a tensor of shape (B*G,) holds G responses for each of B questions.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

CorrectRule = Literal["paper", "reference"]
Condition = Literal["paper", "strict", "margin"]

# Equality in Eq. 1 must survive float rounding of p = k/G and p~ = j/G~ (e.g. 0.8 * 0.75).
_RATIO_TOLERANCE = 1e-9


def is_correct(accuracy: Tensor, threshold: float = 0.5, rule: CorrectRule = "paper") -> Tensor:
    """Which responses count as correct, from their accuracy rewards (B*G,) -> bool (B*G,).

    Binary rewards (multiple choice, numerical) are correct at 1. Continuous rewards (OCR, free-form,
    regression) are correct when `accuracy >= threshold` (paper §3.2: "a threshold (e.g. 0.5)").
    `rule="reference"` is the released code's rule: `accuracy > 0.1` whatever the threshold.
    """
    if rule == "reference":
        return accuracy > 0.1
    return accuracy >= threshold


def temporal_reward(p_ordered: float, p_shuffled: float, alpha: float = 0.3, ratio: float = 1.0,
                    condition: Condition = "paper", margin: float = 0.0) -> float:
    """Eq. 1: r_t = alpha if p >= ratio * p~ else 0, and the variants of its condition.

    `p_ordered` and `p_shuffled` are the fractions of correct responses with ordered and with
    shuffled frames. `ratio=1.0` is the paper; `ratio=0.8` the reference code's variant.
    `condition` changes Eq. 1's inequality (docs/demo.md, "the temporal-reward variants"):
    - "paper": p >= ratio * p~. A policy that answers from a static cue is as right with shuffled
      frames as with ordered ones (p = p~) and still earns r_t;
    - "strict": p > ratio * p~, which withholds r_t from such a policy;
    - "margin": p >= ratio * p~ + margin, which asks the order to be worth `margin` in accuracy.
    """
    return alpha if _condition_holds(p_ordered, p_shuffled, ratio, condition, margin) else 0.0


def _condition_holds(p: float, p_shuffled: float, ratio: float, condition: Condition, margin: float) -> bool:
    target = ratio * p_shuffled
    if condition == "paper":
        return p >= target - _RATIO_TOLERANCE
    if condition == "strict":
        return p > target + _RATIO_TOLERANCE
    if condition == "margin":
        return p >= target + margin - _RATIO_TOLERANCE
    raise ValueError(f"unknown temporal condition {condition!r}: use 'paper', 'strict' or 'margin'")


def temporal_bonus_certain(p_ordered: float, ratio: float = 1.0, condition: Condition = "paper",
                           margin: float = 0.0) -> bool:
    """Eq. 1 holds whatever the shuffled group does (p~ <= 1), so r_t = alpha is known in advance.

    The condition only gets harder as p~ grows, so it holds for every p~ exactly when it holds at 1."""
    return _condition_holds(p_ordered, 1.0, ratio, condition, margin)


def temporal_bonus_impossible(p_ordered: float, ratio: float = 1.0, condition: Condition = "paper",
                              margin: float = 0.0) -> bool:
    """Eq. 1 fails whatever the shuffled group does (p~ >= 0), so r_t = 0 is known in advance (the
    margin condition with p < margin; never for the paper's condition)."""
    return not _condition_holds(p_ordered, 0.0, ratio, condition, margin)


def order_reliance(ordered_logps: Tensor, shuffled_logps: Tensor, mask: Tensor) -> Tensor:
    """log pi(o_i | ordered frames) - log pi(o_i | shuffled frames) of each sampled response.

    ordered_logps, shuffled_logps: (N, T) per-token log-probs of the same N completions, teacher-forced
    once with the frames in order and once shuffled; mask: (N, T), 1 on completion tokens. Returns (N,):
    how much less likely a response becomes without the order (about 0 for one read from a static cue).
    """
    return ((ordered_logps - shuffled_logps) * mask.to(ordered_logps.dtype)).sum(dim=1)


def response_temporal_bonus(correct: Tensor, reliance: Tensor, alpha: float = 0.3, threshold: float = 0.0,
                            scale: float = 1.0) -> Tensor:
    """The per-response temporal credit: a per-response replacement of Eq. 2's r_t.

    Eq. 2 gives every correct response of a group the same r_t, so it cannot tell a response that used
    the order from one that used a static cue, and group-std normalisation cancels it when the other
    rewards are equal (docs/demo.md). Here response i receives
        alpha * correct_i * clamp((reliance_i - threshold) / scale, 0, 1)
    (reliance from `order_reliance`, in nats; `scale=0`: a step, alpha where reliance_i > threshold),
    which varies within the group, so normalisation keeps it. correct: bool (N,); reliance: (N,).
    Returns (N,).
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    if scale == 0:
        share = (reliance > threshold).to(reliance.dtype)
    else:
        share = ((reliance - threshold) / scale).clamp(0.0, 1.0)
    return alpha * correct.to(reliance.dtype) * share


def temporal_bonus(correct: Tensor, r_t: Tensor, group_size: int) -> Tensor:
    """Eq. 2: the bonus each ordered response receives: r_t of its group if it is correct, else 0.

    correct: bool (B*G,); r_t: (B,) one temporal reward per group (0 for image or GRPO groups).
    Returns (B*G,), to be added to the rewards (paper) or to the advantages (see `group_advantages`).
    """
    return correct.to(r_t.dtype) * r_t.repeat_interleave(group_size)


def length_bonus(
    correct: Tensor,
    lengths: Tensor,
    group_size: int,
    omega: float = 0.2,
    l_min: int = 320,
    l_max: int = 512,
    min_correct: int = 1,
) -> Tensor:
    """Eq. 5: omega for each correct response whose length (tokens) lies in [l_min, l_max].

    correct: bool (B*G,); lengths: (B*G,) completion lengths in tokens. Returns float (B*G,).
    `min_correct=2` is the reference code's variant: the bonus is given only in groups where more
    than one response is correct.
    """
    in_range = (lengths >= l_min) & (lengths <= l_max)
    correct_per_group = correct.view(-1, group_size).sum(dim=1, keepdim=True)
    group_ok = (correct_per_group >= min_correct).expand(-1, group_size).reshape(-1)
    return omega * (correct & in_range & group_ok).to(torch.get_default_dtype())
