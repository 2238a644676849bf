"""Importers: official benchmark annotations → Video-R1 evaluation records (`EvalRecord`).

Every record is validated. A row that cannot become a record goes to `ImportResult.skipped` with
its id and the reason, never guessed; rows outside the subset we evaluate (MMVU's open-ended
questions, MVBench's frame-folder task, …) are only counted, by reason, in `left_out`. Paths are
relative to the media root given at evaluation time. docs/benchmarks.md has the full field maps.

Formats, as published (read from these files; the code is ours):
- VSI-Bench: HF nyu-visionx/VSI-Bench (test parquet); fields and video layout as in lmms-eval
  `lmms_eval/tasks/vsibench/utils.py` (EvolvingLMMs-Lab/lmms-eval).
- Video-MME: HF lmms-lab/Video-MME `videomme/test-*.parquet` (dataset card); videos `data/{videoID}.mp4`
  as in lmms-eval `tasks/videomme`.
- MVBench: HF OpenGVLab/MVBench `json/<task>.json` with videos under `video/`; task → folder map of
  OpenGVLab/Ask-Anything `video_chat2/mvbench.ipynb` (`data_list`).
- TempCompass: llyx97/TempCompass `questions/multi-choice.json` and its `run_qwen2_vl.py`
  (videos `videos/{video_id}.mp4`); or HF lmms-lab/TempCompass multi-choice rows (video_id, dim,
  question, answer), lmms-eval `tasks/tempcompass/utils.py`.
- VideoMMMU: HF lmms-lab/VideoMMMU, `{Perception,Comprehension,Adaptation}/test-*.parquet` (dataset
  card: id, question, options, answer, question_type; later also link_selected, image) and
  `{Art,Business,Engineering,Humanities,Medicine,Science}.zip`; subject → folder map and
  `{id}.mp4` from lmms-eval `tasks/videommmu/utils.py`; also the GitHub videommmu/VideoMMMU
  `data/<track>_video.json` ({track: {index: row}}).
- MMVU: yale-nlp/MMVU `data/validation.json` (README "Dataset Example Feature": id, video,
  youtube_url, question_type, metadata.subject, question, choices, answer); lmms-lab/MMVU rows
  with `video_path`; subject → discipline map of lmms-eval `tasks/mmvu/utils.py`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videor1.data.loading import BadLine, DataFileError, read_raw
from videor1.data.records import EvalRecord, RecordError, parse_record
from videor1.eval.benchmarks import VSI_CHOICE_TASKS

_LETTERED = re.compile(r"^\s*\(?([A-Za-z])[.)]\s*(.*?)\s*$", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?")

# MVBench task file -> (video folder under `video/`, given as frame folders)
MVBENCH_TASKS: dict[str, tuple[str, bool]] = {
    "action_sequence": ("star/Charades_v1_480", False), "action_prediction": ("star/Charades_v1_480", False),
    "action_antonym": ("ssv2_video", False), "fine_grained_action": ("Moments_in_Time_Raw/videos", False),
    "unexpected_action": ("FunQA_test/test", False), "object_existence": ("clevrer/video_validation", False),
    "object_interaction": ("star/Charades_v1_480", False), "object_shuffle": ("perception/videos", False),
    "moving_direction": ("clevrer/video_validation", False), "action_localization": ("sta/sta_video", False),
    "scene_transition": ("scene_qa/video", False), "action_count": ("perception/videos", False),
    "moving_count": ("clevrer/video_validation", False),
    "moving_attribute": ("clevrer/video_validation", False), "state_change": ("perception/videos", False),
    "fine_grained_pose": ("nturgbd", False), "character_order": ("perception/videos", False),
    "egocentric_navigation": ("vlnqa", False), "episodic_reasoning": ("tvqa/frames_fps3_hq", True),
    "counterfactual_inference": ("clevrer/video_validation", False),
}
VIDEOMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")
# VideoMMMU subject (the middle of an id like "validation_Computer_Science_12") -> video folder
VIDEOMMMU_FOLDERS: dict[str, str] = {subject: folder for folder, subjects in {
    "Art": ("Art", "Art_Theory", "Design", "Music"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Humanities": ("History", "Literature", "Sociology", "Psychology"),
    "Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                    "Energy_and_Power", "Materials", "Mechanical_Engineering"),
    "Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                 "Pharmacy", "Public_Health"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
}.items() for subject in subjects}
# MMVU subject (spaces as underscores) -> discipline
MMVU_DISCIPLINES: dict[str, str] = {subject: discipline for discipline, subjects in {
    "Science": ("Biology", "Chemistry", "Modern_Physics", "Astronomy", "Geography", "Materials_Science",
                "Neurobiology", "Electromagnetism", "Thermodynamics", "Mechanics"),
    "Engineering": ("Civil_Engineering", "Electrical_Engineering", "Mechanical_Engineering",
                    "Biomedical_Engineering", "Electronics_and_Communication", "Computer_Science"),
    "Healthcare": ("Clinical_Medicine", "Basic_Medicine", "Preventive_Medicine", "Pharmacy", "Dentistry"),
    "Humanities_and_Social_Science": ("Art", "Literature", "History", "Law", "Economics", "Management"),
}.items() for subject in subjects}
# VideoMMMU Adaptation, as lmms-eval says
IMAGE_AT_END = "The image for this question is at the end of the video."


@dataclass
class ImportResult:
    records: list[EvalRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "id: reason": rows that could not become a record
    left_out: Counter = field(default_factory=Counter)  # reason -> rows outside the imported subset


def read_rows(source: str | Path, skipped: list[str] | None = None) -> list[dict]:
    """Rows of a .parquet, .json (list) or .jsonl file, or a saved `datasets` directory.

    A JSONL line that is not JSON goes to `skipped` by its line number; a row that is not an object
    means the file is not the benchmark's (`DataFileError`, naming it).
    """
    path = Path(source)
    if path.suffix == ".parquet":
        import pyarrow  # installed with `datasets`
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pyarrow.ArrowException, OSError) as error:
            raise DataFileError(f"{path}: not a readable parquet file ({error})") from None
    rows = []
    for index, row in enumerate(read_raw(path)):
        if isinstance(row, BadLine):
            if skipped is not None:
                skipped.append(f"{path} {row.describe()}")
            continue
        rows.append(_object(row, path, f"row #{index}"))
    return rows


def _object(value: Any, path: Path, what: str) -> dict:
    """`value` if it is a JSON object, else a `DataFileError`: the file is not in the benchmark's shape."""
    if not isinstance(value, dict):
        raise DataFileError(f"{path}: {what} is a {type(value).__name__}, not an object: not the benchmark's "
                            "format (docs/benchmarks.md)")
    return value


