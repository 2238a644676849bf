"""Reading record files (.json list, .jsonl, Hugging Face datasets) and resolving media paths.

Media paths are resolved against a media root, never against the working directory. When no
root is given, the directory of the data file is the root (Video-R1 ships its JSON files next
to the media folders).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videor1.data.records import Record, RecordError, RecordT, parse_record

log = logging.getLogger(__name__)


class DataFileError(ValueError):
    """A data file that cannot be read at all (missing, not JSON, wrong top-level shape)."""


@dataclass
class LoadResult:
    """Records that parsed, and the ones that did not with their reasons (nothing is dropped silently)."""

    records: list[Record]
    bad: list[RecordError] = field(default_factory=list)
    source: str = ""
    media_root: Path | None = None


def _read_json(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _read_jsonl(path: Path) -> list[Any]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataFileError(f"{path} line {number}: not valid JSON ({error})") from None
    return rows


def _read_hf_dataset(path: Path, split: str | None) -> list[Any]:
    import datasets  # heavy import, only when needed

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise DataFileError(f"{path}: a directory that is not a saved `datasets` dataset ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise DataFileError(f"{path}: a DatasetDict with splits {list(loaded)}; choose one with split=")
            split = next(iter(loaded))
        loaded = loaded[split]
    return [dict(row) for row in loaded]


def read_raw(source: str | Path | Iterable[dict], split: str | None = None) -> list[Any]:
    """The raw JSON objects of a `.json` list, a `.jsonl` file, a saved `datasets` directory, or a
    `datasets.Dataset` (any iterable of dicts)."""
    if not isinstance(source, (str, Path)):
        return [dict(row) for row in source]
    path = Path(source)
    if not path.exists():
        raise DataFileError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_hf_dataset(path, split)
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    if path.suffix == ".json":
        return _read_json(path)
    raise DataFileError(f"{path}: unknown data format (use .json, .jsonl or a saved datasets directory)")


def default_media_root(source: str | Path | Iterable[dict]) -> Path | None:
    """The data file's directory: the root used when none is configured."""
    if isinstance(source, (str, Path)):
        path = Path(source).resolve()
        return path if path.is_dir() else path.parent
    return None


def load_records(
    source: str | Path | Iterable[dict],
    kind: RecordT = Record,
    media_root: str | Path | None = None,
    split: str | None = None,
    strict: bool = False,
) -> LoadResult:
    """Parse every record of `source` as `kind`.

    Bad records are collected in `LoadResult.bad` with their reasons (and logged once as a count),
    or raise the first `RecordError` when `strict`.
    """
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    result = LoadResult(records=[], source=name)
    result.media_root = Path(media_root).resolve() if media_root is not None else default_media_root(source)
    for index, raw in enumerate(read_raw(source, split)):
        try:
            result.records.append(parse_record(raw, kind, name, index))
        except RecordError as error:
            if strict:
                raise
            result.bad.append(error)
    if result.bad:
        log.warning("%s: skipped %d bad record(s) of %d; first: %s", name, len(result.bad),
                    len(result.bad) + len(result.records), result.bad[0])
    return result


def resolve_media(record: Record, media_root: str | Path | None) -> Path:
    """The absolute media path of `record`: absolute paths are kept, relative ones joined to the root."""
    path = Path(record.path).expanduser()
    if path.is_absolute():
        return path
    if media_root is None:
        raise ValueError(f"record {record.label}: relative media path {record.path!r} needs a media root")
    return (Path(media_root) / path).resolve()


def relocated_path(record: Record, media_root: str | Path | None, new_root: str | Path) -> str:
    """The record's media path made relative to `new_root` (a written file's media root), so that the
    record still finds its media from its new file."""
    return os.path.relpath(resolve_media(record, media_root), Path(new_root).resolve())


def write_records(records: Iterable[Record | dict], path: str | Path) -> None:
    """Write records as a JSON list (`.json`) or one object per line (`.jsonl`), extras kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.model_dump(mode="json") if isinstance(r, Record) else r for r in records]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        if path.suffix == ".jsonl":
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        else:
            json.dump(rows, out, ensure_ascii=False, indent=1)
    tmp.replace(path)

