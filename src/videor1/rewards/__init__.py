"""Rule-based rewards for Video-R1 training and evaluation (SPEC §3, paper §3.1).

A leaf package: it imports nothing else from ``videor1`` and nothing heavy at import
(jiwer and rouge-score are imported on first use).
"""

from videor1.rewards.answers import (
    MAX_PARSE_CHARS,
    extract_answer,
    normalize_text,
    parse_number,
    parse_option_letter,
    parse_options,
)
from videor1.rewards.scores import (
    MRA_TOLERANCES,
    PROBLEM_TYPES,
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

__all__ = [
    "MAX_PARSE_CHARS",
    "MRA_TOLERANCES",
    "PROBLEM_TYPES",
    "accuracy_reward",
    "accuracy_rewards",
    "extract_answer",
    "format_reward",
    "free_form_reward",
    "mean_relative_accuracy",
    "multiple_choice_reward",
    "normalize_text",
    "numerical_reward",
    "ocr_reward",
    "parse_number",
    "parse_option_letter",
    "parse_options",
    "regression_reward",
]