def _json_file(path: Path) -> Any:
    """A whole .json file (any top-level shape), with the errors of `read_raw`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path}: not valid JSON ({error})") from None


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).casefold()


def lettered(options: Iterable[str]) -> list[str]:
    """Options as "A. text": kept when they are already lettered A, B, C, … in order, else lettered by
    position. Only the consistent sequence counts as labels: ten options that all begin "R. L at point
    C = …" (R.L, a surveyor's reduced level) are texts, not options labelled R."""
    if isinstance(options, (str, bytes, dict)) or not isinstance(options, Iterable):
        raise ValueError(f"options must be a list, got {type(options).__name__}: {str(options)[:80]!r}")
    options = [str(o).strip() for o in options]
    matches = [_LETTERED.match(o) for o in options]
    in_order = [chr(ord("A") + i) for i in range(len(options))]
    if all(matches) and [m.group(1).upper() for m in matches] == in_order:
        return [f"{m.group(1).upper()}. {m.group(2)}" for m in matches]
    return [f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options)]


def answer_letter(answer: Any, options: list[str]) -> str | None:
    """The letter of `answer` among lettered options: a letter ("B", "(B)", "B. text") or an option's text."""
    text = str(answer).strip()
    letters = {o[0]: o[3:].strip() for o in options}
    if (m := _LETTERED.match(text)) and (letter := m.group(1).upper()) in letters:
        if not m.group(2) or _norm(m.group(2)) == _norm(letters[letter]):
            return letter
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    return text_letter(text, options)


