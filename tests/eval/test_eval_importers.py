"""Importers: made-up rows in each benchmark's official format -> the Video-R1 records they must become."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videor1.eval import get_benchmark
from videor1.eval.importers import (
    IMPORTERS,
    answer_letter,
    import_mmvu,
    import_mvbench,
    import_tempcompass,
    import_videomme,
    import_videommmu,
    import_vsibench,
    lettered,
)


def parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def dumped(record) -> dict:
    return record.model_dump(mode="json")


def test_every_benchmark_has_an_importer():
    assert sorted(IMPORTERS) == ["mmvu", "mvbench", "tempcompass", "videomme", "videommmu", "vsibench"]


def test_options_are_lettered_and_answers_read_as_letters():
    assert lettered(["red", "blue"]) == ["A. red", "B. blue"]
    assert lettered(["(A) red", "(B) blue"]) == ["A. red", "B. blue"]
    options = lettered(["red", "blue", "green"])
    assert [answer_letter(a, options) for a in ("B", "(c)", "B. blue", "b.  Blue", "Green", "A. blue",
                                                "purple")] == \
        ["B", "C", "B", "B", "C", None, None]


def test_vsibench_rows_become_regression_and_choice_items(tmp_path):
    rows = [
        {"id": 1, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "object_counting",
         "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "4"},
        {"id": 2, "dataset": "arkitscenes", "scene_name": "41069025",
         "question_type": "object_rel_direction_hard",
         "question": "If I am standing by the bed facing the door, is the lamp to my left, right or back?",
         "options": ["A. left", "B. right", "C. back"], "ground_truth": "C"},
        {"id": 3, "dataset": "scannet", "scene_name": "x", "question_type": "route_planning",
         "question": "Go?", "options": ["A. left", "B. right"],
         "ground_truth": "E"},  # not an option: skipped
        {"id": 4, "dataset": "scannet", "scene_name": None, "question_type": "object_counting",
         "question": "How many?", "options": None, "ground_truth": "2"},  # no scene: no video path
        {"id": 5, "dataset": "scannet", "scene_name": "y", "question_type": "room_size_estimation",
         "question": "How big?", "options": None, "ground_truth": "large"},  # a numerical task needs a number
    ]
    result = import_vsibench(parquet(tmp_path / "test.parquet", rows), video_dir="vsi")
    counting, direction = result.records
    assert dumped(counting) == {
        "problem_id": 1, "problem": "How many chair(s) are in this room?", "data_type": "video",
        "problem_type": "regression", "options": [], "solution": "<answer>4</answer>",
        "path": "vsi/scannet/scene0011_00.mp4", "data_source": "vsibench",
        "original_question_type": "object_counting", "dataset": "scannet", "scene_name": "scene0011_00"}
    assert (direction.problem_type, direction.answer) == ("multiple choice", "C")
    vsi = get_benchmark("vsibench")
    assert vsi.category_of(direction) == "object_rel_direction_hard"
    assert vsi.uses_mra(counting) and not vsi.uses_mra(direction)
    assert result.skipped == ["3: answer 'E' is not one of the options ['A. left', 'B. right']",
                              "4: missing scene_name",
                              "5: answer 'large' of a regression item is not a number"]


def test_videomme_keeps_duration_for_the_breakdown(tmp_path):
    row = {"video_id": "001", "duration": "short", "domain": "Knowledge",
           "sub_category": "Humanity & History", "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
           "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Counting Problem",
           "question": "How many people are there?", "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."],
           "answer": "C"}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [record] = import_videomme(path).records
    assert dumped(record) == {
        "problem_id": "001-1", "problem": "How many people are there?", "data_type": "video",
        "problem_type": "multiple choice", "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."],
        "solution": "<answer>C</answer>", "path": "data/fFjv93ACGo8.mp4", "data_source": "videomme",
        "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
        "task_type": "Counting Problem", "video_id": "001"}
    assert get_benchmark("videomme").groups(record) == {"duration": "short", "task_type": "counting_problem",
                                                        "domain": "knowledge"}


def test_mvbench_tasks_map_to_their_video_folders(tmp_path):
    (tmp_path / "action_sequence.json").write_text(json.dumps([
        {"video": "ZS9XR.mp4", "question": "What happened after the person took the food?",
         "candidates": ["Ate the medicine.", "Tidied up the blanket."], "answer": "Tidied up the blanket.",
         "start": 11.1, "end": 19.6}]))
    # a candidate text that is a letter: the answer is read by text ("A" is the second candidate)
    (tmp_path / "object_shuffle.json").write_text(json.dumps([
        {"video": "v.mp4", "question": "Which cup?", "candidates": ["B", "A", "C"], "answer": "A"},
        {"video": "w.mp4", "question": "Which cup?", "candidates": ["B", "A"], "answer": "D"}]))
    (tmp_path / "episodic_reasoning.json").write_text(json.dumps([{"video": "f/1", "question": "q",
                                                                   "candidates": ["a", "b"], "answer": "a"}]))
    result = import_mvbench(tmp_path)
    sequence, shuffle = result.records
    assert dumped(sequence) == {
        "problem_id": "action_sequence-0", "problem": "What happened after the person took the food?",
        "data_type": "video", "problem_type": "multiple choice",
        "options": ["A. Ate the medicine.", "B. Tidied up the blanket."], "solution": "<answer>B</answer>",
        "path": "video/star/Charades_v1_480/ZS9XR.mp4", "data_source": "mvbench", "task": "action_sequence",
        "start": 11.1, "end": 19.6}
    assert (shuffle.path, shuffle.answer) == ("video/perception/videos/v.mp4", "B")
    assert get_benchmark("mvbench").category_of(sequence) == "action_sequence"
    assert result.skipped == ["object_shuffle-1: answer 'D' is not one of the candidates ['A. B', 'B. A']"]
    assert result.left_out == {"episodic_reasoning: given as frame folders, not videos": 1}
    with pytest.raises(ValueError, match="no MVBench task file"):
        import_mvbench(tmp_path / "nowhere")


TEMPCOMPASS = {"1008854609": {"speed": [
    {"question": "What is the speed of the car?\nA. slow\nB. fast\nC. normal", "answer": "B. fast"},
    {"question": "How fast does it go?\nA. slow\nB. fast", "answer": "C. normal"}]}}


def test_tempcompass_multi_choice_questions_are_split_into_problem_and_options(tmp_path):
    path = tmp_path / "multi-choice.json"
    path.write_text(json.dumps(TEMPCOMPASS))
    result = import_tempcompass(path)
    [record] = result.records
    assert dumped(record) == {
        "problem_id": "1008854609-speed-0", "problem": "What is the speed of the car?", "data_type": "video",
        "problem_type": "multiple choice", "options": ["A. slow", "B. fast", "C. normal"],
        "solution": "<answer>B</answer>", "path": "videos/1008854609.mp4", "data_source": "tempcompass",
        "dim": "speed", "video_id": "1008854609"}
    assert get_benchmark("tempcompass").category_of(record) == "speed"
    assert result.skipped == ["1008854609-speed-1: answer 'C. normal' is not one of the options "
                              "['A. slow', 'B. fast']"]


def test_tempcompass_flat_rows_give_the_same_records(tmp_path):
    rows = [{"video_id": vid, "dim": dim, **item} for vid, dims in TEMPCOMPASS.items()
            for dim, items in dims.items() for item in items]
    nested = tmp_path / "multi-choice.json"
    nested.write_text(json.dumps(TEMPCOMPASS))
    flat = import_tempcompass(parquet(tmp_path / "multi-choice" / "test-00000-of-00001.parquet", rows))
    assert [dumped(r) for r in flat.records] == [dumped(r) for r in import_tempcompass(nested).records]


def videommmu_row(vid, question, options, answer, question_type="multiple-choice", **extra):
    return {"id": vid, "question": question, "options": options, "answer": answer,
            "question_type": question_type, "link_selected": "https://www.youtube.com/watch?v=U7YqCUd_ZfA",
            **extra}


def test_videommmu_tracks_and_subject_folders(tmp_path):
    parquet(tmp_path / "Perception" / "test-00000-of-00001.parquet", [
        videommmu_row("dev_Biology_3", "How many carbon atoms do they have?", ["3, 3", "3, 4", "4, 5"], "C"),
        videommmu_row("dev_Astrology_1", "Which sign?", ["a", "b"], "A")])  # not a VideoMMMU subject
    parquet(tmp_path / "Adaptation" / "test-00000-of-00001.parquet", [
        videommmu_row("validation_Computer_Science_12", "Which tree is shown in <image 1>?",
                      ["AVL", "B-tree"], "B"),
        videommmu_row("test_Math_7", "What is x in <image 1>?", [], "2.5", "open-ended"),
        videommmu_row("test_Math_8", "Name the theorem.", [], "Pythagoras", "open-ended")])
    parquet(tmp_path / "Comprehension_Engineering" / "test-00000-of-00001.parquet", [  # not a track: not read
        videommmu_row("dev_Biology_3", "?", ["a", "b"], "A")])
    result = import_videommmu(tmp_path)
    perception, adaptation, numeric = result.records
    assert dumped(perception) == {
        "problem_id": "perception-dev_Biology_3", "problem": "How many carbon atoms do they have?",
        "data_type": "video", "problem_type": "multiple choice", "options": ["A. 3, 3", "B. 3, 4", "C. 4, 5"],
        "solution": "<answer>C</answer>", "path": "Science/dev_Biology_3.mp4", "data_source": "videommmu",
        "track": "Perception", "subject": "Biology", "discipline": "Science", "video_id": "dev_Biology_3",
        "question_type": "multiple-choice", "link_selected": "https://www.youtube.com/watch?v=U7YqCUd_ZfA"}
    assert adaptation.problem == ("The image for this question is at the end of the video.\n"
                                  "Which tree is shown in <image 1>?")
    assert (adaptation.path, adaptation.answer) == ("Engineering/validation_Computer_Science_12.mp4", "B")
    assert (numeric.problem_type, numeric.answer, numeric.options) == ("numerical", "2.5", [])
    bench = get_benchmark("videommmu")
    assert bench.groups(adaptation) == {"track": "adaptation", "discipline": "engineering"}
    assert result.skipped == ["perception-dev_Astrology_1: subject 'Astrology' of the id is not a VideoMMMU "
                              "subject"]
    assert result.left_out == {"open-ended with a non-numeric answer": 1}


def test_videommmu_options_that_begin_like_labels_are_texts_unless_lettered_a_b_c(tmp_path):
    # The official surveying item: ten options that all begin "R. L at point C = …" (R.L: reduced level).
    texts = [f"R. L at point C = {100 + k}.{k}5 m" for k in range(10)]
    assert lettered(texts) == [f"{chr(ord('A') + k)}. {text}" for k, text in enumerate(texts)]
    assert lettered(["B. x", "A. y"]) == ["A. B. x", "B. A. y"]  # out of order: texts too
    assert lettered(["A. x", "B. y", "C. z"]) == ["A. x", "B. y", "C. z"]
    github = tmp_path / "adaptation_video.json"
    github.write_text(json.dumps({"Adaptation": [videommmu_row("test_Mechanical_Engineering_5",
                                                               "What is the R.L of point C?", texts, "D")]}))
    [record] = import_videommmu(github).records
    assert record.answer == "D" and record.options[3] == f"D. {texts[3]}"
    # an answer given as the option's text finds its letter too
    github.write_text(json.dumps({"Adaptation": [videommmu_row("test_Mechanical_Engineering_5", "?", texts,
                                                               texts[7])]}))
    assert import_videommmu(github).records[0].answer == "H"


def test_files_of_the_wrong_shape_are_one_clear_error_naming_the_file(tmp_path):
    from videor1.data import DataFileError

    numbers = tmp_path / "rows.json"
    numbers.write_text("[1, 2, 3]")
    with pytest.raises(DataFileError, match=r"rows\.json: row #0 is a int, not an object"):
        import_videomme(numbers)
    nested = tmp_path / "multi-choice.json"
    nested.write_text(json.dumps({"video1": ["not", "a", "dict"]}))
    with pytest.raises(DataFileError, match=r"multi-choice\.json: video 'video1' is a list, not an object"):
        import_tempcompass(nested)
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "action_sequence.json").write_text('{"question": "?"}')
    with pytest.raises(DataFileError, match=r"action_sequence\.json: expected a list of questions, got a"):
        import_mvbench(tmp_path / "json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"question_id": "caf\xe9"}]')
    with pytest.raises(DataFileError, match=r"latin\.json: not UTF-8"):
        import_videomme(latin)


def test_videommmu_github_json_and_single_track_files(tmp_path):
    github = tmp_path / "perception_video.json"
    github.write_text(json.dumps({"Perception": {"0": {
        "id": "dev_Biology_3", "link_selected": "https://www.youtube.com/watch?v=U7YqCUd_ZfA",
        "question": "How many carbon atoms do they have?", "options": ["3, 3", "3, 4", "4, 5"],
        "answer": "C"}}}))
    [record] = import_videommmu(github, video_dir="VideoMMMU").records
    assert (record.problem_id, record.path, record.answer, record.track) == (
        "perception-dev_Biology_3", "VideoMMMU/Science/dev_Biology_3.mp4", "C", "Perception")
    one = parquet(tmp_path / "Comprehension" / "test-00000-of-00001.parquet",
                  [videommmu_row("test_Art_1", "Which style?", ["baroque", "gothic"], "A")])
    assert import_videommmu(one).records[0].track == "Comprehension"
    with pytest.raises(ValueError, match="cannot tell its VideoMMMU track"):
        import_videommmu(parquet(tmp_path / "rows.parquet",
                                 [videommmu_row("test_Art_1", "?", ["a", "b"], "A")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Perception/, Comprehension/ or Adaptation/"):
        import_videommmu(tmp_path / "empty")


def mmvu_row(i, question_type, subject, choices, answer, **extra):
    folder = subject.replace(" ", "_")
    return {"id": f"validation_{i}",
            "video": f"https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/"
            f"{folder}/{i}.mp4", "youtube_url": " https://www.youtube.com/watch?v=M6XQi8eYYNs",
            "question_type": question_type, "metadata": {"subject": subject, "textbook": "University Physics",
                                                         "knowledge": [], "rationale": "..."},
            "question": "Which process is shown in the animation?", "choices": choices, "answer": answer,
            **extra}


EMPTY = {k: "" for k in "ABCDE"}


def test_mmvu_keeps_the_multiple_choice_subset(tmp_path):
    path = tmp_path / "validation.json"
    path.write_text(json.dumps([
        mmvu_row(3, "multiple-choice", "Thermodynamics",
                 {"A": "Isothermal compression", "B": "Adiabatic compression",
                                                          "C": "Isobaric compression", "D": "", "E": ""},
                                                          "B"),
        mmvu_row(0, "open-ended", "Art", EMPTY, "Dolly Zoom"),
        mmvu_row(2, "open-ended", "Computer Science", EMPTY, "Depth-First Search (DFS)"),
        mmvu_row(5, "multiple-choice", "Materials Science", {**EMPTY, "A": "brittle", "B": "ductile"}, "D"),
    ]))
    result = import_mmvu(path)
    [record] = result.records
    assert dumped(record) == {
        "problem_id": "validation_3", "problem": "Which process is shown in the animation?",
        "data_type": "video", "problem_type": "multiple choice",
        "options": ["A. Isothermal compression", "B. Adiabatic compression", "C. Isobaric compression"],
        "solution": "<answer>B</answer>", "path": "videos/Thermodynamics/3.mp4", "data_source": "mmvu",
        "subject": "Thermodynamics", "discipline": "Science",
        "youtube_url": "https://www.youtube.com/watch?v=M6XQi8eYYNs"}
    assert result.left_out == {"question_type 'open-ended' (only multiple-choice is imported)": 2}
    assert result.skipped == ["validation_5: answer 'D' is not one of the options ['A. brittle', 'B. "
                              "ductile']"]
    assert get_benchmark("mmvu").groups(record) == {"subject": "thermodynamics", "discipline": "science"}


def test_mmvu_lmms_lab_rows_with_video_path_and_choices_as_text(tmp_path):
    row = mmvu_row(8, "multiple-choice", "Computer Science", None, "A",
                   video_path="videos/Computer_Science/8.mp4")
    row.update(video=None, choices=json.dumps({"A": "DFS", "B": "BFS", "C": "", "D": "", "E": ""}))
    [record] = import_mmvu(parquet(tmp_path / "validation.parquet", [row])).records
    assert (record.path, record.options, record.discipline) == ("videos/Computer_Science/8.mp4",
                                                                ["A. DFS", "B. BFS"], "Engineering")


def test_import_bench_command_writes_the_records_and_says_what_it_left_out(tmp_path):
    from typer.testing import CliRunner

    from videor1.cli import app
    from videor1.data import load_records
    from videor1.data.records import EvalRecord

    src = tmp_path / "validation.json"
    src.write_text(json.dumps([mmvu_row(3, "multiple-choice", "Law", {**EMPTY, "A": "tort", "B": "contract"},
                                        "A"),
                               mmvu_row(0, "open-ended", "Art", EMPTY, "Dolly Zoom")]))
    out = tmp_path / "eval_mmvu.json"
    result = CliRunner().invoke(app, ["data", "import-bench", "--bench", "mmvu", "--src", str(src), "--out",
                                      str(out), "--video-dir", "MMVU"])
    assert result.exit_code == 0, result.output
    assert "1 records written" in result.output
    assert ("left out by design: 1 (question_type 'open-ended' (only multiple-choice is imported))"
            in result.output)
    [record] = load_records(out, kind=EvalRecord).records
    assert (record.path, record.discipline) == ("MMVU/videos/Law/3.mp4", "Humanities_and_Social_Science")
