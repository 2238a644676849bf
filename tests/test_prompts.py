"""Question templates: the released Video-R1 wording, the plain preset, custom files."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import image_record, video_record

from videor1.data import Record
from videor1.prompts import PLAIN, PRESETS, build_question, load_template
from videor1.rewards import PROBLEM_TYPES

REASONING = (
    "Please think about this question as if you were a human pondering deeply. Engage in an internal "
    "dialogue using expressions such as 'let me think', 'wait', 'Hmm', 'oh, I see', 'let's break it down', "
    "etc, or other natural language thought expressions It's encouraged to include self-reflection or "
    "verification in the reasoning process. Provide your detailed reasoning between the <think> </think> "
    "tags, and then give your final answer between the <answer> </answer> tags."
)


def test_video_r1_multiple_choice_matches_the_released_wording():
    record = Record.model_validate(video_record(1))
    expected = (
        "Which direction does the red square move?Options:\nA. left\nB. right\nC. up\nD. down\n\n"
        + REASONING
        + " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> "
          "</answer> tags."
    )
    assert build_question(record) == expected


@pytest.mark.parametrize(
    ("problem_type", "instruction"),
    [
        ("numerical", "Please provide the numerical value (e.g., 42 or 3.14)"),
        ("regression", "Please provide the numerical value (e.g., 42 or 3.14)"),
        ("OCR", "Please transcribe text from the image/video clearly and provide your text answer"),
        ("free-form", "Please provide your text answer"),
    ],
)
def test_each_problem_type_gets_its_answer_instruction_and_no_options(problem_type, instruction):
    record = Record.model_validate(image_record(1, problem_type=problem_type, solution="<answer>3</answer>"))
    text = build_question(record, "video-r1")
    assert text.startswith("How many circles are in the image?\n" + REASONING)
    assert text.endswith(instruction + " within the <answer> </answer> tags.")
    assert "Options:" not in text


def test_plain_preset_has_no_reasoning_instruction():
    text = build_question(Record.model_validate(video_record(1)), "plain")
    assert text == (
        "Which direction does the red square move?\nOptions:\nA. left\nB. right\nC. up\nD. down\n"
        "Answer with the option's letter only."
    )
    assert "<think>" not in text
    assert set(PRESETS) == {"video-r1", "video-r1-eval", "plain"}


def test_custom_template_from_file(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "body: 'Q: {question}'\n"
        "options_header: ' | '\n"
        "option_line: '{option}; '\n"
        "type_instructions:\n"
        "  multiple choice: ' -> letter'\n  numerical: ' -> number'\n  OCR: ' -> text'\n"
        "  free-form: ' -> words'\n  regression: ' -> number'\n"
    )
    template = load_template(path)
    assert template.name == "mine"
    text = build_question(Record.model_validate(video_record(1)), template)
    assert text == ("Q: Which direction does the red square move? | A. left; B. right; C. up; D. down;  "
                    "-> letter")


def test_a_template_overrides_some_instructions_and_takes_the_problem_types_own_for_the_rest(tmp_path: Path):
    path = tmp_path / "half.yaml"
    path.write_text("body: '{question}'\nanswer_style: plain\ntype_instructions: {numerical: ' n'}\n")
    template = load_template(path)
    assert template.instruction("numerical") == " n"
    assert template.instruction("OCR") == PROBLEM_TYPES["OCR"].plain_instruction == PLAIN.instruction("OCR")
    assert PRESETS["video-r1"].instruction("OCR") == PROBLEM_TYPES["OCR"].instruction


def test_unknown_templates_and_problem_types_are_clear_errors(tmp_path: Path):
    path = tmp_path / "typo.yaml"
    path.write_text("body: '{question}'\ntype_instructions: {numeric: ' n'}\n")
    with pytest.raises(ValueError, match="unknown problem types: numeric"):
        load_template(path)
    with pytest.raises(ValueError, match="unknown prompt template 'video-r2'"):
        load_template("video-r2")


def test_eval_preset_is_the_released_evaluation_wording():
    text = build_question(Record.model_validate(video_record(1)), "video-r1-eval")
    assert ("between the <think> and </think> tags, and then give your final answer between the <answer> "
            "and </answer> tags. Please provide only the single option letter") in text
    assert text.replace("<think> and </think>", "<think> </think>").replace(
        "<answer> and </answer> tags.", "<answer> </answer> tags.", 1) == build_question(
        Record.model_validate(video_record(1)), "video-r1")


def test_templates_with_stray_braces_are_refused_at_load(tmp_path: Path):
    path = tmp_path / "json.yaml"
    instructions = "".join(f"  {t}: ' x'\n" for t in ("multiple choice", "numerical", "OCR", "free-form",
                                                      "regression"))
    path.write_text('body: "{question} answer as {\\"a\\": 1}"\ntype_instructions:\n' + instructions)
    with pytest.raises(ValueError, match="body may use only the field"):
        load_template(path)
