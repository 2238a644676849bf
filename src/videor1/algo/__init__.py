"""The math of T-GRPO (paper §3.2–3.3, Eq. 1–5) as pure functions on tensors.

Nothing here imports a model, does I/O or keeps state; the trainer wires these together:
rewards -> `is_correct` -> `length_bonus` (Eq. 5) -> `resolve_temporal_reward` (Eq. 1) ->
`temporal_bonus` (Eq. 2) -> `group_advantages` (Eq. 3) -> `policy_loss` (Eq. 4). Variants: Eq. 1's
condition (`condition="strict"` / `"margin"`), and the per-response credit that replaces Eq. 1–2
(`order_reliance` -> `response_temporal_bonus`), see docs/demo.md.
"""

from videor1.algo.advantages import (
    bonus_is_immaterial,
    group_advantages,
    resolve_temporal_reward,
    shuffled_group_needed,
)
from videor1.algo.loss import PolicyLoss, kl_k3, policy_loss
from videor1.algo.shaping import (
    is_correct,
    length_bonus,
    order_reliance,
    response_temporal_bonus,
    temporal_bonus,
    temporal_bonus_certain,
    temporal_bonus_impossible,
    temporal_reward,
)

__all__ = [
    "PolicyLoss",
    "bonus_is_immaterial",
    "group_advantages",
    "is_correct",
    "kl_k3",
    "length_bonus",
    "order_reliance",
    "policy_loss",
    "resolve_temporal_reward",
    "response_temporal_bonus",
    "shuffled_group_needed",
    "temporal_bonus",
    "temporal_bonus_certain",
    "temporal_bonus_impossible",
    "temporal_reward",
]
