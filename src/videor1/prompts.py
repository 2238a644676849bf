"""Question templates: the one place that turns a record into the text the model is asked.

- `video-r1`: the wording the released Video-R1 checkpoints were trained with (paper Appendix C.1,
  Figure 11), also used for CoT annotation. Kept character for character, including the reference
  code's quirks (no newline between the problem and "Options:", no full stop after "thought
  expressions"): a checkpoint answers best to the exact text it was trained on.
- `video-r1-eval`: the released evaluation script's variant ("between the <think> and </think>
  tags"), for reproducing the paper's benchmark numbers.
- `plain`: no chain of thought, for evaluating base models.
- a custom template: a YAML or JSON file with the fields of `PromptTemplate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from videor1.data.records import Record
from videor1.rewards import PROBLEM_TYPES, get_problem_type


class PromptTemplate(BaseModel):
    """How a record becomes a question.

    text = body.format(question=problem + options block) + the problem type's answer instruction,
    where the options block (types that list options: multiple choice) is options_header + option_line
    per option. The instruction is `type_instructions[type]` when the template names the type, else the
    problem type's own (`rewards.PROBLEM_TYPES`, in the template's `answer_style`).
    """

    name: str
    body: str = Field(description="Format string with a {question} field.")
    options_header: str = Field(default="Options:\n",
                                description="Put after the problem for multiple choice.")
    option_line: str = Field(default="{option}\n", description="Format string with an {option} field.")
    answer_style: Literal["tags", "plain"] = Field(
        default="tags", description="The problem types' instructions to use: answer in <answer> tags "
        "(video-r1) or plain (no reasoning).")
    type_instructions: dict[str, str] = Field(
        default_factory=dict, description="Answer instruction per problem type, instead of the type's own.")

    @model_validator(mode="after")
    def _complete(self) -> PromptTemplate:
        unknown = [t for t in self.type_instructions if t not in PROBLEM_TYPES]
        if unknown:
            raise ValueError(f"template {self.name!r} has type_instructions for unknown problem types: "
                             f"{', '.join(unknown)} (known: {', '.join(PROBLEM_TYPES)})")
        for field, text, name in (("body", self.body, "question"),
                                  ("option_line", self.option_line, "option")):
            try:
                text.format(**{name: ""})
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"template {self.name!r}: {field} may use only the field {{{name}}} "
                                 f"(write literal braces as {{{{ }}}}): {error!r}") from None
        if "{question}" not in self.body:
            raise ValueError(f"template {self.name!r}: body must contain {{question}}")
        return self

    def instruction(self, name: str) -> str:
        """The answer instruction appended for problem type `name`."""
        if name in self.type_instructions:
            return self.type_instructions[name]
        entry = get_problem_type(name)
        return entry.instruction if self.answer_style == "tags" else entry.plain_instruction

    def render(self, problem: str, problem_type: str, options: list[str] | None = None) -> str:
        question = problem
        if get_problem_type(problem_type).options and options:
            question += self.options_header + "".join(self.option_line.format(option=o) for o in options)
        return self.body.format(question=question) + self.instruction(problem_type)


VIDEO_R1 = PromptTemplate(
    name="video-r1",
    body=(
        "{question}\n"
        "Please think about this question as if you were a human pondering deeply. "
        "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', "
        "'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
        "It's encouraged to include self-reflection or verification in the reasoning process. "
        "Provide your detailed reasoning between the <think> </think> tags, and then give your final answer "
        "between the <answer> </answer> tags."
    ),
)

VIDEO_R1_EVAL = PromptTemplate(
    name="video-r1-eval",
    body=VIDEO_R1.body.replace("<think> </think> tags", "<think> and </think> tags").replace(
        "<answer> </answer> tags.", "<answer> and </answer> tags."),
)

PLAIN = PromptTemplate(
    name="plain",
    body="{question}",
    options_header="\nOptions:\n",
    option_line="{option}\n",
    answer_style="plain",
)

PRESETS: dict[str, PromptTemplate] = {t.name: t for t in (VIDEO_R1, VIDEO_R1_EVAL, PLAIN)}


def load_template(name_or_path: str | Path) -> PromptTemplate:
    """A preset by name (`video-r1`, `plain`) or a custom template from a YAML / JSON file."""
    if str(name_or_path) in PRESETS:
        return PRESETS[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown prompt template {str(name_or_path)!r}: use one of {sorted(PRESETS)} or a "
                         "file path")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a prompt template must be a mapping of PromptTemplate fields")
    data.setdefault("name", path.stem)
    return PromptTemplate.model_validate(data)


def build_question(record: Record, template: str | Path | PromptTemplate = "video-r1") -> str:
    """The question text for `record` (the user turn's text; the media go beside it)."""
    if not isinstance(template, PromptTemplate):
        template = load_template(template)
    return template.render(record.problem, record.problem_type, record.options)
