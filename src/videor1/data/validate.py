"""Checking a record file before training: every bad record reported with its id and reasons.

Checks, per record: the schema of its kind (types, allowed values, answer tags, lettered options,
the answer letter among the options, a numerical or regression answer that the reward can parse,
think tags for CoT), as every command that loads records checks it; a media path that stays inside
the media root once symlinks are resolved (unless `allow_outside_media_root`); the media file:
present, or (default) opened: a video probed (container, video stream, geometry, at least 2 frames)
and decoded at the frames that training and evaluation sample (`videor1.media.open_problem`, passed
in by the caller: media sits above data in the pipeline), an image fully decoded. Each media file is
checked once however many records share it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videor1.data.loading import default_media_root, media_path_problem, parse_row, read_raw, resolve_media
from videor1.data.records import RECORD_KINDS, Record, RecordError

Kind = Literal["auto", "train", "cot", "eval"]
MediaCheck = Literal["open", "exists", "none"]
# (media file, data_type) -> why it cannot be decoded, or None: videor1.media.open_problem.
MediaOpener = Callable[[Path, str], str | None]


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
    videos_opened: int = 0  # distinct video files decoded at their sampled frames, and the seconds it took
    video_seconds: float = 0.0

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


def _media_problem(path: Path, data_type: str, open_media: MediaOpener | None, report: ValidationReport
                   ) -> str | None:
    if not path.is_file():
        return f"path: media file not found: {path}"
    if path.stat().st_size == 0:
        return f"path: media file is empty: {path}"
    if open_media is None:
        return None
    started = time.perf_counter()
    try:
        return open_media(path, data_type)
    finally:
        if data_type == "video":
            report.videos_opened += 1
            report.video_seconds += time.perf_counter() - started


def _content_problems(record: Record, report: ValidationReport, check: MediaCheck, allow_outside: bool,
                      seen: dict[tuple[Path, str], str | None], open_media: MediaOpener | None) -> list[str]:
    if not allow_outside and (problem := media_path_problem(record, report.media_root)):
        return [problem]
    if check == "none":
        return []
    try:
        media = resolve_media(record, report.media_root)
    except ValueError as error:
        return [f"path: {error}"]
    key = (media, record.data_type)
    if key not in seen:
        seen[key] = _media_problem(media, record.data_type, open_media if check == "open" else None, report)
    return [seen[key]] if seen[key] else []


def _group_key(raw: Any) -> tuple[str, str, str]:
    get = raw.get if isinstance(raw, dict) else (lambda key: None)
    return tuple(str(get(key)) if get(key) is not None else "?" for key in ("data_source", "problem_type",
                                                                            "data_type"))


def validate_records(
    source: str | Path | Iterable[dict],
    kind: Kind = "auto",
    media_root: str | Path | None = None,
    check_media: MediaCheck = "open",
    split: str | None = None,
    allow_outside_media_root: bool = False,
    open_media: MediaOpener | None = None,
) -> ValidationReport:
    """Check every record of `source`; nothing stops at the first error (a file that cannot be read
    at all raises `DataFileError`).

    `check_media="open"` opens each media file with `open_media`: the caller passes
    `videor1.media.open_problem` (media sits above data in the pipeline, so data does not import it).
    """
    if check_media == "open" and open_media is None:
        raise ValueError("check_media='open' needs open_media (videor1.media.open_problem); "
                         "or check_media='exists'")
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
            record = parse_row(raw, RECORD_KINDS[kind], name, index)
            reasons = _content_problems(record, report, check_media, allow_outside_media_root, media_checked,
                                        open_media)
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
