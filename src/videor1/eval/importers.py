"""Importers: official benchmark annotations → Video-R1 evaluation records (`EvalRecord`).

Written from the public releases' formats as we know them; the assumed fields are listed per
importer. Every record is validated; one that does not fit is reported in `skipped` with its
reason, never guessed. Paths are relative to the media root given at evaluation time.

- VSI-Bench (nyu-visionx/VSI-Bench, test split; parquet / JSON / JSONL rows): id, dataset,
  scene_name, question_type, question, options (["A. text", …] or null), ground_truth (letter or
  number). Video: {video_dir}/{dataset}/{scene_name}.mp4. Numerical tasks become `regression`
  items (scored with MRA, as the Video-R1 files do); the task goes to `original_question_type`.
- Video-MME (lmms-lab/Video-MME, test parquet): video_id, duration, domain, sub_category, videoID,
  question_id, task_type, question, options (["A. text", …]), answer (letter).
  Video: {video_dir}/{videoID}.mp4 (the release unpacks to data/).
- MVBench (OpenGVLab/MVBench, json/<task>.json): lists of {video, question, candidates, answer
  (candidate text), start?, end?}. Video: {video_dir}/<the official folder of the task>/<video>.
  Tasks given as frame folders (episodic_reasoning) are skipped; start / end (seconds) are kept as
  fields but not yet used when sampling (the media loader reads whole videos).
- TempCompass (multi-choice.json): {video_id: {dimension: [{question: "Q\\nA. …\\nB. …", answer:
  "A. …"}]}}. Video: {video_dir}/{video_id}.mp4.

Not done: VideoMMMU and MMVU (their official fields are not known well enough here to write them
without the files at hand).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videor1.data.loading import read_raw
from videor1.data.records import EvalRecord, RecordError, parse_record
from videor1.eval.benchmarks import VSI_CHOICE_TASKS

_LETTERED = re.compile(r"^\s*\(?([A-Za-z])[.)]\s*(.*?)\s*$", re.DOTALL)

# MVBench task file -> (video folder under the media root, given as frame folders)
MVBENCH_TASKS: dict[str, tuple[str, bool]] = {
    "action_sequence": ("star/Charades_v1_480", False), "action_prediction": ("star/Charades_v1_480", False),
    "action_antonym": ("ssv2_video", False), "fine_grained_action": ("Moments_in_Time_Raw/videos", False),
    "unexpected_action": ("FunQA_test/test", False), "object_existence": ("clevrer/video_validation", False),
    "object_interaction": ("star/Charades_v1_480", False), "object_shuffle": ("perception/videos", False),
    "moving_direction": ("clevrer/video_validation", False), "action_localization": ("sta/sta_video", False),
    "scene_transition": ("scene_qa/video", False), "action_count": ("perception/videos", False),
    "moving_count": ("clevrer/video_validation", False), "moving_attribute": ("clevrer/video_validation", False),
    "state_change": ("perception/videos", False), "fine_grained_pose": ("nturgbd", False),
    "character_order": ("perception/videos", False), "egocentric_navigation": ("vlnqa", False),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", True),
    "counterfactual_inference": ("clevrer/video_validation", False),
}


@dataclass
class ImportResult:
    records: list[EvalRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "id: reason"


def read_rows(source: str | Path) -> list[dict]:
    """Rows of a .parquet, .json (list) or .jsonl file, or a saved `datasets` directory."""
    path = Path(source)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # installed with `datasets`

        return pq.read_table(path).to_pylist()
    return [row for row in read_raw(path) if isinstance(row, dict)]


def lettered(options: Iterable[str]) -> list[str]:
    """Options as "A. text": kept when every one is already lettered, else lettered by position."""
    options = [str(o).strip() for o in options]
    matches = [_LETTERED.match(o) for o in options]
    if all(matches):
        return [f"{m.group(1).upper()}. {m.group(2)}" for m in matches]
    return [f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options)]


def answer_letter(answer: Any, options: list[str]) -> str | None:
    """The letter of `answer` among lettered options: a letter ("B", "(B)", "B. text") or an option's text."""
    text = str(answer).strip()
    letters = {o[0]: o[3:].strip() for o in options}
    if (m := _LETTERED.match(text)) and (letter := m.group(1).upper()) in letters:
        if not m.group(2) or m.group(2) == letters[letter]:
            return letter
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    same = [k for k, v in letters.items() if v.casefold() == text.casefold()]
    return same[0] if len(same) == 1 else None