def text_letter(answer: Any, options: list[str]) -> str | None:
    """The letter of the one lettered option whose text is `answer` (case and spacing ignored)."""
    same = [o[0] for o in options if _norm(o[3:]) == _norm(answer)]
    return same[0] if len(same) == 1 else None


def is_number(text: Any) -> bool:
    return bool(_NUMBER.fullmatch(str(text).strip()))


class _Builder:
    """Collects validated records, and the rows that could not become one with the reason."""

    def __init__(self, source: str | Path):
        self.result, self.source = ImportResult(), str(source)

    def skip(self, pid: Any, reason: str) -> None:
        self.result.skipped.append(f"{pid}: {reason}")

    def add(self, pid: Any, problem: Any, path: str, options: list[str] | None, answer: Any,
            problem_type: str = "multiple choice", **extra: Any) -> None:
        """One record; `answer` is a letter or an option's text (multiple choice), else the value."""
        if answer is None or not str(answer).strip():
            self.skip(pid, "no answer")
            return
        choice = problem_type == "multiple choice"
        solution = answer_letter(answer, options or []) if choice else str(answer).strip()
        if not solution:
            self.skip(pid, f"answer {answer!r} is not one of the options {options}")
            return
        if not choice and not is_number(solution):
            self.skip(pid, f"answer {answer!r} of a {problem_type} item is not a number")
            return
        raw = {"problem_id": pid, "problem": str(problem or "").strip(), "data_type": "video",
               "problem_type": problem_type, "options": options or [],
               "solution": f"<answer>{solution}</answer>", "path": path,
               **{k: v for k, v in extra.items() if v is not None}}
        try:
            self.result.records.append(parse_record(raw, EvalRecord, self.source, len(self.result.records)))
        except RecordError as error:
            self.skip(pid, "; ".join(error.reasons))


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p)


def _missing(row: dict, *names: str) -> str | None:
    """A reason when a field the path or the question needs is empty."""
    empty = [name for name in names if row.get(name) in (None, "")]
    return f"missing {', '.join(empty)}" if empty else None


def import_vsibench(source: str | Path, video_dir: str = "") -> ImportResult:
    """`source`: the test parquet (or JSON / JSONL rows). Numerical tasks become regression (MRA) items."""
    build = _Builder(source)
    for row in read_rows(source, build.result.skipped):
        if reason := _missing(row, "id", "dataset", "scene_name", "question"):
            build.skip(row.get("id"), reason)
            continue
        task = str(row.get("question_type", ""))
        options = lettered(row.get("options") or [])
        choice = task in VSI_CHOICE_TASKS or bool(options)
        build.add(row["id"], row["question"],
                  _join(video_dir, str(row["dataset"]), f"{row['scene_name']}.mp4"),
                  options if choice else [], row.get("ground_truth"),
                  "multiple choice" if choice else "regression", data_source="vsibench",
                  original_question_type=task, dataset=row["dataset"], scene_name=row["scene_name"])
    return build.result


def import_videomme(source: str | Path, video_dir: str = "data") -> ImportResult:
    """`source`: videomme/test-*.parquet (or JSON / JSONL rows)."""
    build = _Builder(source)
    for row in read_rows(source, build.result.skipped):
        if reason := _missing(row, "question_id", "videoID", "question"):
            build.skip(row.get("question_id"), reason)
            continue
        build.add(row["question_id"], row["question"], _join(video_dir, f"{row['videoID']}.mp4"),
                  lettered(row.get("options") or []), row.get("answer"), data_source="videomme",
                  duration=row.get("duration"), domain=row.get("domain"),
                  sub_category=row.get("sub_category"), task_type=row.get("task_type"),
                  video_id=row.get("video_id"))
    return build.result


