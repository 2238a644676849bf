"""Importers from official annotation formats (as assumed in importers.py) into Video-R1 records."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from videor1.eval import get_benchmark
from videor1.eval.importers import (
    answer_letter,
    import_mvbench,
    import_tempcompass,
    import_videomme,
    import_vsibench,
    lettered,
)


def test_options_are_lettered_and_answers_read_as_letters():
    assert lettered(["red", "blue"]) == ["A. red", "B. blue"]
    assert lettered(["(A) red", "(B) blue"]) == ["A. red", "B. blue"]
    options = lettered(["red", "blue", "green"])
    assert [answer_letter(a, options) for a in ("B", "(c)", "B. blue", "Green", "A. blue", "purple")] == \
        ["B", "C", "B", "C", None, None]


def test_vsibench_rows_become_regression_and_choice_items(tmp_path):
    rows = [
        {"id": 1, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "object_counting",
         "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "4"},
        {"id": 2, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_rel_direction_hard",
         "question": "If I am standing by the bed facing the door, is the lamp to my left, right or back?",
         "options": ["A. left", "B. right", "C. back"], "ground_truth": "C"},
        {"id": 3, "dataset": "scannet", "scene_name": "x", "question_type": "route_planning", "question": "Go?",
         "options": ["A. left", "B. right"], "ground_truth": "E"},  # not an option: skipped
    ]
    path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = import_vsibench(path, video_dir="vsi")
    counting, direction = result.records
    assert (counting.problem_type, counting.answer, counting.options) == ("regression", "4", [])
    assert counting.path == "vsi/scannet/scene0011_00.mp4"
    assert (direction.problem_type, direction.answer) == ("multiple choice", "C")
    vsi = get_benchmark("vsibench")
    assert vsi.category_of(direction) == "object_rel_direction_hard"
    assert vsi.uses_mra(counting) and not vsi.uses_mra(direction)
    assert result.skipped == ["3: answer 'E' is not one of the options ['A. left', 'B. right']"]


def test_videomme_keeps_duration_for_the_breakdown(tmp_path):
    row = {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
           "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
           "task_type": "Counting Problem", "question": "How many people are there?",
           "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [record] = import_videomme(path).records
    assert (record.problem_id, record.path, record.answer) == ("001-1", "data/fFjv93ACGo8.mp4", "C")
    assert get_benchmark("videomme").groups(record) == {"duration": "short", "task_type": "counting_problem",
                                                        "domain": "knowledge"}


def test_mvbench_tasks_map_to_their_video_folders(tmp_path):
    (tmp_path / "action_sequence.json").write_text(json.dumps([
        {"video": "ZS9XR.mp4", "question": "What happened after the person took the food?",
         "candidates": ["Ate the medicine.", "Tidied up the blanket."], "answer": "Tidied up the blanket.",
         "start": 11.1, "end": 19.6}]))
    (tmp_path / "episodic_reasoning.json").write_text(json.dumps([{"video": "f/1", "question": "q",
                                                                   "candidates": ["a", "b"], "answer": "a"}]))
    result = import_mvbench(tmp_path)
    [record] = result.records
    assert record.path == "video/star/Charades_v1_480/ZS9XR.mp4" and record.answer == "B"
    assert (record.start, record.end) == (11.1, 19.6)
    assert get_benchmark("mvbench").category_of(record) == "action_sequence"
    assert result.skipped == ["episodic_reasoning: 1 items given as frame folders, not supported"]


def test_tempcompass_multi_choice_questions_are_split_into_problem_and_options(tmp_path):
    path = tmp_path / "multi-choice.json"
    path.write_text(json.dumps({"1008854609": {"speed": [
        {"question": "What is the speed of the car?\nA. slow\nB. fast\nC. normal", "answer": "B. fast"}]}}))
    [record] = import_tempcompass(path).records
    assert (record.problem, record.options, record.answer) == ("What is the speed of the car?",
                                                               ["A. slow", "B. fast", "C. normal"], "B")
    assert record.path == "videos/1008854609.mp4"
    assert get_benchmark("tempcompass").category_of(record) == "speed"
