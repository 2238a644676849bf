"""Reward shaping of T-GRPO (paper §3.2–3.3): correctness, temporal reward, length bonus.

Pure functions on tensors: no model, no I/O, no global state. Responses of a batch are laid out
flat, group after group: a tensor of shape (B*G,) holds G responses for each of B questions.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

CorrectRule = Literal["paper", "reference"]

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


def temporal_reward(p_ordered: float, p_shuffled: float, alpha: float = 0.3, ratio: float = 1.0) -> float:
    """Eq. 1: r_t = alpha if p >= ratio * p~ else 0.

    `p_ordered` and `p_shuffled` are the fractions of correct responses with ordered and with
    shuffled frames. `ratio=1.0` is the paper; `ratio=0.8` the reference code's variant.
    """
    return alpha if p_ordered >= ratio * p_shuffled - _RATIO_TOLERANCE else 0.0


def temporal_bonus_certain(p_ordered: float, ratio: float = 1.0) -> bool:
    """Eq. 1 holds whatever the shuffled group does (p~ <= 1), so r_t = alpha is known in advance."""
    return p_ordered >= ratio - _RATIO_TOLERANCE


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