def import_mvbench(source: str | Path, video_dir: str = "video") -> ImportResult:
    """`source`: MVBench's json/ directory (one file per task). The answer is a candidate's text."""
    build = _Builder(source)
    files = [(task, Path(source) / f"{task}.json") for task in MVBENCH_TASKS]
    if not any(file.exists() for _, file in files):
        raise ValueError(f"{source}: no MVBench task file (action_sequence.json, …); give the json/ "
                         "directory")
    for task, file in files:
        if not file.exists():
            continue
        folder, frames = MVBENCH_TASKS[task]
        rows = _json_file(file)
        if not isinstance(rows, list):
            raise DataFileError(f"{file}: expected a list of questions, got a {type(rows).__name__}")
        rows = [_object(row, file, f"question #{i}") for i, row in enumerate(rows)]
        if frames:
            build.result.left_out[f"{task}: given as frame folders, not videos"] += len(rows)
            continue
        for i, row in enumerate(rows):
            options = lettered(row.get("candidates") or [])
            letter = text_letter(row.get("answer"), options)
            if letter is None:
                build.skip(f"{task}-{i}",
                           f"answer {row.get('answer')!r} is not one of the candidates {options}")
                continue
            bounds = {k: row[k] for k in ("start", "end") if row.get(k) is not None}
            build.add(f"{task}-{i}", row.get("question"), _join(video_dir, folder, str(row.get("video"))),
                      options, letter, data_source="mvbench", task=task, **bounds)
    return build.result


def _tempcompass_items(source: Path, skipped: list[str]) -> Iterator[tuple[str, str, int, dict]]:
    """(video_id, dimension, index within the two, item) from the nested JSON or flat rows."""
    if source.suffix == ".json" and isinstance(data := _json_file(source), dict):
        for video_id, dimensions in data.items():
            for dim, questions in _object(dimensions, source, f"video {video_id!r}").items():
                if not isinstance(questions, list):
                    raise DataFileError(f"{source}: video {video_id!r}, {dim}: expected a list of questions, "
                                        f"got a {type(questions).__name__}")
                for i, item in enumerate(questions):
                    yield str(video_id), str(dim), i, _object(item, source, f"video {video_id!r}, {dim} #{i}")
        return
    seen: Counter = Counter()
    for row in read_rows(source, skipped):
        key = (str(row.get("video_id")), str(row.get("dim")))
        yield key[0], key[1], seen[key], row
        seen[key] += 1


def import_tempcompass(source: str | Path, video_dir: str = "videos") -> ImportResult:
    """`source`: questions/multi-choice.json, or lmms-lab/TempCompass multi-choice rows (parquet / JSONL)."""
    build = _Builder(source)
    for video_id, dim, i, item in _tempcompass_items(Path(source), build.result.skipped):
        lines = str(item.get("question", "")).strip().splitlines()
        split = next((k for k, line in enumerate(lines) if _LETTERED.match(line)), len(lines))
        build.add(f"{video_id}-{dim}-{i}", "\n".join(lines[:split]), _join(video_dir, f"{video_id}.mp4"),
                  lettered(lines[split:]), item.get("answer"), data_source="tempcompass", dim=dim,
                  video_id=video_id)
    return build.result


def _track_of(path: Path) -> str | None:
    """The VideoMMMU track of a file, from its folder or name (Perception/test-….parquet,
    perception_video.json)."""
    named = [t for t in VIDEOMMMU_TRACKS if t.lower() in f"{path.parent.name}/{path.name}".lower()]
    return named[0] if len(named) == 1 else None


def _videommmu_rows(source: Path, skipped: list[str]) -> Iterator[tuple[str, dict]]:
    """(track, row) of a lmms-lab/VideoMMMU download, one track's parquet, or a GitHub <track>_video.json."""
    if source.is_dir():
        files = [f for t in VIDEOMMMU_TRACKS for f in sorted((source / t).glob("*.parquet"))]
        if not files:
            raise ValueError(f"{source}: no Perception/, Comprehension/ or Adaptation/ parquet files "
                             "(the lmms-lab/VideoMMMU layout)")
    else:
        files = [source]
    for file in files:
        if file.suffix == ".json" and isinstance(data := _json_file(file), dict):
            for track, rows in data.items():
                if not isinstance(rows, (dict, list)):
                    raise DataFileError(f"{file}: track {track!r}: expected its questions, got a "
                                        f"{type(rows).__name__}")
                for i, row in enumerate(rows.values() if isinstance(rows, dict) else rows):
                    yield str(track).capitalize(), _object(row, file, f"track {track!r} question #{i}")
            continue
        if (track := _track_of(file)) is None:
            raise ValueError(f"{file}: cannot tell its VideoMMMU track; keep the Perception/, Comprehension/ "
                             "or Adaptation/ folder (or the track in the file name)")
        for row in read_rows(file, skipped):
            yield track, row


