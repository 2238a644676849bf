"""Per-type rewards, dispatch and MRA (docs/rewards.md): tricky-case tables and independent oracles."""

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from videor1.rewards import (
    accuracy_reward,
    accuracy_rewards,
    format_reward,
    free_form_reward,
    mean_relative_accuracy,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    regression_reward,
)

OPTIONS = ["A. red circle", "B. blue square", "C. green triangle", "D. yellow star"]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>x</think><answer>B</answer>", 1.0),
        ("  \n<think>\nlong reasoning\n</think>\n\n<answer> B </answer>\n ", 1.0),
        ("<think></think><answer>B</answer>", 1.0),  # an empty think is allowed
        ("<think>x</think><answer> </answer>", 0.0),  # an empty answer is not
        ("<think>x</think><answer></answer>", 0.0),
        ("<answer>B</answer>", 0.0),
        ("<think>x</think>", 0.0),
        ("<answer>B</answer><think>x</think>", 0.0),  # think after answer
        ("<think>x</think>so<answer>B</answer>", 0.0),  # text between the blocks
        ("Sure! <think>x</think><answer>B</answer>", 0.0),  # text before
        ("<think>x</think><answer>B</answer> done", 0.0),  # text after
        ("<think>x</think><answer>A</answer><answer>B</answer>", 0.0),
        ("<think>x<answer>A</answer></think><answer>B</answer>", 0.0),  # nested answer
        ("<think><think>x</think></think><answer>B</answer>", 0.0),  # nested think
        ("<think>x</think><answer>B<answer></answer>", 0.0),
        ("<think>x</think><answer>B</answr>", 0.0),
        ("<think>x</think><answer>B", 0.0),
        ("<think>x<answer>B</answer>", 0.0),
        ("<THINK>x</THINK><ANSWER>B</ANSWER>", 0.0),
        ("", 0.0),
        (None, 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert format_reward(completion) == expected


@pytest.mark.parametrize(
    ("pred", "gt", "options", "expected"),
    [
        ("B", "B", OPTIONS, 1.0),
        ("b", "B", OPTIONS, 1.0),
        ("B.", "B", OPTIONS, 1.0),
        ("(B)", "B", OPTIONS, 1.0),
        ("B) blue square", "B", OPTIONS, 1.0),
        ("B. blue square", "B", OPTIONS, 1.0),
        ("B: blue", "B", OPTIONS, 1.0),
        ("The answer is B", "B", OPTIONS, 1.0),
        ("Answer: (b)", "B", OPTIONS, 1.0),
        ("option B", "B", OPTIONS, 1.0),
        ("blue square", "B", OPTIONS, 1.0),
        ("B", "B. blue square", OPTIONS, 1.0),  # a ground truth given as the option string
        ("B", "B", None, 1.0),
        ("C", "B", OPTIONS, 0.0),
        ("A B C D", "B", OPTIONS, 0.0),
        ("A, B, C, D", "B", OPTIONS, 0.0),
        ("B or C", "B", OPTIONS, 0.0),
        ("a dog runs", "A", ["A. cat", "B. dog"], 0.0),
        ("a dog runs", "A", ["A. a dog runs", "B. a cat sits"], 1.0),  # matches the option text
        ("E", "E", OPTIONS, 0.0),  # not an option
        ("", "B", OPTIONS, 0.0),
        ("B", "", OPTIONS, 0.0),
    ],
)
def test_multiple_choice_reward(pred, gt, options, expected):
    assert multiple_choice_reward(pred, gt, options) == expected


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("42", "42", 1.0),
        ("1,000", "1000", 1.0),
        ("3.0", "3", 1.0),
        ("+2", "2", 1.0),
        ("-2", "-2", 1.0),
        ("-2", "2", 0.0),
        ("1e3", "1000", 1.0),
        (".5", "0.5", 1.0),
        ("$5", "5", 1.0),
        ("5%", "5", 1.0),
        ("about 42 meters", "42", 1.0),
        ("42 m", "42", 1.0),
        ("0.1", "0.10000000001", 1.0),  # within rel_tol 1e-9
        ("0.1", "0.1001", 0.0),
        ("3.14", "3.14159", 0.0),
        ("1 2 3 4 5 6 7", "4", 0.0),
        ("42 or 43", "42", 0.0),
        ("forty-two", "42", 0.0),
        ("inf", "inf", 0.0),
        ("", "42", 0.0),
        ("42", "", 0.0),
    ],
)
def test_numerical_reward(pred, gt, expected):
    assert numerical_reward(pred, gt) == expected


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("10", "10", 1.0),
        ("9", "10", 0.9),
        ("12", "10", 0.8),
        ("5", "10", 0.5),
        ("20", "10", 0.0),
        ("30", "10", 0.0),  # clipped, not negative
        ("-10", "10", 0.0),
        ("0", "0", 1.0),
        ("0.001", "0", 0.0),
        ("about 9 m", "10", 0.9),
        ("9 or 10", "10", 0.0),
        ("nine", "10", 0.0),
        ("10", "ten", 0.0),
    ],
)
def test_regression_reward(pred, gt, expected):
    assert regression_reward(pred, gt) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("hello world", "hello world", 1.0),
        ("  hello world ", "hello world", 1.0),
        ("hello there", "hello world", 0.5),
        ("hello", "hello world", 0.5),
        ("a b c d e", "x", 0.0),  # WER above 1 is clipped
        ("", "hello", 0.0),
        ("   ", "hello", 0.0),
        ("", "", 1.0),
        ("  ", "\n", 1.0),
        ("hello", "", 0.0),
    ],
)
def test_ocr_reward(pred, gt, expected):
    assert ocr_reward(pred, gt) == pytest.approx(expected)


