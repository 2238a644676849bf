"""Record schema (docs/data.md) and loading from .json, .jsonl and `datasets`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from factories import image_record, video_record

from videor1.data import (
    CotRecord,
    DataFileError,
    EvalRecord,
    Record,
    RecordError,
    load_records,
    resolve_media,
    write_records,
)
from videor1.data.records import parse_record


def test_good_records_parse_and_keep_extra_fields():
    raw = video_record(7, task="direction", duration="short")
    record = Record.model_validate(raw)
    assert record.answer == "B"
    assert record.model_dump(mode="json") == raw  # extras written back unchanged
    assert Record.model_validate(image_record("img-1")).problem_id == "img-1"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"problem_type": "yes/no"}, "problem_type"),
        ({"data_type": "audio"}, "data_type"),
        ({"solution": "B"}, "solution"),
        ({"solution": "<answer></answer>"}, "solution"),
        ({"solution": "<answer>B</answer><answer>C</answer>"}, "solution"),
        ({"options": ["left", "right"]}, 'written like "A. text"'),
        ({"options": ["A. left", "A. right"]}, "repeat"),
        ({"solution": "<answer>E</answer>"}, "not one of the option letters ABCD"),
        ({"options": ["A. left"], "solution": "<answer>A</answer>"}, "at least two options"),
        ({"problem": ""}, "problem"),
        ({"path": ""}, "path"),
    ],
)
def test_bad_records_name_file_index_id_and_reason(overrides, reason):
    with pytest.raises(RecordError) as caught:
        parse_record(video_record(42, **overrides), Record, "train.json", 5)
    message = str(caught.value)
    assert message.startswith("train.json record #5 (problem_id=42)")
    assert reason in message


def test_missing_field_and_non_object():
    raw = video_record(1)
    del raw["solution"]
    with pytest.raises(RecordError, match="solution: Field required"):
        parse_record(raw, Record, "f.json", 0)
    with pytest.raises(RecordError, match="expected a JSON object, got list"):
        parse_record([1, 2], Record, "f.json", 3)


def test_cot_and_eval_records():
    cot = CotRecord.model_validate(video_record(1, process="<think>t1 left, t4 right, so right</think>"))
    assert cot.target == "<think>t1 left, t4 right, so right</think><answer>B</answer>"
    with pytest.raises(RecordError, match="process"):
        parse_record(video_record(1), CotRecord, "cot.json", 0)
    with pytest.raises(RecordError, match="think"):
        parse_record(video_record(1, process="no tags"), CotRecord, "cot.json", 0)
    raw = video_record(1, category="temporal")
    del raw["data_source"]
    item = EvalRecord.model_validate(raw)
    assert item.data_source == "" and item.model_extra == {"category": "temporal"}


def test_load_json_jsonl_and_datasets_agree(tmp_path: Path):
    import datasets

    rows = [video_record(1), image_record(2), video_record(3, solution="<answer>Z</answer>")]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "a_hf"))
    results = [load_records(tmp_path / name) for name in ("a.json", "a.jsonl", "a_hf")]
    results.append(load_records(datasets.Dataset.from_list(rows), media_root=tmp_path))
    for result in results:
        assert [r.problem_id for r in result.records] == [1, 2]
        assert len(result.bad) == 1 and result.bad[0].index == 2 and result.bad[0].problem_id == 3
    with pytest.raises(RecordError, match="record #2"):
        load_records(tmp_path / "a.json", strict=True)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", "{not json", "not valid JSON"),
        ("x.json", '{"problem_id": 1}', "expected a JSON list"),
        ("x.jsonl", "{oops\n[1,\n", "not JSON Lines"),
        ("x.json", "[]", "no records"),
        ("x.jsonl", "\n\n", "no records"),
        ("x.json", b'[{"problem": "caf\xe9"}]', "not UTF-8"),
        ("x.csv", "a,b", "unknown data format"),
    ],
)
def test_unreadable_files(tmp_path: Path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFileError, match=message) as raised:
        load_records(path)
    assert str(raised.value).startswith(f"{path}: ")  # one line naming the file
    with pytest.raises(DataFileError, match="no such file"):
        load_records(tmp_path / "absent.json")


def test_a_jsonl_line_that_is_not_json_is_one_bad_record_named_by_its_line(tmp_path: Path, mixed_file: Path):
    rows = json.loads(mixed_file.read_text())[:2]
    lines = [json.dumps(rows[0]), "", '{"problem_id": 9, "oops', json.dumps(rows[1])]
    (mixed_file.parent / "x.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load_records(mixed_file.parent / "x.jsonl")
    assert [r.problem_id for r in loaded.records] == [1, 2]
    [bad] = loaded.bad
    assert bad.index == 1 and "line 3: not valid JSON" in str(bad)
    assert str(bad).startswith(f"{mixed_file.parent}")  # names the file


def test_media_paths_resolve_against_the_media_root_never_the_cwd(tmp_path: Path, mixed_file: Path,
                                                                  monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = load_records(mixed_file)
    assert result.media_root == mixed_file.parent  # default: the data file's directory
    video = result.records[0]
    assert resolve_media(video, result.media_root) == mixed_file.parent / "videos" / "clip.mp4"
    assert resolve_media(video, tmp_path / "other") == tmp_path / "other" / "videos" / "clip.mp4"
    absolute = Record.model_validate(video_record(9, path=str(tmp_path / "abs.mp4")))
    assert resolve_media(absolute, tmp_path / "other") == tmp_path / "abs.mp4"
    with pytest.raises(ValueError, match="needs a media root"):
        resolve_media(video, None)
    assert Path(os.getcwd()) == elsewhere


def test_write_records_round_trips(tmp_path: Path):
    records = [Record.model_validate(video_record(1, extra_field=[1, 2])), image_record(2)]
    for name in ("out.json", "out.jsonl"):
        write_records(records, tmp_path / name)
        loaded = load_records(tmp_path / name)
        assert [r.model_dump(mode="json") for r in loaded.records] == [video_record(1, extra_field=[1, 2]),
                                                                       image_record(2)]


def test_stray_closing_tags_are_rejected():
    for overrides in ({"solution": "<answer>B</answer></answer>"},
                      {"process": "<think>a</think></think>"}):
        kind = CotRecord if "process" in overrides else Record
        with pytest.raises(RecordError):
            parse_record(video_record(1, **{"process": "<think>x</think>", **overrides}), kind, "f.json", 0)


def test_a_directory_that_is_no_dataset_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DataFileError, match="not a saved `datasets` dataset"):
        load_records(tmp_path)
