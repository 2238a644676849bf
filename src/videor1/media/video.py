"""Probing and decoding videos with PyAV: only the sampled frames are decoded, by seeking.

`read_video` turns a file and a `FrameSampling` into a `Clip`: Qwen's frame indices (see
`sampling.py`) become target times (index / average fps after the stream's start), and for each target
the reader seeks to the keyframe at or before it and decodes forward to the first frame that reaches
it. Taking 16 frames from a 10-minute video thus decodes 16 short stretches, not 18,000 frames.
Variable-frame-rate videos are sampled by time, rotated videos come out upright, and every failure is
a MediaError naming the file: a bad video is reported, never replaced by another one (docs/reference.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from videor1.media.errors import (
    BadGeometry,
    CorruptMedia,
    EmptyMedia,
    MediaNotFound,
    NoVideoStream,
    TooFewFrames,
)
from videor1.media.sampling import (
    FrameSampling,
    frame_indices,
    frame_range,
    geometry_problem,
    smart_nframes,
    video_frame_size,
)

DENSE_FRACTION = 0.25  # sampling more than this fraction of a range's frames: decode straight through
ESTIMATE_SLACK = 0.05  # an estimated frame count (duration * fps) may overshoot the stream by this fraction


@dataclass
class VideoInfo:
    """What the container says about a video's first video stream.

    width / height are as displayed (after rotation); `rotation` is the counterclockwise turn (0, 90,
    180 or 270 degrees) that makes decoded frames upright. `total_frames` is the stream's frame count,
    or duration * fps when the container does not say. `start_time` is the first frame's presentation
    time in seconds (frame index i is expected at start_time + i / fps).
    """

    path: Path
    width: int
    height: int
    fps: float
    total_frames: int
    duration: float
    rotation: int = 0
    start_time: float = 0.0


@dataclass
class Clip:
    """Frames sampled from one video, ready for the processor.

    frames: (T, H, W, 3) uint8 RGB, upright, resized to `video_frame_size`.
    timestamps: presentation time of each frame, in seconds from the start of the video.
    sampled_fps: T / frames in the sampled range * video fps, Qwen's "sample fps": the processor
        needs it for `second_per_grid_ts` (the reference training code dropped it: docs/reference.md).
    indices: source frame index of each frame, as Qwen counts them: frame i is the one shown at
        start + i / fps (for a variable-frame-rate video, the first frame at or after that time).
    """

    frames: np.ndarray
    timestamps: list[float]
    sampled_fps: float
    indices: list[int]
    info: VideoInfo


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise MediaNotFound(path, "video file not found")
    if path.stat().st_size == 0:
        raise EmptyMedia(path, "video file is empty (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise CorruptMedia(path, f"cannot open container: {error}") from error


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    # Last resort for streams whose container gives neither a frame count nor a duration.
    count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    container.seek(0, stream=stream, backward=True)
    return count


def _stream_duration(stream: av.video.stream.VideoStream) -> float | None:
    """Seconds of the video stream alone: from the stream header, or Matroska's per-track DURATION tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)  # "HH:MM:SS.nnnn"
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (AttributeError, ValueError):
        return None


def _probe(container: av.container.InputContainer,
           path: Path) -> tuple[av.video.stream.VideoStream, VideoInfo, bool]:
    """The first video stream (threaded decoding on), its VideoInfo, and whether the container gave an
    exact frame count (False: estimated from the duration). Decodes the first frame."""
    if not container.streams:  # e.g. an mp4 cut inside its header
        raise CorruptMedia(path, "the container holds no streams at all (truncated?)")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams}))
        raise NoVideoStream(path, f"no video stream (only {kinds})")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if stream.width and stream.height and (problem := geometry_problem(stream.height, stream.width)):
        raise BadGeometry(path, problem)  # before decoding anything absurdly large
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise CorruptMedia(path, "the video stream has no frame rate")
    fps = float(rate)
    start_time = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    duration = _stream_duration(stream) or (container.duration / av.time_base if container.duration else None)
    total_frames = stream.frames or (round(duration * fps) if duration else _count_packets(container, stream))

    first = next(container.decode(stream), None)  # rotation is frame side data; this also proves decodability
    if first is None:
        raise CorruptMedia(path, "no decodable video frame")
    rotation = round((first.rotation or 0) / 90) % 4 * 90  # display matrices are multiples of 90 in practice
    height, width = (first.width, first.height) if rotation in (90, 270) else (first.height, first.width)
    if problem := geometry_problem(height, width):
        raise BadGeometry(path, problem)
    info = VideoInfo(path=path, width=width, height=height, fps=fps, total_frames=total_frames,
                     duration=duration or total_frames / fps, rotation=rotation, start_time=start_time)
    return stream, info, bool(stream.frames)