def test_free_form_reward_hand_computed():
    # gt "the cat sat", pred "the cat": ROUGE-1 F = 0.8, ROUGE-2 F = 2/3, ROUGE-L F = 0.8.
    assert free_form_reward("the cat", "the cat sat") == pytest.approx((0.8 + 2 / 3 + 0.8) / 3)
    assert free_form_reward("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert free_form_reward("dogs bark", "the cat sat") == 0.0
    assert free_form_reward("", "the cat sat") == 0.0
    assert free_form_reward("日本語", "日本語") == 0.0  # rouge-score keeps only [a-z0-9] tokens


WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
WORDS = st.lists(WORD, min_size=1, max_size=15)


def _word_edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@settings(max_examples=300, deadline=None)
@given(WORDS, WORDS)
def test_ocr_reward_matches_jiwer_and_edit_distance(gt_words, pred_words):
    gt, pred = " ".join(gt_words), " ".join(pred_words)
    expected = min(1.0, max(0.0, 1.0 - jiwer.wer(gt, pred)))
    assert ocr_reward(pred, gt) == pytest.approx(expected)
    by_hand = 1.0 - _word_edit_distance(gt_words, pred_words) / len(gt_words)
    assert ocr_reward(pred, gt) == pytest.approx(min(1.0, max(0.0, by_hand)))


SENTENCE_WORDS = [
    "the",
    "cat",
    "cats",
    "sat",
    "sitting",
    "on",
    "a",
    "mat",
    "running",
    "runs",
    "dog",
    "red",
    "42",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(SENTENCE_WORDS), max_size=20).map(" ".join),
    st.lists(st.sampled_from(SENTENCE_WORDS), max_size=20).map(" ".join),
)
def test_free_form_reward_matches_rouge_score(pred, gt):
    scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(gt, pred)
    expected = (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3
    assert free_form_reward(pred, gt) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("completion", "solution", "problem_type", "options", "expected"),
    [
        ("<think>x</think><answer>B</answer>", "<answer>B</answer>", "multiple choice", OPTIONS, 1.0),
        ("<answer>The answer is (b)</answer>", "<answer>B</answer>", "multiple choice", OPTIONS, 1.0),
        ("<answer>A</answer> wait <answer>B</answer>", "<answer>B</answer>", "multiple choice", OPTIONS, 1.0),
        ("<answer>B</answer> wait <answer>A</answer>", "<answer>B</answer>", "multiple choice", OPTIONS, 0.0),
        ("B", "<answer>B</answer>", "multiple choice", OPTIONS, 0.0),  # no tags
        ("<answer>B</answr>", "<answer>B</answer>", "multiple choice", OPTIONS, 0.0),
        ("<answer>B</answer>", "B", "multiple choice", OPTIONS, 1.0),  # untagged solution used whole
        ("<answer>B</answer>", " B \n", "multiple choice", None, 1.0),
        ("<answer>1,000</answer>", "<answer>1000</answer>", "numerical", None, 1.0),
        ("<answer>1 2 3</answer>", "<answer>2</answer>", "numerical", None, 0.0),
        ("<answer>hello there</answer>", "<answer>hello world</answer>", "OCR", None, 0.5),
        ("<answer>the cat sat</answer>", "<answer>the cat sat</answer>", "free-form", None, 1.0),
        ("<answer>9</answer>", "<answer>10</answer>", "regression", None, 0.9),
        ("<answer>B</answer>", "<answer>B</answer>", "video eval", None, 0.0),  # unknown type
        ("<answer>B</answer>", "<answer>B</answer>", "Multiple Choice", None, 0.0),
        ("<answer>B</answer>", "<answer>B</answer>", None, None, 0.0),
        ("<answer>B</answer>", "<answer>B</answer>", ["multiple choice"], None, 0.0),
        (None, "<answer>B</answer>", "multiple choice", None, 0.0),
        ("<answer>B</answer>", None, "multiple choice", None, 0.0),
    ],
)
def test_accuracy_reward(completion, solution, problem_type, options, expected):
    assert accuracy_reward(completion, solution, problem_type, options) == pytest.approx(expected)


