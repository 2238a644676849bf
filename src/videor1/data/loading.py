"""Reading record files (.json list, .jsonl, Hugging Face datasets) and resolving media paths.

Media paths are resolved against a media root, never against the working directory. When no
root is given, the directory of the data file is the root (Video-R1 ships its JSON files next
to the media folders). A record's media must lie inside its root once symlinks are resolved
(`../../etc/passwd`, an absolute path elsewhere, a link pointing out are bad records), unless the
caller opts out with `allow_outside_media_root`: a third-party record file must not make a command
read, or send to an endpoint, any file the user can read.

File-level problems (missing, not UTF-8, not JSON, not a list, no records) raise `DataFileError`
naming the file; a JSONL line that is not JSON is one bad record, named by its line number.
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
    """A data file that cannot be read at all (missing, not JSON, wrong top-level shape, no records)."""


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that is not valid JSON: kept in place of its record, so it is reported as a bad
    record with its line number while the other lines are read."""

    line: int
    reason: str

    def describe(self) -> str:
        return f"line {self.line}: not valid JSON ({self.reason})"


def parse_row(raw: Any, kind: RecordT, source: str, index: int) -> Record:
    """`parse_record` of one row of `read_raw`: a `BadLine` is a `RecordError` naming its line."""
    if isinstance(raw, BadLine):
        raise RecordError(source, index, None, [raw.describe()])
    return parse_record(raw, kind, source, index)


@dataclass
class LoadResult:
    """Records that parsed, and the ones that did not with their reasons (nothing is dropped silently)."""

    records: list[Record]
    bad: list[RecordError] = field(default_factory=list)
    source: str = ""
    media_root: Path | None = None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    except OSError as error:
        raise DataFileError(f"{path}: cannot be read ({error.strerror or error})") from None


def _read_json(path: Path) -> list[Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise DataFileError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _read_jsonl(path: Path) -> list[Any]:
    rows: list[Any] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            rows.append(BadLine(number, str(error)))
        except RecursionError:
            rows.append(BadLine(number, "nested too deeply"))
    if rows and all(isinstance(row, BadLine) for row in rows):
        raise DataFileError(f"{path}: not JSON Lines (no line is valid JSON; {rows[0].describe()})")
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
                raise DataFileError(f"{path}: a DatasetDict with splits {list(loaded)}; choose one with "
                                    "split=")
            split = next(iter(loaded))
        loaded = loaded[split]
    return [dict(row) for row in loaded]


def read_raw(source: str | Path | Iterable[dict], split: str | None = None) -> list[Any]:
    """The raw JSON objects of a `.json` list, a `.jsonl` file, a saved `datasets` directory, or a
    `datasets.Dataset` (any iterable of dicts). A JSONL line that is not JSON comes as a `BadLine`.

    Raises `DataFileError` (naming the file) when the file cannot be read or holds no record at all.
    """
    if not isinstance(source, (str, Path)):
        return [dict(row) for row in source]
    path = Path(source)
    if not path.exists():
        raise DataFileError(f"{path}: no such file or directory")
    if path.is_dir():
        rows = _read_hf_dataset(path, split)
    elif path.suffix == ".jsonl":
        rows = _read_jsonl(path)
    elif path.suffix == ".json":
        rows = _read_json(path)
    else:
        raise DataFileError(f"{path}: unknown data format (use .json, .jsonl or a saved datasets directory)")
    if not rows:
        raise DataFileError(f"{path}: no records (an empty {'list' if path.suffix == '.json' else 'file'})")
    return rows


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
    allow_outside_media_root: bool = False,
) -> LoadResult:
    """Parse every record of `source` as `kind`; a record whose media path leaves the media root is
    bad unless `allow_outside_media_root`.

    Bad records are collected in `LoadResult.bad` with their reasons (and logged once as a count),
    or raise the first `RecordError` when `strict`.
    """
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    result = LoadResult(records=[], source=name)
    result.media_root = Path(media_root).resolve() if media_root is not None else default_media_root(source)
    for index, raw in enumerate(read_raw(source, split)):
        try:
            record = parse_row(raw, kind, name, index)
            if not allow_outside_media_root and (problem := media_path_problem(record, result.media_root)):
                raise RecordError(name, index, record.problem_id, [problem])
            result.records.append(record)
        except RecordError as error:
            if strict:
                raise
            result.bad.append(error)
    if result.bad:
        log.warning("%s: skipped %d bad record(s) of %d; first: %s", name, len(result.bad),
                    len(result.bad) + len(result.records), result.bad[0])
    return result


def require_records(loaded: LoadResult, what: str = "records") -> LoadResult:
    """`loaded`, or a `DataFileError` naming the file when not one of its records is valid."""
    if not loaded.records:
        first = f"; first: {loaded.bad[0]}" if loaded.bad else ""
        raise DataFileError(f"{loaded.source}: no valid {what} ({len(loaded.bad)} bad{first})")
    return loaded


def resolve_media(record: Record, media_root: str | Path | None) -> Path:
    """The absolute media path of `record`: absolute paths are kept, relative ones joined to the root
    (symlinks resolved). Where it may lead is checked by `media_path_problem`."""
    path = Path(record.path).expanduser()
    if path.is_absolute():
        return path.resolve()
    if media_root is None:
        raise ValueError(f"record {record.label}: relative media path {record.path!r} needs a media root")
    return (Path(media_root) / path).resolve()


def media_path_problem(record: Record, media_root: str | Path | None) -> str | None:
    """Why the record's media path is refused (it leads outside the media root once `..` and symlinks
    are resolved, or cannot be resolved at all), else None."""
    try:
        path = resolve_media(record, media_root)
    except (ValueError, OSError) as error:
        return f"path: {error}"
    if media_root is None:  # an absolute path and no root to hold it to (records given in memory)
        return None
    root = Path(media_root).resolve()
    if not path.is_relative_to(root):
        leads = "is" if str(path) == record.path else f"leads to {path},"
        return (f"path: {record.path!r} {leads} outside the media root {root} (set "
                "allow_outside_media_root / --allow-outside-media-root if your layout needs it)")
    return None


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

