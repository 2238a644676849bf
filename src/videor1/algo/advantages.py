"""Advantages of T-GRPO (Eq. 3) and the exact rule for skipping the shuffled group.

A known weakness (docs/algorithm.md): the temporal bonus is the same for every correct response of a group,
and group-std normalisation is scale invariant, so when the other rewards of the group are equal
the bonus leaves the advantages unchanged and T-GRPO reduces to GRPO. Hence the switches:
- `placement="reward"` (paper, Eq. 2 then Eq. 3) or `"advantage"` (added after normalisation,
  which the paper also allows: "r_t could also be added to the advantages directly");
- `scale="group"` (paper), `"batch"` (std over the whole batch) or `"none"` (Dr. GRPO: no std).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from videor1.algo.shaping import Condition, temporal_bonus_certain, temporal_bonus_impossible, temporal_reward

Scale = Literal["group", "batch", "none"]
Placement = Literal["reward", "advantage"]

def group_advantages(
    rewards: Tensor,
    group_size: int,
    scale: Scale = "group",
    bonus: Tensor | None = None,
    placement: Placement = "reward",
    eps: float = 1e-4,
    gather: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Eq. 3: A_i = (R_i - mean(R)) / std(R) over each group of `group_size` responses.

    rewards: (B*G,) r_i (accuracy + format + length bonus); bonus: (B*G,) temporal bonus of Eq. 2 or
    None. The std is the unbiased one with `eps` added, as in the reference code (TRL's GRPO).
    `gather`: with `scale="batch"`, the concatenation of a 1-D tensor over every process that shares
    the batch, in batch order (`train.parallel.Parallel.gather`), so that the batch std is the whole
    batch's; None: this process's rewards are the batch. Returns (B*G,).
    """
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 to compare responses, got {group_size}")
    if bonus is not None and placement == "reward":
        rewards = rewards + bonus
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = _divide(centred, grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        everyone = gather(centred.reshape(-1)) if gather is not None else centred
        centred = _divide(centred, everyone.std() + eps)
    elif scale != "none":
        raise ValueError(f"unknown scale {scale!r}: use 'group', 'batch' or 'none'")
    advantages = centred.reshape(-1)
    if bonus is not None and placement == "advantage":
        advantages = advantages + bonus
    return advantages


def _divide(centred: Tensor, std: Tensor) -> Tensor:
    """centred / std, with 0 where std is 0 (equal rewards carry no signal, even with eps = 0)."""
    return torch.where(std > 0, centred / std.clamp_min(torch.finfo(std.dtype).tiny),
                       torch.zeros_like(centred))


def bonus_is_immaterial(
    rewards: Tensor,
    correct: Tensor,
    alpha: float,
    scale: Scale = "group",
    placement: Placement = "reward",
) -> bool:
    """Whether granting r_t = alpha to this group leaves every advantage of the batch unchanged.

    rewards: (G,) r_i of one ordered group; correct: bool (G,). Decided exactly, from the structure
    of Eq. 3, not by comparing floats:
    - nobody correct: nobody receives the bonus;
    - everybody correct (bonus on the reward): a constant shift, removed by the group mean;
    - `scale="group"`: normalisation is invariant to a positive affine map of the rewards, and
      adding alpha to the correct responses is such a map exactly when all correct responses share
      one reward x, all others share one reward y != x, and (x + alpha - y) / (x - y) > 0.
    Otherwise the bonus changes this group's advantages (and, with `scale="batch"`, the batch std).
    The eps of Eq. 3 makes the invariance approximate: advantages then differ by O(eps) only.
    """
    n_correct = int(correct.sum())
    if alpha == 0.0 or n_correct == 0:
        return True
    if placement == "advantage":
        return False
    if n_correct == correct.numel():
        return True
    if scale != "group":
        return False
    right, wrong = rewards[correct], rewards[~correct]
    if not (bool((right == right[0]).all()) and bool((wrong == wrong[0]).all())):
        return False
    x, y = float(right[0]), float(wrong[0])
    return x != y and (x + alpha - y) / (x - y) > 0


def shuffled_group_needed(
    rewards: Tensor,
    correct: Tensor,
    alpha: float = 0.3,
    ratio: float = 1.0,
    scale: Scale = "group",
    placement: Placement = "reward",
    condition: Condition = "paper",
    margin: float = 0.0,
) -> bool:
    """Whether the shuffled rollouts of this video group can change any advantage (docs/algorithm.md).

    Not needed when r_t is known whatever p~ is: certain (Eq. 1's condition holds even at p~ = 1) or
    impossible (it fails even at p~ = 0: the margin condition with p < margin), or when the bonus is
    immaterial (no correct response, or cancelled by normalisation). Skipping them then gives the same
    r_t as generating them, so the update is bit-identical (see `resolve_temporal_reward`).
    """
    if bonus_is_immaterial(rewards, correct, alpha, scale, placement):
        return False
    p_ordered = float(correct.float().mean())
    return not (temporal_bonus_certain(p_ordered, ratio, condition, margin)
                or temporal_bonus_impossible(p_ordered, ratio, condition, margin))


def resolve_temporal_reward(
    rewards: Tensor,
    correct: Tensor,
    p_shuffled: float | None,
    alpha: float = 0.3,
    ratio: float = 1.0,
    scale: Scale = "group",
    placement: Placement = "reward",
    condition: Condition = "paper",
    margin: float = 0.0,
) -> float:
    """The r_t to use for one ordered video group, with or without its shuffled group.

    rewards: (G,) r_i; correct: bool (G,); p_shuffled: fraction correct with shuffled frames, or None
    when the shuffled group was skipped. An immaterial bonus resolves to 0 whatever p~ is, so that a
    run that skips the shuffled group and one that always generates it take the same update.
    """
    if bonus_is_immaterial(rewards, correct, alpha, scale, placement):
        return 0.0
    p_ordered = float(correct.float().mean())
    if temporal_bonus_certain(p_ordered, ratio, condition, margin):
        return alpha
    if temporal_bonus_impossible(p_ordered, ratio, condition, margin):
        return 0.0
    if p_shuffled is None:
        raise ValueError("the shuffled group can change this group's advantages: p_shuffled is required")
    return temporal_reward(p_ordered, p_shuffled, alpha, ratio, condition, margin)