def test_accuracy_rewards_uses_each_samples_own_type_and_options():
    # The reference implementation scored the batch with problem_type[0]: the numerical
    # and OCR samples below would then be read as option letters and score 0.
    rewards = accuracy_rewards(
        ["<answer>B</answer>", "<answer>42</answer>", "<answer>hello world</answer>", "<answer>yes</answer>"],
        ["<answer>B</answer>", "<answer>42.0</answer>", "<answer>hello world</answer>", "<answer>A</answer>"],
        ["multiple choice", "numerical", "OCR", "multiple choice"],
        [OPTIONS, None, None, ["A. yes", "B. no"]],
    )
    assert rewards == [1.0, 1.0, 1.0, 1.0]


def test_accuracy_rewards_without_options_and_empty_batch():
    assert accuracy_rewards(["<answer>7</answer>"], ["<answer>7</answer>"], ["numerical"]) == [1.0]
    assert accuracy_rewards([], [], [], []) == []


def test_accuracy_rewards_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        accuracy_rewards(["<answer>B</answer>"], ["B", "C"], ["multiple choice"], [None])


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (10, 10, 1.0),
        (9, 10, 0.9),  # rel 0.1 <= 1 - θ for θ <= 0.90
        (11, 10, 0.9),
        (12, 10, 0.7),  # rel 0.2: θ <= 0.80, where naive float thresholds drift to 0.6
        (5, 10, 0.1),  # rel 0.5 passes only θ = 0.50
        (15, 10, 0.1),
        (4, 10, 0.0),
        (105, 100, 1.0),  # rel 0.05 passes θ = 0.95 exactly
        (106, 100, 0.9),
        (1.1, 1.0, 0.9),
        (0.9, 1.0, 0.9),
        (-9, -10, 0.9),
        (9, -10, 0.0),
        (0, 0, 1.0),
        (0.001, 0, 0.0),
        (0, 10, 0.0),
        (float("nan"), 1.0, 0.0),
        (1.0, float("inf"), 0.0),
        (float("inf"), float("inf"), 0.0),
        ("x", 1.0, 0.0),
        (None, 1.0, 0.0),
    ],
)
def test_mean_relative_accuracy_hand_values(pred, gt, expected):
    assert mean_relative_accuracy(pred, gt) == expected


@pytest.mark.parametrize(
    ("pred", "gt"), [(10.0, 10.0), (9.3, 10.0), (7.2, 10.0), (3.3, 10.0), (130.0, 100.0), (0.77, 1.0)]
)
def test_mean_relative_accuracy_matches_float_formula_away_from_boundaries(pred, gt):
    thresholds = [0.50 + 0.05 * i for i in range(10)]
    expected = sum(abs(pred - gt) / abs(gt) <= 1 - t for t in thresholds) / len(thresholds)
    assert mean_relative_accuracy(pred, gt) == pytest.approx(expected)


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6).filter(bool))
def test_mean_relative_accuracy_matches_integer_arithmetic(pred, gt):
    # For integers, |p - g| / |g| <= k / 100  <=>  100 |p - g| <= k |g|, with no rounding.
    passed = sum(100 * abs(pred - gt) <= k * abs(gt) for k in range(5, 51, 5))
    assert mean_relative_accuracy(pred, gt) == passed / 10
    assert mean_relative_accuracy(float(pred), float(gt)) == passed / 10
