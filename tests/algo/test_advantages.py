"""Advantages (Eq. 3), bonus placement, and the exact shuffled-group skip rule."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videor1.algo import (
    bonus_is_immaterial,
    group_advantages,
    is_correct,
    resolve_temporal_reward,
    shuffled_group_needed,
    temporal_bonus,
    temporal_reward,
)
from videor1.algo.advantages import IMMATERIAL_ATOL


def test_group_advantages_hand_computed():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    advantages = group_advantages(rewards, group_size=4, eps=0.0)
    # group 1: mean 0.5, unbiased std sqrt(1/3) -> +-0.5 * sqrt(3); group 2: all equal -> 0
    half_root3 = 0.5 * math.sqrt(3)
    expected = [half_root3, -half_root3, -half_root3, half_root3, 0.0, 0.0, 0.0, 0.0]
    assert advantages.tolist() == pytest.approx(expected, abs=1e-6)


def test_batch_and_none_scales():
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])
    centred = [0.5, -0.5, 1.0, -1.0]
    assert group_advantages(rewards, 2, scale="none").tolist() == pytest.approx(centred)
    batch_std = float(torch.tensor([1.0, 0.0, 3.0, 1.0]).std())  # 1.2583
    expected = [c / (batch_std + 1e-4) for c in centred]
    assert group_advantages(rewards, 2, scale="batch").tolist() == pytest.approx(expected, abs=1e-6)


def test_group_size_one_is_an_error():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.ones(4), group_size=1)


def test_group_std_cancels_the_paper_bonus_when_other_rewards_are_equal():
    """SPEC §2: r_t on every correct response is a constant shift of an affine reward: no effect."""
    accuracy = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    rewards = accuracy + 1.0  # format reward 1 for all
    correct = is_correct(accuracy)
    bonus = temporal_bonus(correct, torch.tensor([0.3]), group_size=8)
    paper = group_advantages(rewards, 8, bonus=bonus, placement="reward", eps=0.0)
    grpo = group_advantages(rewards, 8, eps=0.0)
    assert torch.allclose(paper, grpo, atol=1e-6)
    assert bonus_is_immaterial(rewards, correct, alpha=0.3)
    # placed on the advantage, the same bonus does change them: by exactly the bonus
    on_advantage = group_advantages(rewards, 8, bonus=bonus, placement="advantage", eps=0.0)
    assert torch.allclose(on_advantage - grpo, bonus, atol=1e-6)
    assert not bonus_is_immaterial(rewards, correct, alpha=0.3, placement="advantage")
    # with unequal format rewards the paper bonus matters too
    uneven = rewards - torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert not bonus_is_immaterial(uneven, correct, alpha=0.3)


groups = st.integers(min_value=2, max_value=8).flatmap(
    lambda g: st.tuples(
        st.lists(st.sampled_from([0.0, 0.2, 0.45, 0.5, 0.7, 1.0]), min_size=g, max_size=g),  # accuracy
        st.lists(st.sampled_from([0.0, 1.0]), min_size=g, max_size=g),  # format
        st.lists(st.sampled_from([0.0, 0.2]), min_size=g, max_size=g),  # length bonus
    )
)


@settings(max_examples=600, deadline=None)
@given(
    group=groups,
    shuffled_size=st.integers(min_value=1, max_value=8),
    alpha=st.sampled_from([0.3, 0.5, 1.0]),
    ratio=st.sampled_from([1.0, 0.8]),
    scale=st.sampled_from(["group", "batch", "none"]),
    placement=st.sampled_from(["reward", "advantage"]),
    equal_format=st.booleans(),
)
def test_skip_is_exact(group, shuffled_size, alpha, ratio, scale, placement, equal_format):
    """Skipping never happens when the shuffled group's result could change r_t, and when it
    happens every possible shuffled result gives the same r_t (hence bit-identical updates)."""
    accuracy, fmt, length = (torch.tensor(x) for x in group)
    if equal_format:
        fmt = torch.ones_like(fmt)  # the case where the paper's bonus cancels
    rewards = accuracy + fmt + length
    correct = is_correct(accuracy)
    kwargs = dict(alpha=alpha, ratio=ratio, scale=scale, placement=placement)
    outcomes = {
        resolve_temporal_reward(rewards, correct, j / shuffled_size, **kwargs) for j in range(shuffled_size + 1)
    }
    needed = shuffled_group_needed(rewards, correct, **kwargs)
    if needed:
        assert outcomes == {0.0, alpha}
    else:
        assert outcomes == {resolve_temporal_reward(rewards, correct, None, **kwargs)}
        # and whatever Eq. 1 would have said, the advantages it leads to are the same
        p = float(correct.float().mean())
        for j in range(shuffled_size + 1):
            r_t = torch.tensor([temporal_reward(p, j / shuffled_size, alpha, ratio)])
            paper = group_advantages(rewards, rewards.numel(), scale, temporal_bonus(correct, r_t, rewards.numel()),
                                     placement)
            resolved = torch.tensor([resolve_temporal_reward(rewards, correct, None, **kwargs)])
            ours = group_advantages(rewards, rewards.numel(), scale, temporal_bonus(correct, resolved,
                                    rewards.numel()), placement)
            assert torch.allclose(paper, ours, rtol=0.0, atol=IMMATERIAL_ATOL)


def test_skip_cases_by_hand():
    accuracy = torch.tensor([1.0, 0.0, 0.0, 0.0])
    fmt = torch.tensor([1.0, 1.0, 0.0, 1.0])
    rewards, correct = accuracy + fmt, is_correct(accuracy)
    assert shuffled_group_needed(rewards, correct)  # p = 0.25 < 1, and the bonus changes advantages
    nobody = torch.zeros(4, dtype=torch.bool)
    assert not shuffled_group_needed(fmt, nobody)  # p = 0: nobody would receive r_t
    everybody = torch.ones(4, dtype=torch.bool)
    assert not shuffled_group_needed(fmt + 1, everybody, placement="advantage")  # p = 1: certain
    assert resolve_temporal_reward(fmt + 1, everybody, None, placement="advantage") == 0.3
    # the 0.8 variant: p = 0.75 is below 0.8 so p~ = 1 could still refuse; p = 7/8 cannot be refused
    three = torch.tensor([True, True, True, False])
    assert shuffled_group_needed(fmt + three, three, ratio=0.8, placement="advantage")
    seven = torch.tensor([True] * 7 + [False])
    assert not shuffled_group_needed(torch.ones(8), seven, ratio=0.8, placement="advantage")
    with pytest.raises(ValueError, match="p_shuffled"):
        resolve_temporal_reward(rewards, correct, None)