def probe_video(path: str | Path) -> VideoInfo:
    """Size, rate, frame count, duration and rotation of the video at `path` (decodes one frame).

    Raises MediaNotFound, EmptyMedia, CorruptMedia, NoVideoStream or BadGeometry.
    """
    path = Path(path)
    with _open(path) as container:
        try:
            return _probe(container, path)[1]
        except av.FFmpegError as error:
            raise CorruptMedia(path, f"cannot decode: {error}") from error


class _Decoder:
    """Walks a stream to increasing target times (absolute seconds), seeking over long gaps if allowed.

    A frame "reaches" a target when its time >= target - half a frame period: the first frame at or
    after the target, with slack for rounding in time bases (29.97 fps in 1/30000 units...), so a
    constant-rate video gives exactly frame i for target start + i / fps, and a variable-rate one the
    first frame shown at or after the target time.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 info: VideoInfo, seek: bool, dense: bool, end_slack: float) -> None:
        self.container, self.stream, self.info = container, stream, info
        self.seek, self.dense, self.end_slack = seek, dense, end_slack
        self.half = 0.5 / info.fps
        self.frames: Iterator[av.VideoFrame] | None = None
        self.frame: av.VideoFrame | None = None  # the last decoded frame, and its time
        self.time: float | None = None
        self.last_key: float | None = None  # time of the last keyframe decoded, and the longest GOP seen
        self.gop = 0.0

    def _next(self) -> bool:
        frame = next(self.frames, None)
        if frame is None:
            return False
        if frame.time is not None:
            time = float(frame.time)
        else:  # no timestamp (rare): count frames at the average rate, from the start (see _seek_to)
            time = self.info.start_time if self.time is None else self.time + 1.0 / self.info.fps
        self.frame, self.time = frame, time
        if frame.key_frame:
            if self.last_key is not None:
                self.gop = max(self.gop, self.time - self.last_key)
            self.last_key = self.time
        return True

    def _seek_to(self, goal: float) -> None:
        """Position on the keyframe at or before `goal`, with its frame decoded."""
        back = 0.0
        while True:
            point = max(goal - back, self.info.start_time)
            self.container.seek(int(point / self.stream.time_base), stream=self.stream, backward=True)
            self.frames = self.container.decode(self.stream)
            self.frame = self.time = self.last_key = None
            landed = self._next()
            if landed and self.frame.time is None and point > self.info.start_time:
                self.seek, goal = False, self.info.start_time  # untimed frames: times count from the start
                continue
            # Index timestamps may be decode times (B-frames) or inexact: landing after the goal would
            # skip the frame we want, so step back further.
            if (landed and self.time <= goal) or point <= self.info.start_time:
                return
            back = max(2 * back, 1.0)

    def _keyframe_before(self, time: float) -> float | None:
        """Time of the last keyframe at or before `time` in the container's index; None if unknown."""
        entries = self.stream.index_entries
        if entries is None or len(entries) < 2:  # mkv/webm load their cues only at the first seek
            return None
        i = entries.search_timestamp(int(time / self.stream.time_base), backward=True)
        return float(entries[i].timestamp * self.stream.time_base) if i >= 0 else None

    def _worth_seeking(self, goal: float) -> bool:
        """Seek only when a keyframe lies between the current position and the goal."""
        keyframe = self._keyframe_before(goal)
        if keyframe is not None:
            return keyframe > self.time
        if self.last_key is None:
            return True
        # No index: expect the next keyframe one GOP after the last (the GOP is at least what we decoded).
        return goal >= self.last_key + max(self.gop, self.time - self.last_key)

    def frame_at(self, time: float) -> tuple[av.VideoFrame, float]:
        """The first frame reaching `time`, and its time; call with increasing times."""
        goal = time - self.half
        if self.frames is None:  # the probe consumed the first packets: always reposition once
            self._seek_to(goal if self.seek else self.info.start_time)
        elif self.time is not None and self.time >= goal:  # sparse frames (VFR): one frame, two targets
            return self.frame, self.time
        elif self.seek and not self.dense and self._worth_seeking(goal):
            self._seek_to(goal)
        while self.time is None or self.time < goal:
            if not self._next():
                return self._at_end(time)
        return self.frame, self.time

    def _at_end(self, time: float) -> tuple[av.VideoFrame, float]:
        # The stream ended before `time`: fine while the last frame is still on screen, else truncated.
        if self.frame is not None:
            shown = float(self.frame.duration * self.stream.time_base) if self.frame.duration else 0.0
            if time - self.time <= max(shown, 1.0 / self.info.fps) + self.half + self.end_slack:
                return self.frame, self.time
        start = self.info.start_time
        last = "no frame" if self.time is None else f"its last frame at {self.time - start:.3f} s"
        raise CorruptMedia(self.info.path, f"stream ends ({last}) before {time - start:.3f} s, although the "
                                           f"container announces {self.info.duration:.3f} s: truncated?")


