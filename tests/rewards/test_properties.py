"""Reward properties (docs/rewards.md): total, bounded, deterministic, batch-consistent, unfarmable."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videor1.rewards import (
    PROBLEM_TYPES,
    accuracy_reward,
    accuracy_rewards,
    extract_answer,
    format_reward,
    free_form_reward,
    mean_relative_accuracy,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    parse_number,
    parse_option_letter,
    regression_reward,
)

TAG_PIECES = ["<answer>", "</answer>", "<think>", "</think>", "<answr>", "</answr>", "<", ">", "/"]
NUMBER_PIECES = ["0", "1", "7", "42", "3.5", "-", "+", ",", ".", "e", "E", "1,000", "$", "%", "\u2212"]
LETTER_PIECES = ["A", "B", "C", "D", "a", "b", "(", ")", "[", "]", ":", "I ", "or "]
WORD_PIECES = ["The answer is ", "option ", "Answer: ", "red circle"]
OTHER_PIECES = [" ", "\n", "\t", "\x00", "é", "日本", "\u200b"]
FRAGMENTS = TAG_PIECES + NUMBER_PIECES + LETTER_PIECES + WORD_PIECES + OTHER_PIECES
FRAGMENT_TEXT = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
TEXT = st.one_of(st.text(), FRAGMENT_TEXT)
HUGE_TEXT = st.builds(
    lambda parts, n: ("".join(parts) * n)[:100_000],
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8),
    st.integers(10_000, 100_000),
)
NOT_TEXT = st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(), max_size=2))
FIXED_OPTIONS = ["A. red circle", "B. blue square", "C. green triangle", "D. yellow star"]
OPTIONS = st.one_of(st.none(), st.just(FIXED_OPTIONS), st.lists(TEXT, max_size=5))
PROBLEM_TYPE = st.one_of(st.sampled_from(list(PROBLEM_TYPES)), st.sampled_from(["video eval", "", "ocr"]))


def _all_rewards(pred, gt, options, problem_type):
    """Every scoring entry point on one input; each must return a float in [0, 1]."""
    wrapped_pred, wrapped_gt = f"<think>x</think><answer>{pred}</answer>", f"<answer>{gt}</answer>"
    return [
        multiple_choice_reward(pred, gt, options),
        numerical_reward(pred, gt),
        ocr_reward(pred, gt),
        free_form_reward(pred, gt),
        regression_reward(pred, gt),
        format_reward(pred),
        accuracy_reward(pred, gt, problem_type, options),
        accuracy_reward(wrapped_pred, wrapped_gt, problem_type, options),
    ]


def _check_bounded_and_deterministic(pred, gt, options, problem_type):
    first = _all_rewards(pred, gt, options, problem_type)
    assert all(type(r) is float and 0.0 <= r <= 1.0 for r in first), first
    assert _all_rewards(pred, gt, options, problem_type) == first
    assert first[0] in (0.0, 1.0) and first[1] in (0.0, 1.0) and first[5] in (0.0, 1.0)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(TEXT, TEXT, OPTIONS, PROBLEM_TYPE)
def test_never_raises_bounded_and_deterministic_on_text(pred, gt, options, problem_type):
    _check_bounded_and_deterministic(pred, gt, options, problem_type)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(TEXT, NOT_TEXT),
    st.one_of(TEXT, NOT_TEXT),
    st.one_of(OPTIONS, NOT_TEXT),
    st.one_of(PROBLEM_TYPE, NOT_TEXT),
)
def test_never_raises_on_wrong_types(pred, gt, options, problem_type):
    _check_bounded_and_deterministic(pred, gt, options, problem_type)
    assert extract_answer(pred) is None or isinstance(extract_answer(pred), str)
    assert parse_number(pred) is None or math.isfinite(parse_number(pred))


@settings(max_examples=15, deadline=None)
@given(HUGE_TEXT, st.one_of(TEXT, HUGE_TEXT), PROBLEM_TYPE)
def test_never_raises_on_huge_text(pred, gt, problem_type):
    _check_bounded_and_deterministic(pred, gt, None, problem_type)
    answer = extract_answer(pred)
    assert answer is None or answer in pred


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.integers()), st.one_of(st.floats(), st.integers()))
def test_mean_relative_accuracy_is_a_tenth_in_range(pred, gt):
    value = mean_relative_accuracy(pred, gt)
    assert value in [k / 10 for k in range(11)]
    assert mean_relative_accuracy(pred, gt) == value


SAMPLE = st.tuples(
    st.one_of(TEXT, TEXT.map(lambda t: f"<think>x</think><answer>{t}</answer>")),
    st.one_of(TEXT, TEXT.map(lambda t: f"<answer>{t}</answer>")),
    PROBLEM_TYPE,
    OPTIONS,
)
ANSWERED_SAMPLE = st.sampled_from(
    [
        ("<answer>B</answer>", "<answer>B</answer>", "multiple choice", ["A. x", "B. y"]),
        ("<answer>42</answer>", "<answer>42</answer>", "numerical", None),
        ("<answer>hello there</answer>", "<answer>hello world</answer>", "OCR", None),
        ("<answer>the cat</answer>", "<answer>the cat sat</answer>", "free-form", None),
        ("<answer>9</answer>", "<answer>10</answer>", "regression", None),
        ("<answer>B</answer>", "<answer>B</answer>", "video eval", None),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(SAMPLE, ANSWERED_SAMPLE), max_size=12).flatmap(
        lambda b: st.tuples(st.just(b), st.permutations(range(len(b))))
    )
)
def test_batch_equals_per_sample_calls_and_is_permutation_invariant(batch_and_order):
    batch, order = batch_and_order
    columns = [list(column) for column in zip(*batch, strict=True)] or [[], [], [], []]
    rewards = accuracy_rewards(*columns)
    assert rewards == [accuracy_reward(*sample) for sample in batch]
    shuffled = [batch[i] for i in order]
    shuffled_columns = [list(column) for column in zip(*shuffled, strict=True)] or [[], [], [], []]
    assert accuracy_rewards(*shuffled_columns) == [rewards[i] for i in order]


BOUNDED = st.floats(min_value=1e-6, max_value=1e6)


@settings(max_examples=500, deadline=None)
@given(
    BOUNDED, st.floats(0, 1e6), st.floats(0, 1e6), st.sampled_from([-1.0, 1.0]), st.sampled_from([-1.0, 1.0])
)
def test_closer_prediction_never_scores_lower(gt_abs, d1, d2, gt_sign, side):
    gt = gt_sign * gt_abs
    near, far = gt + side * min(d1, d2), gt + side * max(d1, d2)
    assert mean_relative_accuracy(near, gt) >= mean_relative_accuracy(far, gt)
    assert regression_reward(repr(near), repr(gt)) >= regression_reward(repr(far), repr(gt))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_exact_prediction_scores_full(gt):
    assert mean_relative_accuracy(gt, gt) == 1.0
    assert regression_reward(repr(gt), repr(gt)) == 1.0
    assert numerical_reward(repr(gt), repr(gt)) == 1.0


FILLER_WORDS = ["the", "answer", "is", "option", "choice", "final", "correct", "so", "I", "think", "or"]
FILLER = st.lists(
    st.sampled_from(FILLER_WORDS + [":", ",", ".", "(", ")", "**", "\n", " ", "an", "dog"]), max_size=6
)
FILLER = FILLER.map(" ".join)
LETTERS = "ABCD"


@settings(max_examples=1000, deadline=None)
@given(FILLER, FILLER, st.booleans(), st.sampled_from([None, FIXED_OPTIONS]))
def test_letter_reading_has_no_letter_bias(before, after, lowercase, options):
    """Swapping the option letter in any phrasing swaps the reading: no letter is favoured.

    The filler holds no word that reads as A-D (such as the article "a"): a text naming
    a letter twice is consistent while one naming two letters is ambiguous, so a letter
    in the filler would make the readings differ for a legitimate reason.
    """
    letters = LETTERS.lower() if lowercase else LETTERS
    readings = [parse_option_letter(f"{before}{letter}{after}", options) for letter in letters]
    hits = [reading == letter for reading, letter in zip(readings, LETTERS, strict=True)]
    assert all(hits) or not any(hits), readings


@settings(max_examples=1000, deadline=None)
@given(TEXT, OPTIONS)
def test_no_text_scores_on_two_different_ground_truths(pred, options):
    """Anti-farming: one answer can match at most one letter and at most one number."""
    assert sum(multiple_choice_reward(pred, letter, options) for letter in LETTERS) <= 1.0
    assert sum(numerical_reward(pred, str(n)) for n in range(-3, 50)) <= 1.0


@given(
    st.lists(st.sampled_from(LETTERS), min_size=2, max_size=4, unique=True),
    st.sampled_from([" ", ", ", " or ", "/", "\n", " and ", ""]),
)
def test_listing_several_letters_never_scores(letters, sep):
    pred = sep.join(letters)
    for options in (None, FIXED_OPTIONS):
        assert all(multiple_choice_reward(pred, gt, options) == 0.0 for gt in LETTERS)
        assert all(multiple_choice_reward(f"The answer is {pred}", gt, options) == 0.0 for gt in LETTERS)


WS = st.text(alphabet=" \t\n\r", max_size=3)
NO_TAG = st.text(alphabet=st.characters(blacklist_characters="<"), max_size=30)


@settings(max_examples=500, deadline=None)
@given(WS, NO_TAG, WS, NO_TAG.filter(lambda a: a.strip() != ""), WS)
def test_format_reward_accepts_exactly_the_template(ws1, think, ws2, answer, ws3):
    good = f"{ws1}<think>{think}</think>{ws2}<answer>{answer}</answer>{ws3}"
    assert format_reward(good) == 1.0
    assert extract_answer(good) == answer.strip()
    assert format_reward(f"x{good}") == 0.0
    assert format_reward(f"{good}x") == 0.0
    assert format_reward(f"{ws1}<think>{think}</think>x<answer>{answer}</answer>") == 0.0
    assert format_reward(f"{good}<answer>{answer}</answer>") == 0.0
    assert format_reward(f"<answer>{answer}</answer>{ws2}<think>{think}</think>") == 0.0