def import_videommmu(source: str | Path, video_dir: str = "") -> ImportResult:
    """`source`: the lmms-lab/VideoMMMU directory, one track's parquet, or a GitHub <track>_video.json.

    Multiple-choice items (options given) are imported; open-ended ones become numerical items when
    their answer is a number, else they are left out (no rule-based scorer fits them).
    """
    build = _Builder(source)
    for track, row in _videommmu_rows(Path(source), build.result.skipped):
        vid = str(row.get("id") or "")
        subject = "_".join(vid.split("_")[1:-1])
        pid = f"{track.lower()}-{vid}"
        if reason := _missing(row, "id", "question"):
            build.skip(pid, reason)
            continue
        if subject not in VIDEOMMMU_FOLDERS:
            build.skip(pid, f"subject {subject!r} of the id is not a VideoMMMU subject")
            continue
        options = [str(o) for o in (row.get("options") or []) if str(o).strip()]
        answer, problem_type = row.get("answer"), "multiple choice"
        if not options:
            if not is_number(answer):
                build.result.left_out["open-ended with a non-numeric answer"] += 1
                continue
            problem_type = "numerical"
        question = str(row["question"]).strip()
        if "<image" in question:
            question = f"{IMAGE_AT_END}\n{question}"
        build.add(pid, question, _join(video_dir, VIDEOMMMU_FOLDERS[subject], f"{vid}.mp4"),
                  lettered(options) if options else [], answer, problem_type, data_source="videommmu",
                  track=track, subject=subject, discipline=VIDEOMMMU_FOLDERS[subject], video_id=vid,
                  question_type=row.get("question_type"), link_selected=row.get("link_selected"))
    return build.result


def _mmvu_video(row: dict) -> str | None:
    """The video path inside the dataset: `video_path`, or the part of the `video` URL after resolve/main/."""
    if row.get("video_path"):
        return str(row["video_path"])
    url = str(row.get("video") or "")
    return url.split("/resolve/main/", 1)[1] if "/resolve/main/" in url else None


def import_mmvu(source: str | Path, video_dir: str = "") -> ImportResult:
    """`source`: validation.json (or lmms-lab/MMVU rows). Only the multiple-choice subset is imported."""
    build = _Builder(source)
    for row in read_rows(source, build.result.skipped):
        pid, kind = row.get("id"), row.get("question_type")
        if kind != "multiple-choice":
            build.result.left_out[f"question_type {kind!r} (only multiple-choice is imported)"] += 1
            continue
        choices = row.get("choices")
        choices = json.loads(choices) if isinstance(choices, str) else choices
        if not isinstance(choices, dict):
            build.skip(pid, f"choices is not a letter -> text object: {choices!r}")
            continue
        if (video := _mmvu_video(row)) is None:
            build.skip(pid, f"no video path in video_path or the video URL {row.get('video')!r}")
            continue
        options = [f"{k.strip().upper()}. "
                   f"{str(v).strip()}" for k, v in sorted(choices.items()) if str(v).strip()]
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        subject = str(metadata.get("subject") or row.get("subject") or "").strip()
        build.add(pid, row.get("question"), _join(video_dir, video), options, row.get("answer"),
                  data_source="mmvu",
                  subject=subject or None, discipline=MMVU_DISCIPLINES.get(subject.replace(" ", "_")),
                  youtube_url=(row.get("youtube_url") or "").strip() or None)
    return build.result


IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "vsibench": import_vsibench, "videommmu": import_videommmu, "mmvu": import_mmvu,
    "mvbench": import_mvbench, "tempcompass": import_tempcompass, "videomme": import_videomme,
}
