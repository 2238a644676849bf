"""Advantages (Eq. 3), bonus placement, and the exact shuffled-group skip rule."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videor1.algo import (
    bonus_is_immaterial,
    group_advantages,
    is_correct,
    order_reliance,
    resolve_temporal_reward,
    response_temporal_bonus,
    shuffled_group_needed,
    temporal_bonus,
    temporal_reward,
)


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
    batch_std = math.sqrt((0.25 + 0.25 + 1 + 1) / 3)  # unbiased std of the centred rewards
    expected = [c / (batch_std + 1e-4) for c in centred]
    assert group_advantages(rewards, 2, scale="batch").tolist() == pytest.approx(expected, abs=1e-6)


def test_group_size_one_is_an_error():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.ones(4), group_size=1)


def test_group_std_cancels_the_paper_bonus_when_other_rewards_are_equal():
    """docs/algorithm.md: r_t on every correct response is a constant shift of an affine reward: no effect."""
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


def _advantages64(rewards: list[float], bonus: list[float], scale: str, placement: str) -> np.ndarray:
    """Eq. 3 for one group with eps = 0, in float64 numpy: an oracle independent of the torch code."""
    r = np.asarray(rewards, dtype=np.float64)
    b = np.asarray(bonus, dtype=np.float64)
    if placement == "reward":
        r = r + b
    centred = r - r.mean()
    if scale == "group":
        std = r.std(ddof=1)  # equal rewards: std 0 up to rounding (e.g. three 0.8s), no signal
        centred = centred / std if std > 1e-12 else np.zeros_like(centred)
    return centred + (b if placement == "advantage" else 0.0)


# rewards on a fine grid (steps of 0.0005) so that near-equal rewards occur, unlike accuracy in {0, 1}
fine_groups = st.integers(min_value=2, max_value=8).flatmap(
    lambda g: st.tuples(
        st.lists(st.integers(0, 3000).map(lambda k: k / 2000), min_size=g, max_size=g),
        st.lists(st.booleans(), min_size=g, max_size=g),
        st.booleans(),
    )
)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(group=fine_groups, alpha=st.sampled_from([0.3, 0.5, 1.0, 2.0]),
       scale=st.sampled_from(["group", "none"]), placement=st.sampled_from(["reward", "advantage"]))
def test_immaterial_exactly_when_the_bonus_cannot_move_an_advantage(group, alpha, scale, placement):
    values, correct, two_valued = group
    if two_valued:  # the case where the paper's bonus cancels: one reward for right, one for wrong
        values = [1.5 if c else 0.5 for c in correct]
    bonus = [alpha if c else 0.0 for c in correct]
    moved = np.abs(_advantages64(values, bonus, scale, placement) - _advantages64(values, [0.0] * len(values),
                                                                              scale, placement)).max()
    immaterial = bonus_is_immaterial(torch.tensor(values), torch.tensor(correct), alpha, scale, placement)
    assert immaterial == (moved < 1e-9), (values, correct, moved)


groups = st.integers(min_value=2, max_value=8).flatmap(
    lambda g: st.tuples(
        st.lists(st.sampled_from([0.0, 0.2, 0.45, 0.5, 0.7, 1.0]), min_size=g, max_size=g),  # accuracy
        st.lists(st.sampled_from([0.0, 1.0]), min_size=g, max_size=g),  # format
        st.lists(st.sampled_from([0.0, 0.2]), min_size=g, max_size=g),  # length bonus
    )
)


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(
    group=groups,
    shuffled_size=st.integers(min_value=1, max_value=8),
    alpha=st.sampled_from([0.3, 0.5, 1.0]),
    ratio=st.sampled_from([1.0, 0.8]),
    scale=st.sampled_from(["group", "batch", "none"]),
    placement=st.sampled_from(["reward", "advantage"]),
    equal_format=st.booleans(),
    condition=st.sampled_from([("paper", 0.0), ("strict", 0.0), ("margin", 0.125), ("margin", 0.3)]),
)
def test_skip_is_exact(group, shuffled_size, alpha, ratio, scale, placement, equal_format, condition):
    """The shuffled group is skipped only when no shuffled result can change r_t's effect; then every
    possible result resolves to one r_t, so skipping gives the same update bit for bit."""
    accuracy, fmt, length = (torch.tensor(x) for x in group)
    if equal_format:
        fmt = torch.ones_like(fmt)  # the case where the paper's bonus cancels
    rewards = accuracy + fmt + length
    correct = is_correct(accuracy)
    condition, margin = condition
    kwargs = dict(alpha=alpha, ratio=ratio, scale=scale, placement=placement, condition=condition,
                  margin=margin)
    outcomes = {
        resolve_temporal_reward(rewards, correct, j / shuffled_size,
                                **kwargs) for j in range(shuffled_size + 1)
    }
    if shuffled_group_needed(rewards, correct, **kwargs):
        assert outcomes == {0.0, alpha}  # the shuffled result decides
    else:
        assert outcomes == {resolve_temporal_reward(rewards, correct, None, **kwargs)}
        # and what Eq. 1 would have granted moves no advantage (beyond the O(eps) of Eq. 3)
        p = float(correct.float().mean())
        resolved = resolve_temporal_reward(rewards, correct, None, **kwargs)
        for j in range(shuffled_size + 1):
            paper = temporal_reward(p, j / shuffled_size, alpha, ratio, condition, margin)
            bonus = [paper if c else 0.0 for c in correct.tolist()]
            ours = [resolved if c else 0.0 for c in correct.tolist()]
            if scale != "batch":
                assert np.allclose(_advantages64(rewards.tolist(), bonus, scale, placement),
                                   _advantages64(rewards.tolist(), ours, scale, placement), atol=1e-9)


def test_batch_scale_couples_groups():
    """With batch std, one group's bonus moves the other groups' advantages: never immaterial then,
    except when nobody or everybody in the group is correct."""
    rewards = torch.tensor([2.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 1.0])
    correct = torch.tensor([True, False, False, False, True, False, False, False])
    bonus = torch.tensor([0.3, 0, 0, 0, 0, 0, 0, 0])
    with_bonus = group_advantages(rewards, 4, scale="batch", bonus=bonus)
    without = group_advantages(rewards, 4, scale="batch")
    assert not torch.allclose(with_bonus[4:], without[4:], atol=1e-3)  # the second group moved
    assert not bonus_is_immaterial(rewards[:4], correct[:4], 0.3, scale="batch")
    everybody = torch.ones(4, dtype=torch.bool)
    shifted = group_advantages(rewards, 4, scale="batch", bonus=torch.tensor([0.3] * 4 + [0.0] * 4))
    assert torch.equal(shifted, without)
    assert bonus_is_immaterial(rewards[:4], everybody, 0.3, scale="batch")


def test_bonus_that_matters_hand_computed():
    """acc [1, 1, 0, 0], format [1, 0, 1, 0]: r = [2, 1, 1, 0]; with r_t = 0.3 on the correct ones
    R = [2.3, 1.3, 1, 0], mean 1.15, unbiased std sqrt(2.69 / 3)."""
    rewards = torch.tensor([2.0, 1.0, 1.0, 0.0])
    bonus = torch.tensor([0.3, 0.3, 0.0, 0.0])
    std = math.sqrt(2.69 / 3)
    expected = [1.15 / std, 0.15 / std, -0.15 / std, -1.15 / std]
    assert group_advantages(rewards, 4, bonus=bonus, eps=0.0).tolist() == pytest.approx(expected, abs=1e-6)
    grpo = 1 / math.sqrt(2 / 3)
    assert group_advantages(rewards, 4, eps=0.0).tolist() == pytest.approx([grpo, 0, 0, -grpo], abs=1e-6)
    assert not bonus_is_immaterial(rewards, bonus > 0, 0.3)


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


def test_strict_and_margin_skip_by_hand():
    """Everybody right: the paper's r_t is certain, the strict one needs p~ (p~ = 1 refuses it); with a
    margin of 0.3, p = 0.25 can never earn r_t, so the shuffled group is not needed."""
    everybody = torch.ones(4, dtype=torch.bool)
    ones = torch.full((4,), 2.0)
    assert not shuffled_group_needed(ones, everybody, placement="advantage")
    assert shuffled_group_needed(ones, everybody, placement="advantage", condition="strict")
    assert resolve_temporal_reward(ones, everybody, 1.0, placement="advantage", condition="strict") == 0.0
    assert resolve_temporal_reward(ones, everybody, 0.75, placement="advantage", condition="strict") == 0.3
    one = torch.tensor([True, False, False, False])
    rewards = torch.tensor([2.0, 1.0, 0.0, 1.0])
    assert shuffled_group_needed(rewards, one, condition="margin", margin=0.2)
    assert not shuffled_group_needed(rewards, one, condition="margin", margin=0.3)
    assert resolve_temporal_reward(rewards, one, None, condition="margin", margin=0.3) == 0.0


def test_per_response_credit_varies_within_a_group_and_survives_normalisation():
    """All eight answers right with the same format: Eq. 2's bonus is cancelled by the group std (every
    advantage 0), while the per-response credit, given to the answers that lose likelihood without the
    order, moves them: those that rely on the order get positive advantages, those read from a static
    cue (reliance about 0) negative ones, in the order of their reliance."""
    rewards = torch.full((8,), 2.0)
    correct = torch.ones(8, dtype=torch.bool)
    group_bonus = temporal_bonus(correct, torch.tensor([0.3]), 8)
    assert torch.equal(group_advantages(rewards, 8, bonus=group_bonus), torch.zeros(8))

    # per-token log-probs of 8 completions of 3 tokens, teacher-forced with ordered and shuffled frames
    ordered = torch.log(torch.tensor([[0.9, 0.8, 0.9]] * 4 + [[0.5, 0.5, 0.5]] * 4))
    shuffled = torch.log(torch.tensor([[0.3, 0.2, 0.9], [0.3, 0.8, 0.9], [0.6, 0.8, 0.9], [0.9, 0.8, 0.9]]
                                      + [[0.5, 0.5, 0.5]] * 4))
    mask = torch.ones(8, 3)
    mask[1, 2] = 0  # padding is ignored
    reliance = order_reliance(ordered, shuffled, mask)
    assert reliance.tolist() == pytest.approx([math.log(3) + math.log(4), math.log(3), math.log(1.5), 0, 0, 0,
                                               0, 0],
                                              abs=1e-6)
    bonus = response_temporal_bonus(correct, reliance, alpha=0.3, threshold=0.0, scale=3.0)
    assert len(set(bonus.tolist())) > 1  # varies within the group
    advantages = group_advantages(rewards, 8, bonus=bonus)
    assert advantages[0] > advantages[1] > 0 > advantages[2] > advantages[4]
    assert torch.equal(advantages[3:], torch.full((5,), advantages[4].item()))
    # a wrong answer earns nothing however much it relies on the order; a step at the threshold
    wrong = correct.clone()
    wrong[0] = False
    assert response_temporal_bonus(wrong, reliance, 0.3)[0] == 0
    step = response_temporal_bonus(correct, reliance, 0.3, threshold=0.5, scale=0.0)
    assert step.tolist() == pytest.approx([0.3, 0.3, 0.0, 0, 0, 0, 0, 0])
