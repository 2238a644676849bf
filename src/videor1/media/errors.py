"""Typed errors for media that cannot be used, one class per kind of problem.

Every error names the file; callers that know which record asked for the file add it with
`with_record`, so a log line reads "problem_id=42: /data/videos/x.mp4: no video stream". Readers
never substitute other media for a bad file (the reference code did, keeping the question: docs/reference.md).
"""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A media file that cannot be read. `record` says which record asked for it, when known."""

    def __init__(self, path: str | Path, reason: str, record: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.record = record
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: {self.reason}"
        return where if self.record is None else f"{self.record}: {where}"

    def __reduce__(self):
        # Keep the fields when pickled across DataLoader worker processes.
        return type(self), (self.path, self.reason, self.record)

    def with_record(self, label: str) -> MediaError:
        """The same error (same class, path and reason) naming the record, e.g. "problem_id=42"."""
        error = type(self)(self.path, self.reason, label)
        error.__cause__ = self.__cause__
        return error


class MediaNotFound(MediaError):
    """The file does not exist (or is not a regular file)."""


class EmptyMedia(MediaError):
    """The file has 0 bytes."""


class CorruptMedia(MediaError):
    """The container or its frames cannot be opened or decoded (truncated, garbage, not a video)."""


class NoVideoStream(MediaError):
    """The container opens but holds no video stream (e.g. audio only)."""


class TooFewFrames(MediaError):
    """The video (or the requested time range) has fewer frames than the sampling needs (at least 2)."""


class BadGeometry(MediaError):
    """Frame size unusable: an empty side, an absurd resolution, or an aspect ratio above Qwen's limit."""


class UnreadableImage(MediaError):
    """Pillow cannot open or decode the image."""