def _to_array(frame: av.VideoFrame, rotation: int, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: upright (counterclockwise by `rotation`), resized bicubic."""
    pixels = frame.to_ndarray(format="rgb24")
    if rotation:
        pixels = np.ascontiguousarray(np.rot90(pixels, k=rotation // 90))
    if pixels.shape[:2] != (height, width):
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BICUBIC))
    return pixels


def _probe_samplable(container: av.container.InputContainer,
                     path: Path) -> tuple[av.video.stream.VideoStream, VideoInfo, bool]:
    """`_probe`, and TooFewFrames for a video of fewer than 2 frames (no temporal patch to sample)."""
    stream, info, counted = _probe(container, path)
    if info.total_frames < 2:
        raise TooFewFrames(path, f"the video has {info.total_frames} frame(s); need at least 2")
    return stream, info, counted


def read_video(path: str | Path, sampling: FrameSampling, seek: bool = True) -> Clip:
    """Sample frames from the video at `path` following `sampling` (Qwen's frame and resize rules).

    seek=False decodes every frame from the start and keeps the same ones (the benchmark's baseline;
    both modes return identical frames). Raises MediaNotFound, EmptyMedia, CorruptMedia, NoVideoStream,
    TooFewFrames (fewer than 2 frames, in the video or in the start..end range) or BadGeometry.
    """
    path = Path(path)
    with _open(path) as container:
        try:
            stream, info, counted = _probe_samplable(container, path)
            try:
                start_frame, end_frame, count = frame_range(sampling, info.total_frames, info.fps)
                nframes = smart_nframes(sampling, count, info.fps)
            except ValueError as error:
                raise TooFewFrames(path, str(error)) from error
            indices = frame_indices(info.total_frames, nframes, start_frame, end_frame)
            height, width = video_frame_size(info.height, info.width, nframes, sampling)
            # A frame count estimated from the duration may overshoot the real stream a little.
            end_slack = 0.0 if counted else ESTIMATE_SLACK * info.duration
            decoder = _Decoder(container, stream, info, seek=seek, dense=nframes > DENSE_FRACTION * count,
                               end_slack=end_slack)
            frames, timestamps = [], []
            for index in indices:
                frame, time = decoder.frame_at(info.start_time + index / info.fps)
                frames.append(_to_array(frame, info.rotation, height, width))
                timestamps.append(time - info.start_time)
        except av.FFmpegError as error:
            raise CorruptMedia(path, f"cannot decode: {error}") from error
    return Clip(frames=np.stack(frames), timestamps=timestamps, sampled_fps=nframes / count * info.fps,
                indices=indices, info=info)


def check_video(path: str | Path, frame_counts: tuple[int, ...] = (16, 32)) -> VideoInfo:
    """Probe the video and decode every frame that a uniform sampling of each of `frame_counts` frames
    would take (capped to the video's own frame count), seeking as `read_video` does.

    This is what `data validate --media open` runs: a probe alone passes a file whose index is intact
    but whose data was cut (an mp4 with its index at the front), which training and evaluation then
    fail on. Frames are decoded but not converted or resized. Raises what `read_video` raises.
    """
    path = Path(path)
    with _open(path) as container:
        try:
            stream, info, counted = _probe_samplable(container, path)
            total = info.total_frames
            counts = {max(2, min(count, total)) for count in frame_counts}
            wanted = sorted({i for count in counts for i in frame_indices(total, count)})
            decoder = _Decoder(container, stream, info, seek=True, dense=len(wanted) > DENSE_FRACTION * total,
                               end_slack=0.0 if counted else ESTIMATE_SLACK * info.duration)
            for index in wanted:
                decoder.frame_at(info.start_time + index / info.fps)
        except av.FFmpegError as error:
            raise CorruptMedia(path, f"cannot decode: {error}") from error
    return info
