"""Rule-based rewards and the problem types for Video-R1 training and evaluation (docs/rewards.md).

A leaf package, the bottom layer: it imports nothing else from ``videor1`` and nothing heavy
at import (jiwer and rouge-score are imported on first use).
"""

from videor1.rewards.answers import (
    MAX_PARSE_CHARS,
    extract_answer,
    normalize_text,
    parse_number,
    parse_option_letter,
    parse_options,
)
from videor1.rewards.problem_types import (
    PROBLEM_TYPES,
    ProblemType,
    accuracy_reward,
    accuracy_rewards,
    get_problem_type,
)
from videor1.rewards.scores import (
    MRA_TOLERANCES,
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
    "ProblemType",
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
    "get_problem_type",
    "regression_reward",
]
