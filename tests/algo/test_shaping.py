"""Reward shaping (Eq. 1, 2, 5) on hand-computed cases."""

import pytest
import torch

from videor1.algo import (
    is_correct,
    length_bonus,
    temporal_bonus,
    temporal_bonus_certain,
    temporal_bonus_impossible,
    temporal_reward,
)


def test_correctness_rules():
    accuracy = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.99, 1.0])
    assert is_correct(accuracy).tolist() == [False, False, False, True, True, True]
    assert is_correct(accuracy, threshold=0.3).tolist() == [False, False, True, True, True, True]
    # the released code: accuracy > 0.1, whatever the threshold
    assert is_correct(accuracy, rule="reference").tolist() == [False, False, True, True, True, True]


@pytest.mark.parametrize(
    ("p", "p_tilde", "ratio", "expected"),
    [
        (0.5, 0.5, 1.0, 0.3),  # ties favour the ordered group
        (0.75, 0.5, 1.0, 0.3),
        (0.25, 0.5, 1.0, 0.0),
        (0.0, 0.0, 1.0, 0.3),  # granted, but no correct response will receive it
        (0.6, 0.75, 0.8, 0.3),  # 0.8 * 0.75 = 0.6000000000000001 in floats: still a tie
        (0.5, 0.75, 0.8, 0.0),
        (0.875, 1.0, 0.8, 0.3),
    ],
)
def test_temporal_reward_eq1(p, p_tilde, ratio, expected):
    assert temporal_reward(p, p_tilde, alpha=0.3, ratio=ratio) == expected


def test_temporal_reward_is_certain_only_when_no_shuffled_result_can_refuse_it():
    for ratio in (1.0, 0.8):
        for k in range(9):
            p = k / 8
            outcomes = {temporal_reward(p, j / 4, ratio=ratio) for j in range(5)}
            assert temporal_bonus_certain(p, ratio) == (outcomes == {0.3})


@pytest.mark.parametrize(("condition", "margin"), [("paper", 0.0), ("strict", 0.0), ("margin", 0.25)])
def test_condition_variants_certain_and_impossible_exactly_when_every_shuffled_result_agrees(condition,
                                                                                             margin):
    for ratio in (1.0, 0.8):
        for k in range(9):
            p = k / 8
            outcomes = {temporal_reward(p, j / 4, 0.3, ratio, condition, margin) for j in range(5)}
            assert temporal_bonus_certain(p, ratio, condition, margin) == (outcomes == {0.3})
            assert temporal_bonus_impossible(p, ratio, condition, margin) == (outcomes == {0.0})


def test_strict_condition_withholds_the_reward_from_a_policy_that_needs_no_order():
    assert temporal_reward(0.75, 0.75) == 0.3  # the paper: a tie earns r_t
    assert temporal_reward(0.75, 0.75, condition="strict") == 0.0
    assert temporal_reward(0.75, 0.5, condition="strict") == 0.3
    assert temporal_reward(0.6, 0.75, ratio=0.8, condition="strict") == 0.0  # a tie in floats too
    assert temporal_reward(0.75, 0.5, condition="margin", margin=0.25) == 0.3
    assert temporal_reward(0.75, 0.625, condition="margin", margin=0.25) == 0.0
    with pytest.raises(ValueError, match="condition"):
        temporal_reward(0.5, 0.5, condition="loose")


def test_temporal_bonus_eq2_goes_to_correct_responses_of_each_group():
    correct = torch.tensor([True, False, True, True, False, False])
    r_t = torch.tensor([0.3, 0.0, 0.3])  # three groups of two
    assert temporal_bonus(correct, r_t,
                          group_size=2).tolist() == pytest.approx([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_length_bonus_eq5():
    correct = torch.tensor([True, True, False, True, True, False, False, False])
    lengths = torch.tensor([320, 513, 400, 512, 319, 400, 400, 400])
    bonus = length_bonus(correct, lengths, group_size=4, omega=0.2, l_min=320, l_max=512)
    assert bonus.tolist() == pytest.approx([0.2, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0])


def test_length_bonus_reference_variant_needs_two_correct_in_the_group():
    correct = torch.tensor([True, False, False, False, True, True, False, False])
    lengths = torch.full((8,), 400)
    paper = length_bonus(correct, lengths, group_size=4)
    reference = length_bonus(correct, lengths, group_size=4, min_correct=2)
    assert paper.tolist() == pytest.approx([0.2, 0, 0, 0, 0.2, 0.2, 0, 0])
    assert reference.tolist() == pytest.approx([0, 0, 0, 0, 0.2, 0.2, 0, 0])
