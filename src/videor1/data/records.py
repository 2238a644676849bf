"""Typed records of the Video-R1 data formats (docs/data.md).

- `Record`: a Video-R1-260k training record (RL).
- `CotRecord`: a Video-R1-COT-165k record, i.e. a `Record` with a `<think>…</think>` `process`.
- `EvalRecord`: a benchmark item in the same format; `data_source` may be missing and
  benchmark-specific fields (task, category, duration, …) are kept as extra fields.

Unknown fields are kept on every record (pydantic `extra="allow"`) and written back unchanged.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videor1.rewards.problem_types import PROBLEM_TYPES

DataType = Literal["image", "video"]
DATA_TYPES: tuple[str, ...] = get_args(DataType)

_OPTION = re.compile(r"^\s*([A-Z])\.\s*(.*?)\s*$", re.DOTALL)
_SOLUTION = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.DOTALL)
_PROCESS = re.compile(r"^\s*<think>(.*)</think>\s*$", re.DOTALL)


def option_letter(option: str) -> str | None:
    """The letter of an option written like "A. text", or None."""
    match = _OPTION.match(option)
    return match.group(1) if match else None


def option_text(option: str) -> str:
    """The text of an option written like "A. text" (the whole string when it has no letter)."""
    match = _OPTION.match(option)
    return match.group(2) if match else option.strip()


class Record(BaseModel):
    """One training record in the Video-R1-260k format."""

    model_config = ConfigDict(extra="allow")

    problem_id: int | str = Field(description="Identifier of the record, unique within its file.")
    problem: str = Field(min_length=1, description="The question, without options or instructions.")
    data_type: DataType
    problem_type: str = Field(description="One of rewards.PROBLEM_TYPES: multiple choice, numerical, OCR, "
                              "free-form, regression.")
    options: list[str] = Field(default_factory=list, description='Options like "A. text" (multiple choice).')
    solution: str = Field(description='The ground truth wrapped in answer tags: "<answer>B</answer>".')
    path: str = Field(min_length=1, description="Media path, relative to the media root.")
    data_source: str = Field(description="Where the record comes from (dataset name).")

    @field_validator("solution")
    @classmethod
    def _solution_has_answer_tags(cls, value: str) -> str:
        match = _SOLUTION.match(value)
        inner = match.group(1) if match else ""
        if not match or "<answer>" in inner or "</answer>" in inner or not inner.strip():
            raise ValueError(f"solution must be one non-empty '<answer>…</answer>', got {value[:80]!r}")
        return value

    @field_validator("problem_type")
    @classmethod
    def _known_problem_type(cls, value: str) -> str:
        if value not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {value!r}; known: {', '.join(map(repr, PROBLEM_TYPES))}")
        return value

    @field_validator("options")
    @classmethod
    def _options_are_lettered(cls, options: list[str]) -> list[str]:
        letters = [option_letter(option) for option in options]
        for option, letter in zip(options, letters):
            if letter is None:
                raise ValueError(f'option {option[:60]!r} is not written like "A. text"')
        duplicates = sorted({letter for letter in letters if letters.count(letter) > 1})
        if duplicates:
            raise ValueError(f"option letters repeat: {', '.join(duplicates)}")
        return options

    @model_validator(mode="after")
    def _answer_fits_problem_type(self) -> Record:
        # The answer must be one its reward can read (rewards.PROBLEM_TYPES: the type's validation rule):
        # a numerical item whose answer is no number scores 0 whatever the model says, and is skipped
        # like any other bad record.
        problem = PROBLEM_TYPES[self.problem_type].problem(self.answer, self.options)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _segment_is_a_time_range(self) -> Record:
        # `start` / `end` (seconds, e.g. MVBench's) restrict a video's frame sampling: NaN, infinity or a
        # reversed range would fail at decoding time without naming the record.
        bounds = {name: getattr(self, name, None) for name in ("start", "end")}
        for name, value in bounds.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise ValueError(f"{name}: {value!r} is not a time in seconds (a finite number >= 0)")
        if None not in bounds.values() and bounds["start"] >= bounds["end"]:
            raise ValueError(f"start ({bounds['start']}) must come before end ({bounds['end']})")
        return self

    @property
    def answer(self) -> str:
        """The ground truth without its answer tags."""
        match = _SOLUTION.match(self.solution)
        assert match is not None  # checked by the validator
        return match.group(1).strip()

    @property
    def label(self) -> str:
        """How error messages name this record."""
        return f"problem_id={self.problem_id!r}"

    @property
    def target(self) -> str:
        """The assistant turn of SFT without a chain of thought: the answer alone."""
        return self.solution.strip()


class CotRecord(Record):
    """A Video-R1-COT-165k record: a training record plus its chain of thought."""

    process: str = Field(description='The reasoning wrapped in think tags: "<think>…</think>".')

    @field_validator("process")
    @classmethod
    def _process_has_think_tags(cls, value: str) -> str:
        match = _PROCESS.match(value)
        inner = match.group(1) if match else ""
        if not match or "<think>" in inner or "</think>" in inner or not inner.strip():
            raise ValueError(f"process must be one non-empty '<think>…</think>', got {value[:80]!r}")
        return value

    @property
    def target(self) -> str:
        """The assistant turn of SFT: reasoning then answer."""
        return f"{self.process.strip()}{self.solution.strip()}"


class EvalRecord(Record):
    """A benchmark item; `data_source` is optional and benchmark fields are kept as extras."""

    data_source: str = Field(default="", description="Benchmark or dataset name, when given.")


RecordT = type[Record]
RECORD_KINDS: dict[str, RecordT] = {"train": Record, "cot": CotRecord, "eval": EvalRecord}


class RecordError(ValueError):
    """A record that does not fit its schema; names the file, the position and the id."""

    def __init__(self, source: str, index: int, problem_id: Any, reasons: list[str]):
        self.source, self.index, self.problem_id, self.reasons = source, index, problem_id, reasons
        named = f" (problem_id={problem_id!r})" if problem_id is not None else ""
        where = f"{source} record #{index}{named}"
        super().__init__(f"{where}: {'; '.join(reasons)}")


def describe_validation_error(error: ValidationError) -> list[str]:
    """One short reason per pydantic error: "field: message"."""
    reasons = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "record"
        message = item["msg"].removeprefix("Value error, ")
        reasons.append(f"{field}: {message}")
    return reasons


def parse_record(raw: Any, kind: RecordT, source: str, index: int) -> Record:
    """Validate one raw JSON object as `kind`; raise `RecordError` naming file, position and id."""
    if not isinstance(raw, dict):
        raise RecordError(source, index, None, [f"expected a JSON object, got {type(raw).__name__}"])
    try:
        return kind.model_validate(raw)
    except ValidationError as error:
        raise RecordError(source, index, raw.get("problem_id"), describe_validation_error(error)) from None
