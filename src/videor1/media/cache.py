"""An on-disk cache of sampled, resized video frames, so RL epochs and evaluation decode once.

An entry is keyed by the file's identity (resolved path, size, modification time) and every
sampling parameter, so a changed file or a changed sampling never returns stale frames. Writes go
to a unique temporary file renamed into place (atomic on POSIX): a writer killed mid-write leaves
at most a temporary file, never an entry that loads wrong, and several processes may share one
cache directory. Reads refresh an entry's time; past `max_bytes` the least recently used go first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from videor1.media.sampling import FrameSampling
from videor1.media.video import Clip, VideoInfo, read_video

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SUFFIX = ".npz"
_STALE_TMP_SECONDS = 3600


class FrameCache:
    """`FrameCache(root).read_video(path, sampling)`: decoded once, then loaded from `root`."""

    def __init__(self, root: str | Path, max_bytes: int | None = 20 * 2**30):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, path: str | Path, sampling: FrameSampling) -> str:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        identity = {"v": FORMAT_VERSION, "path": str(resolved), "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns, "sampling": dataclasses.asdict(sampling)}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def load(self, path: str | Path, sampling: FrameSampling) -> Clip | None:
        """The cached clip, or None (missing, or unreadable: then the entry is dropped)."""
        try:
            key = self.key(path, sampling)
        except OSError:  # the video itself is missing: `read_video` reports it as a MediaError
            return None
        entry = self._entry(key)
        try:
            with np.load(entry, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                clip = Clip(frames=data["frames"], timestamps=data["timestamps"].tolist(),
                            sampled_fps=meta["sampled_fps"], indices=data["indices"].tolist(),
                            info=VideoInfo(**{**meta["info"], "path": Path(meta["info"]["path"])}))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            log.warning("frame cache: dropping unreadable entry %s (%s)", entry, error)
            entry.unlink(missing_ok=True)
            return None
        if meta.get("key") != key or len(clip.frames) != len(clip.indices):
            entry.unlink(missing_ok=True)
            return None
        # evicted by another process meanwhile: the clip is still good
        with contextlib.suppress(FileNotFoundError):
            os.utime(entry)  # recently used
        return clip

    def store(self, path: str | Path, sampling: FrameSampling, clip: Clip) -> None:
        try:
            key = self.key(path, sampling)
        except OSError:  # the source vanished after decoding: nothing to key the entry on
            return
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        info = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(clip.info).items()}
        meta = json.dumps({"key": key, "sampled_fps": clip.sampled_fps, "info": info}).encode()
        buffer = io.BytesIO()
        np.savez(buffer, frames=clip.frames, timestamps=np.asarray(clip.timestamps, dtype=np.float64),
                 indices=np.asarray(clip.indices, dtype=np.int64), meta=np.frombuffer(meta, dtype=np.uint8))
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "wb") as out:
            out.write(buffer.getbuffer())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, entry)
        if self.max_bytes is not None:
            self.evict(self.max_bytes)

    def read_video(self, path: str | Path, sampling: FrameSampling) -> Clip:
        """Frames from the cache, or decoded (errors as `read_video`'s) and stored for next time."""
        clip = self.load(path, sampling)
        if clip is None:
            clip = read_video(path, sampling)
            self.store(path, sampling, clip)
        return clip

    def evict(self, max_bytes: int) -> None:
        """Delete least recently used entries until the cache holds at most `max_bytes`; also
        temporary files left by killed writers."""
        entries, now = [], time.time()
        for file in self.root.glob("*/*"):
            try:
                stat = file.stat()
            except FileNotFoundError:  # removed by another process meanwhile
                continue
            if file.name.endswith(".tmp"):
                if now - stat.st_mtime > _STALE_TMP_SECONDS:
                    file.unlink(missing_ok=True)
            elif file.suffix == _SUFFIX:
                entries.append((stat.st_mtime, stat.st_size, file))
        total = sum(size for _, size, _ in entries)
        for _, size, file in sorted(entries):
            if total <= max_bytes:
                break
            file.unlink(missing_ok=True)
            total -= size


def load_clip(path: str | Path, sampling: FrameSampling, cache: FrameCache | None = None) -> Clip:
    """Decode `path` with `sampling`, through `cache` when one is given (None: caching off)."""
    return cache.read_video(path, sampling) if cache is not None else read_video(path, sampling)
