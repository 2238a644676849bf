"""Per-sample results on disk: an append-only JSONL that a killed run resumes from.

Each line is one `SampleResult`, flushed and fsynced before the next sample is written, so a kill
loses at most the line being written; opening the log cuts such a torn last line. Next to the log,
a settings file records what produced it, and a run with other settings refuses to append to it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from videor1.eval.scoring import SampleResult

log = logging.getLogger(__name__)


class SettingsMismatch(ValueError):
    """Existing results were made with other settings; mixing them would corrupt the scores."""


def check_settings(path: Path, settings: dict[str, Any]) -> None:
    """Write `settings` next to a new log, or check them against the ones an existing log was made with."""
    settings = json.loads(json.dumps(settings, default=str))
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
        if changed:
            details = "; ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SettingsMismatch(f"{path}: the results here were made with other settings ({details}); "
                                   "use another output directory, or delete these files to start over")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


class ResultLog:
    """The samples already evaluated (`rows`, by id) and an append-only writer for new ones.

    `row_type`: the pydantic model of a line (any with an `id`; the judge's verdicts and the annotation
    journal use it too). `replace`: a later line of an id replaces the earlier one (annotation records
    retried with --retry-failed); otherwise the first line of an id stands and later ones are not written."""

    def __init__(self, path: Path, row_type: type[BaseModel] = SampleResult, replace: bool = False):
        self.path, self.row_type, self.replace = Path(path), row_type, replace
        self.rows: dict[str, Any] = {}
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line torn by a kill: cut it, its row is made again
            log.warning("%s: cut a torn last line (%d bytes); its row is made "
                        "again", self.path, len(data) - end)
            os.truncate(self.path, end)
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = self.row_type.model_validate_json(line)
            except ValueError as error:
                raise ValueError(f"{self.path} line {number}: not a {self.row_type.__name__} ({error}); "
                                 "delete the file to start again") from None
            if self.replace:
                self.rows[row.id] = row
            else:
                self.rows.setdefault(row.id, row)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self.rows

    def append(self, row: Any) -> None:
        if row.id in self.rows and not self.replace:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(row.model_dump_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.rows[row.id] = row
