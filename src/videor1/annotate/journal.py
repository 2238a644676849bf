"""The annotation journal: one `Decision` per line, append-only, each line flushed and fsynced.

A kill loses at most the line being written: opening the journal cuts a torn last line, and that
record is decided again. When an id has several lines (a failure retried with --retry-failed), the
last one counts. The final CoT file and the report are rebuilt from the journal alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from videor1.annotate.decide import Decision

log = logging.getLogger(__name__)


class Journal:
    """The decisions made so far (`rows`, by id) and an append-only writer for new ones."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict[str, Decision] = {}
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # torn by a kill: cut it, its record is decided again
            log.warning("%s: cut a torn last line (%d bytes); its record is annotated again", self.path,
                        len(data) - end)
            os.truncate(self.path, end)
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = Decision.model_validate_json(line)
            except ValueError as error:
                raise ValueError(f"{self.path} line {number}: not an annotation decision ({error}); "
                                 "delete the journal to annotate again") from None
            self.rows[row.id] = row  # the last line of an id wins

    def append(self, row: Decision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(row.model_dump_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.rows[row.id] = row
