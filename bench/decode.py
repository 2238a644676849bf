"""Seek-based sampling vs decoding every frame, on a long 720p video.

    python bench/decode.py [--minutes 10] [--out-dir DIR] [--repeats 3]

Generates (once, cached in --out-dir) a 1280x720, 30 fps H.264 video with a keyframe every 3 s,
then times `read_video(path, FrameSampling(nframes=16))` with seek=True and with seek=False (same code
path, decoding from the first frame), checks that both return the same frames, and prints the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from rich.console import Console
from rich.table import Table

from videor1.media import FrameSampling, read_video

WIDTH, HEIGHT, FPS, GOP = 1280, 720, 30, 90  # keyframe every 3 s


def generate(path: Path, minutes: float) -> float:
    """Encode the benchmark video at `path`; returns the seconds it took.

    Frames are built directly in yuv420p (no RGB conversion): a flat grey picture with a white block
    that moves each frame, so x264 ultrafast encodes thousands of frames per second.
    """
    start = time.perf_counter()
    frames = round(minutes * 60 * FPS)
    partial = path.with_suffix(".partial.mp4")
    planes = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)  # Y on top, then U and V (quarter size each)
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "scenecut": "0"}  # scenecut off: keyframes exactly every GOP
        stream.codec_context.gop_size = GOP
        stream.thread_type = "AUTO"
        for i in range(frames):
            y, x = (i // 40) % (HEIGHT // 16 - 1) * 16, i % 40 * 32  # the block walks over the picture
            planes[y:y + 16, x:x + 32] = 235
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            planes[y:y + 16, x:x + 32] = 128
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return time.perf_counter() - start


def time_read(path: Path, seek: bool, repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds of `repeats` reads of 16 frames, and the frames of the last read."""
    sampling = FrameSampling(nframes=16)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        clip = read_video(path, sampling, seek=seek)
        times.append(time.perf_counter() - start)
    return statistics.median(times), clip.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="length of the generated video (default 10)")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "videor1-bench",
                        help="where the generated video is cached (default: a folder in the temp dir)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is shown")
    args = parser.parse_args()

    console = Console()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"bench_{args.minutes:g}min_{WIDTH}x{HEIGHT}_{FPS}fps.mp4"
    if path.exists():
        console.print(f"using cached {path}")
    else:
        seconds = generate(path, args.minutes)
        console.print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB) in {seconds:.1f} s")

    everything, frames_all = time_read(path, seek=False, repeats=args.repeats)
    seeking, frames_seek = time_read(path, seek=True, repeats=args.repeats)
    same = np.array_equal(frames_all, frames_seek)

    table = Table(title=f"16 frames from a {args.minutes:g}-minute {WIDTH}x{HEIGHT} {FPS} fps H.264 video "
                        f"(keyframe every {GOP // FPS} s), median of {args.repeats}")
    table.add_column("method")
    table.add_column("seconds", justify="right")
    table.add_column("vs decode-everything", justify="right")
    table.add_row("decode everything (seek=False)", f"{everything:.3f}", "1.00x")
    table.add_row("seek (seek=True)", f"{seeking:.3f}", f"{everything / seeking:.1f}x faster")
    console.print(table)
    console.print(f"identical frames: {same}")
    if not same:
        raise SystemExit("seek-based and decode-everything reads returned different frames")


if __name__ == "__main__":
    main()