class _Builder:
    """Collects validated records, and the rows that could not become one with the reason."""

    def __init__(self, source: str):
        self.result, self.source = ImportResult(), source

    def add(self, pid: Any, problem: Any, path: str, options: list[str] | None, answer: Any,
            problem_type: str = "multiple choice", **extra: Any) -> None:
        solution = answer_letter(answer, options or []) if problem_type == "multiple choice" else str(answer).strip()
        if not solution:
            self.result.skipped.append(f"{pid}: answer {answer!r} is not one of the options {options}")
            return
        raw = {"problem_id": pid, "problem": str(problem or "").strip(), "data_type": "video",
               "problem_type": problem_type, "options": options or [], "solution": f"<answer>{solution}</answer>",
               "path": path, **extra}
        try:
            self.result.records.append(parse_record(raw, EvalRecord, self.source, len(self.result.records)))
        except RecordError as error:
            self.result.skipped.append(f"{pid}: {'; '.join(error.reasons)}")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p)


def import_vsibench(source: str | Path, video_dir: str = "") -> ImportResult:
    build = _Builder(str(source))
    for row in read_rows(source):
        task = str(row.get("question_type", ""))
        options = lettered(row.get("options") or [])
        choice = task in VSI_CHOICE_TASKS or bool(options)
        build.add(row.get("id"), row.get("question"), _join(video_dir, str(row.get("dataset")),
                                                            f"{row.get('scene_name')}.mp4"),
                  options if choice else [], row.get("ground_truth"),
                  "multiple choice" if choice else "regression", data_source="vsibench",
                  original_question_type=task, dataset=row.get("dataset"), scene_name=row.get("scene_name"))
    return build.result


def import_videomme(source: str | Path, video_dir: str = "data") -> ImportResult:
    build = _Builder(str(source))
    for row in read_rows(source):
        build.add(row.get("question_id"), row.get("question"), _join(video_dir, f"{row.get('videoID')}.mp4"),
                  lettered(row.get("options") or []), row.get("answer"), data_source="videomme",
                  duration=row.get("duration"), domain=row.get("domain"), sub_category=row.get("sub_category"),
                  task_type=row.get("task_type"), video_id=row.get("video_id"))
    return build.result


def import_mvbench(source: str | Path, video_dir: str = "video") -> ImportResult:
    """`source`: MVBench's json/ directory (one file per task)."""
    build = _Builder(str(source))
    for task, (folder, frames) in MVBENCH_TASKS.items():
        file = Path(source) / f"{task}.json"
        if not file.exists():
            continue
        rows = json.loads(file.read_text(encoding="utf-8"))
        if frames:
            build.result.skipped.append(f"{task}: {len(rows)} items given as frame folders, not supported")
            continue
        for i, row in enumerate(rows):
            bounds = {k: row[k] for k in ("start", "end") if row.get(k) is not None}
            build.add(f"{task}-{i}", row.get("question"), _join(video_dir, folder, str(row.get("video"))),
                      lettered(row.get("candidates") or []), row.get("answer"), data_source="mvbench", task=task,
                      **bounds)
    return build.result


def import_tempcompass(source: str | Path, video_dir: str = "videos") -> ImportResult:
    """`source`: TempCompass's multi-choice.json."""
    build = _Builder(str(source))
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    for video_id, dimensions in data.items():
        for dim, questions in dimensions.items():
            for i, item in enumerate(questions):
                lines = str(item.get("question", "")).strip().splitlines()
                split = next((k for k, line in enumerate(lines) if _LETTERED.match(line)), len(lines))
                build.add(f"{video_id}-{dim}-{i}", "\n".join(lines[:split]), _join(video_dir, f"{video_id}.mp4"),
                          lettered(lines[split:]), item.get("answer"), data_source="tempcompass", dim=dim,
                          video_id=video_id)
    return build.result


IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "vsibench": import_vsibench, "videomme": import_videomme, "mvbench": import_mvbench,
    "tempcompass": import_tempcompass,
}
