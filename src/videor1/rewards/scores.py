"""Rule-based rewards of Video-R1 (docs/rewards.md, paper §3.1).

One pure function per answer type, each mapping (prediction text, ground-truth text)
to a float in [0, 1] (the problem types of ``problem_types`` dispatch to them), plus
``format_reward`` and VSI-Bench's ``mean_relative_accuracy``. None of them raises on any input: they score
raw policy samples, where a crash would cost a training step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

from videor1.rewards.answers import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    parse_number,
    parse_option_letter,
)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# rouge-score's LCS is quadratic pure Python: 2,000 chars keeps one call under ~0.3 s.
MAX_ROUGE_CHARS = 2_000
# 1 - θ for θ = 0.50, 0.55, …, 0.95, as exact fractions so boundaries do not drift.
MRA_TOLERANCES = tuple(Fraction(k, 100) for k in range(50, 0, -5))
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clip01(value: float) -> float:
    return 0.0 if math.isnan(value) else float(min(1.0, max(0.0, value)))


def format_reward(completion: str) -> float:
    """1.0 for exactly ``<think>…</think><answer>…</answer>`` with only whitespace around
    and between, one of each tag and a non-empty answer; else 0.0 (docs/rewards.md)."""
    if not isinstance(completion, str):
        return 0.0
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    if any(completion.count(tag) != 1 for tag in tags):
        return 0.0
    body = completion.strip()
    if not (body.startswith(THINK_OPEN) and body.endswith(ANSWER_CLOSE)):
        return 0.0
    think_end, answer_start = body.index(THINK_CLOSE), body.index(ANSWER_OPEN)
    if answer_start < think_end:
        return 0.0
    between = body[think_end + len(THINK_CLOSE) : answer_start]
    answer = body[answer_start + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)]
    return float(not between.strip() and bool(answer.strip()))


def multiple_choice_reward(pred: str, gt: str, options: Sequence[str] | None = None) -> float:
    """1.0 when ``pred`` names exactly the option letter of ``gt`` (docs/rewards.md)."""
    letter = parse_option_letter(pred, options)
    return float(letter is not None and letter == parse_option_letter(gt, options))


def numerical_reward(pred: str, gt: str) -> float:
    """1.0 when both texts hold the same single number (docs/rewards.md)."""
    p, g = parse_number(pred), parse_number(gt)
    if p is None or g is None:
        return 0.0
    return float(math.isclose(p, g, rel_tol=1e-9, abs_tol=1e-12))


def ocr_reward(pred: str, gt: str) -> float:
    """``1 - WER(gt, pred)`` clipped to [0, 1], via jiwer (docs/rewards.md)."""
    import jiwer  # lazy: keeps `import videor1.rewards` light

    pred, gt = _text(pred).strip(), _text(gt).strip()
    if not gt:  # jiwer refuses an empty reference
        return float(not pred)
    if not pred:
        return 0.0
    try:
        error = jiwer.wer(gt, pred)
    except ValueError:  # a text jiwer's own transform reduces to nothing
        return 0.0
    return _clip01(1.0 - error)


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer  # lazy: pulls in nltk

    # Stemming as in the Video-R1 reference implementation.
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def free_form_reward(pred: str, gt: str) -> float:
    """Mean ROUGE-1/2/L F-measure of ``pred`` against ``gt`` (docs/rewards.md)."""
    pred, gt = _text(pred)[:MAX_ROUGE_CHARS], _text(gt)[:MAX_ROUGE_CHARS]
    scores = _rouge_scorer().score(gt, pred)
    return _clip01(sum(scores[t].fmeasure for t in ROUGE_TYPES) / len(ROUGE_TYPES))


def regression_reward(pred: str, gt: str) -> float:
    """``1 - |p - g| / |g|`` clipped to [0, 1]; exact match required when g = 0 (docs/rewards.md)."""
    p, g = parse_number(pred), parse_number(gt)
    if p is None or g is None:
        return 0.0
    if g == 0:
        return float(p == 0)
    return _clip01(1.0 - abs(p - g) / abs(g))


def _exact(value: float) -> Fraction | None:
    """The decimal a float prints as, exactly: "1.1" is 11/10, not 1.1000000000000000888."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return Fraction(repr(number)) if math.isfinite(number) else None


def mean_relative_accuracy(pred: float, gt: float) -> float:
    """VSI-Bench MRA: share of θ ∈ {0.50, …, 0.95} with |pred − gt| / |gt| ≤ 1 − θ (docs/rewards.md).

    Computed on exact fractions, so a relative error of exactly 0.1 passes θ = 0.90.
    """
    p, g = _exact(pred), _exact(gt)
    if p is None or g is None:
        return 0.0
    if g == 0:
        return float(p == 0)
    error = abs(p - g) / abs(g)
    return sum(error <= tol for tol in MRA_TOLERANCES) / len(MRA_TOLERANCES)
