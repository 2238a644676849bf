"""The problem types: one table that training, evaluation, validation and prompts all read.

Each `ProblemType` says, for one kind of question, how an answer is read (`parse`), how it is
rewarded in training (`reward`), how evaluation scores it (`score`), what the question asks the
model to write (`instruction`), and which ground truths are usable (`check`). Adding a problem
type is one entry in `PROBLEM_TYPES` plus its functions (docs/rewards.md).

The table sits in `rewards/`, the bottom layer of the package (it imports nothing else of ours),
so that record validation in `data/` can read it without an import pointing up the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from videor1.rewards.answers import extract_answer, parse_number, parse_option_letter, parse_options
from videor1.rewards.scores import (
    free_form_reward,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    regression_reward,
)

Score = Literal["exact", "threshold", "mra"]
Options = Sequence[str] | None


@dataclass(frozen=True)
class ProblemType:
    """Everything the package knows about one problem type.

    - parse(answer, options): what the answer text is read as (a letter, a number, the text), or
      None when it cannot be read. Evaluation reports it as the prediction.
    - reward(prediction, ground truth, options): the accuracy reward in [0, 1]; never raises.
    - score: how evaluation scores an item: `exact` (the reward, 0 or 1), `threshold` (1 when the
      reward reaches the benchmark's `correct_at`, else the reward itself), `mra` (Mean Relative
      Accuracy of the parsed numbers).
    - instruction / plain_instruction: the answer instruction appended to the question by the
      `video-r1` templates (answer in tags) and by the `plain` template (no reasoning).
    - options: the question lists the record's options.
    - check(answer, options): why a ground-truth answer is unusable for this type, or None.
    """

    name: str
    parse: Callable[[str, Options], str | float | None]
    reward: Callable[[str, str, Options], float]
    score: Score
    instruction: str
    plain_instruction: str
    options: bool = False
    check: Callable[[str, Sequence[str]], str | None] | None = None

    def problem(self, answer: str, options: Sequence[str]) -> str | None:
        """Why `answer` cannot be this type's ground truth: the type's own check, else it must parse."""
        if self.check is not None:
            return self.check(answer, options)
        if self.parse(answer, options) is None:
            return f"solution {answer!r} is not an answer the {self.name} reward can read"
        return None


def _check_choice(answer: str, options: Sequence[str]) -> str | None:
    # Stricter than the parser: a ground truth is the bare letter of one of at least two options.
    if len(options) < 2:
        return "a multiple-choice record needs at least two options"
    letters = list(parse_options(options))
    if answer.upper() not in letters:
        return f"answer {answer!r} is not one of the option letters {''.join(letters)}"
    return None


def _number_check(name: str) -> Callable[[str, Sequence[str]], str | None]:
    def check(answer: str, options: Sequence[str]) -> str | None:
        # A numerical item whose answer is no number would score 0 whatever the model says.
        if parse_number(answer) is None:
            return f"solution {answer!r} is not a number the {name} reward can read (one finite value)"
        return None

    return check


def _text(answer: str, options: Options) -> str | None:
    return answer.strip() or None if isinstance(answer, str) else None


def _number(answer: str, options: Options) -> float | None:
    return parse_number(answer)


_IN_TAGS = "within the <answer> </answer> tags."
_NUMBER_IN_TAGS = f" Please provide the numerical value (e.g., 42 or 3.14) {_IN_TAGS}"

PROBLEM_TYPES: dict[str, ProblemType] = {t.name: t for t in (
    ProblemType(
        "multiple choice", parse=parse_option_letter, reward=multiple_choice_reward, score="exact",
        instruction=" Please provide only the single option letter (e.g., A, B, C, D, etc.) " + _IN_TAGS,
        plain_instruction="Answer with the option's letter only.", options=True, check=_check_choice),
    ProblemType(
        "numerical", parse=_number, reward=lambda p, g, o: numerical_reward(p, g), score="exact",
        instruction=_NUMBER_IN_TAGS, plain_instruction="\nAnswer with a single number only.",
        check=_number_check("numerical")),
    ProblemType(
        "OCR", parse=_text, reward=lambda p, g, o: ocr_reward(p, g), score="threshold",
        instruction=" Please transcribe text from the image/video clearly and provide your text answer "
        + _IN_TAGS,
        plain_instruction="\nAnswer with the transcribed text only."),
    ProblemType(
        "free-form", parse=_text, reward=lambda p, g, o: free_form_reward(p, g), score="threshold",
        instruction=" Please provide your text answer " + _IN_TAGS, plain_instruction="\nAnswer briefly."),
    ProblemType(
        "regression", parse=_number, reward=lambda p, g, o: regression_reward(p, g), score="mra",
        instruction=_NUMBER_IN_TAGS, plain_instruction="\nAnswer with a single number only.",
        check=_number_check("regression")),
)}


def get_problem_type(name: str) -> ProblemType:
    """The entry of `name`; `ValueError` naming the known types when there is none."""
    entry = PROBLEM_TYPES.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"unknown problem type {name!r}; known: {', '.join(map(repr, PROBLEM_TYPES))}")
    return entry


def accuracy_reward(completion: str, solution: str, problem_type: str, options: Options = None) -> float:
    """Score the completion's last ``<answer>`` against ``solution`` by its problem type's reward.

    A completion without a complete answer pair scores 0.0; a solution without tags is used whole;
    an unknown problem type scores 0.0 (a reward never raises: it scores raw policy samples).
    """
    pred = extract_answer(completion)
    entry = PROBLEM_TYPES.get(problem_type) if isinstance(problem_type, str) else None
    if pred is None or not isinstance(solution, str) or entry is None:
        return 0.0
    gt = extract_answer(solution)
    gt = solution.strip() if gt is None else gt
    return entry.reward(pred, gt, options)


def accuracy_rewards(
    completions: Sequence[str],
    solutions: Sequence[str],
    problem_types: Sequence[str],
    options: Sequence[Options] | None = None,
) -> list[float]:
    """Batch ``accuracy_reward``: every sample uses its own problem type and options.

    The reference implementation scored a whole batch with the first sample's type.
    Mismatched lengths are a caller bug, so they raise ``ValueError``.
    """
    options = [None] * len(completions) if options is None else options
    if not len(completions) == len(solutions) == len(problem_types) == len(options):
        raise ValueError(
            "accuracy_rewards: completions, solutions, problem_types and options "
            f"differ in length ({len(completions)}, {len(solutions)}, "
            f"{len(problem_types)}, {len(options)})"
        )
    return [
        accuracy_reward(c, s, t, o)
        for c, s, t, o in zip(completions, solutions, problem_types, options, strict=True)
    ]
