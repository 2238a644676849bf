"""Checking a record file before training: every bad record reported with its id and reasons.

Checks, per record: the schema of its kind (types, allowed values, answer tags, lettered options,
the answer letter among the options, think tags for CoT); a numerical or regression answer that
the reward can parse; the media file under the media root: present, or (default) opened: a video
probed (container, video stream, geometry, at least 2 frames), an image fully decoded. Each media
file is checked once however many records share it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videor1.data.loading import default_media_root, read_raw, resolve_media
from videor1.data.records import RECORD_KINDS, Record, RecordError, parse_record
from videor1.rewards import parse_number

Kind = Literal["auto", "train", "cot", "eval"]
MediaCheck = Literal["open", "exists", "none"]


@dataclass
class BadRecord:
    index: int
    problem_id: Any
    reasons: list[str]
    raw: Any

    def describe(self) -> str:
        return f"record #{self.index} (problem_id={self.problem_id!r}): {'; '.join(self.reasons)}"

    def to_json(self, source: str) -> dict:
        return {"source": source, "index": self.index, "problem_id": self.problem_id,
                "reasons": self.reasons, "record": self.raw}


@dataclass
class ValidationReport:
    source: str
    kind: str
    media_root: Path | None
    good: list[Record] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    # (data_source, problem_type, data_type) -> [good, bad]
    groups: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    duplicate_ids: list[Any] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)

    def write_bad(self, path: str | Path) -> None:
        """The bad records, one JSON object per line, with their reasons."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for bad in self.bad:
                out.write(json.dumps(bad.to_json(self.source), ensure_ascii=False, default=str) + "\n")


def guess_kind(rows: list[Any]) -> str:
    """`cot` when every record carries a `process`; `eval` when records have no `data_source`
    (benchmark files); else `train`."""
    dicts = [row for row in rows if isinstance(row, dict)]
    if dicts and all(row.get("process") for row in dicts):
        return "cot"
    if dicts and all("data_source" not in row for row in dicts):
        return "eval"
    return "train"


def _media_problem(path: Path, data_type: str, check: MediaCheck) -> str | None:
    from videor1.media import MediaError, TooFewFrames, probe_video, read_image

    if not path.is_file():
        return f"path: media file not found: {path}"
    if path.stat().st_size == 0:
        return f"path: media file is empty: {path}"
    if check != "open":
        return None
    try:
        if data_type == "video":
            info = probe_video(path)
            if info.total_frames < 2:
                raise TooFewFrames(path, f"{info.total_frames} frame(s); at least 2 are needed")
        else:
            read_image(path)
    except MediaError as error:
        return f"path: {type(error).__name__}: {error}"
    return None


def _content_problems(record: Record, media_root: Path | None, check: MediaCheck,
                      seen: dict[tuple[Path, str], str | None]) -> list[str]:
    reasons = []
    if record.problem_type in ("numerical", "regression") and parse_number(record.answer) is None:
        reasons.append(f"solution: {record.answer!r} is not a number the {record.problem_type} reward can read")
    if check != "none":
        try:
            media = resolve_media(record, media_root)
        except ValueError as error:
            reasons.append(f"path: {error}")
        else:
            key = (media, record.data_type)
            if key not in seen:
                seen[key] = _media_problem(media, record.data_type, check)
            if seen[key]:
                reasons.append(seen[key])
    return reasons


def _group_key(raw: Any) -> tuple[str, str, str]:
    get = raw.get if isinstance(raw, dict) else (lambda key: None)
    return tuple(str(get(key)) if get(key) is not None else "?" for key in ("data_source", "problem_type", "data_type"))


def validate_records(
    source: str | Path | Iterable[dict],
    kind: Kind = "auto",
    media_root: str | Path | None = None,
    check_media: MediaCheck = "open",
    split: str | None = None,
) -> ValidationReport:
    """Check every record of `source`; nothing stops at the first error."""
    rows = read_raw(source, split)
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    kind = guess_kind(rows) if kind == "auto" else kind
    root = Path(media_root).resolve() if media_root is not None else default_media_root(source)
    report = ValidationReport(source=name, kind=kind, media_root=root)
    seen: Counter = Counter()
    media_checked: dict[tuple[Path, str], str | None] = {}
    for index, raw in enumerate(rows):
        key = _group_key(raw)
        try:
            record = parse_record(raw, RECORD_KINDS[kind], name, index)
            reasons = _content_problems(record, root, check_media, media_checked)
            problem_id = record.problem_id
        except RecordError as error:
            record, reasons, problem_id = None, error.reasons, error.problem_id
        counts = report.groups.setdefault(key, [0, 0])
        if reasons:
            report.bad.append(BadRecord(index, problem_id, reasons, raw))
            counts[1] += 1
        else:
            report.good.append(record)
            counts[0] += 1
        if problem_id is not None:
            seen[str(problem_id)] += 1
    report.duplicate_ids = sorted(pid for pid, n in seen.items() if n > 1)
    return report
