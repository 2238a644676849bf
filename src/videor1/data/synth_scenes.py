"""Scenes of the synthetic temporal task: what is where at each instant, drawn and encoded.

A `Scene` is a few `Track`s (one object each: a shape, a colour per instant — None when hidden —
and a grid cell per instant) plus an optional word for OCR. The builders below make one scene per
kind; `Renderer` draws an instant as an RGB array; `write_video` / `write_image` encode it.

Why it looks like this (docs/demo.md): a per-cell tinted background gives a frozen, randomly
initialised vision tower the position cues it needs (on black, direction was never learned); each
instant is encoded as `repeat` identical frames so that one 2-frame temporal patch holds one instant
and shuffling whole groups removes all order information.
"""

from __future__ import annotations

import colorsys
import hashlib
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30), "green": (30, 195, 45), "blue": (40, 70, 235), "yellow": (240, 220, 30),
    "white": (240, 240, 240), "purple": (160, 50, 210), "orange": (250, 140, 20), "cyan": (30, 215, 225),
}
SHAPES = ("square", "circle", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
BACKGROUNDS = ("tint", "gradient", "black")
# OCR words: short, and no glyphs the bitmap font makes ambiguous (0/O, 1/I/L).
WORDS = ("CAT", "SUN", "BOX", "KEY", "MAP", "FOX", "JAM", "OWL", "ZIP", "CUP", "BUS", "HAT",
         "TAXI", "MOON", "STAR", "FISH", "BIRD", "FROG", "DUCK", "WAVE", "GYM", "PEN")
CODE_LETTERS, CODE_DIGITS = "ABCDEFGHJKMNPQRSTUVWXYZ", "2345679"
Cell = tuple[int, int]  # (row, column), row 0 at the top


@dataclass(frozen=True)
class Track:
    """One object over time: `colors[t]` is None while it is hidden; `cells[t]` is its (row, col)."""

    shape: str
    colors: tuple[str | None, ...]
    cells: tuple[Cell, ...]

    def reversed(self) -> Track:
        return Track(self.shape, self.colors[::-1], self.cells[::-1])

    @property
    def color(self) -> str | None:
        """The colour when it never changes (hidden instants aside), else None."""
        seen = {c for c in self.colors if c is not None}
        return seen.pop() if len(seen) == 1 else None


@dataclass(frozen=True)
class Scene:
    """What is where at each instant; images are scenes with one instant."""

    kind: str
    tracks: tuple[Track, ...]
    instants: int
    text: str = ""

    def reversed(self) -> Scene:
        return Scene(self.kind, tuple(t.reversed() for t in self.tracks), self.instants, self.text)

    def to_json(self) -> dict:
        tracks = [{"shape": t.shape, "colors": list(t.colors), "cells": [list(c) for c in t.cells]}
                  for t in self.tracks]
        return {"kind": self.kind, "instants": self.instants, "tracks": tracks, "text": self.text}

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        tracks = tuple(Track(t["shape"], tuple(t["colors"]), tuple(tuple(c) for c in t["cells"]))
                       for t in data["tracks"])
        return cls(data["kind"], tracks, data["instants"], data.get("text", ""))

    def key(self) -> str:
        """The content of the scene as a canonical string: equal keys draw equal frames."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def bucket(self) -> float:
        """A stable number in [0, 1) from the content: the train / eval split of the scene space."""
        return int(hashlib.sha1(self.key().encode()).hexdigest()[:8], 16) / 16**8

    @property
    def changes(self) -> bool:
        """Whether any instant differs from the first (a description then depends on order)."""
        return any(len(set(t.colors)) > 1 or len(set(t.cells)) > 1 for t in self.tracks)


# ---- words -----------------------------------------------------------------------------------

def cell_name(cell: Cell, grid: int) -> str:
    """'top left' … 'bottom right' on a 3×3 grid ('top'/'bottom' on 2×2; 'row r column c' beyond)."""
    rows = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}.get(grid)
    cols = {2: ("left", "right"), 3: ("left", "center", "right")}.get(grid)
    if rows is None:
        return f"row {cell[0] + 1} column {cell[1] + 1}"
    return f"{rows[cell[0]]} {cols[cell[1]]}"


def object_name(track: Track) -> str:
    """'the red square', or 'the square' when its colour changes."""
    return f"the {track.color} {track.shape}" if track.color else f"the {track.shape}"


def direction_of(cells: tuple[Cell, ...]) -> str | None:
    """The direction from the first cell to the last, when the move is along one axis."""
    (r0, c0), (r1, c1) = cells[0], cells[-1]
    if r0 == r1 and c0 != c1:
        return "right" if c1 > c0 else "left"
    if c0 == c1 and r0 != r1:
        return "down" if r1 > r0 else "up"
    return None


def path_length(cells: tuple[Cell, ...]) -> int:
    """Grid cells travelled: the sum of the moves between consecutive instants."""
    return sum(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(cells, cells[1:]))


def describe(scene: Scene, grid: int) -> str:
    """Dense perception target: 'the red square: t1 top left, t2 top center, …; the blue circle: …'."""
    parts = []
    for track in scene.tracks:
        states = []
        for color, cell in zip(track.colors, track.cells):
            where = cell_name(cell, grid)
            states.append("hidden" if color is None else where if track.color else f"{color} {where}")
        if scene.instants == 1:
            parts.append(f"{object_name(track)}: {states[0]}")
        else:
            parts.append(f"{object_name(track)}: " + ", ".join(f"t{i + 1} {s}" for i, s in enumerate(states)))
    if scene.text:
        parts.append(f'the text "{scene.text}"')
    return "; ".join(parts)


def per_instant(scene: Scene, say: Callable[[int, bool], str]) -> str:
    """'t1: the red square is top left. t2: top center. …' where `say(t, first)` words instant t;
    on an image, one sentence without an instant."""
    if scene.instants == 1:
        sentence = say(0, True)
        return sentence[0].upper() + sentence[1:] + "."
    return " ".join(f"t{t + 1}: {say(t, t == 0)}." for t in range(scene.instants))


# ---- scene builders (one per kind; `rng` is the only source of randomness) ----------------------

def _object(rng: random.Random, colors: list[str], shapes: list[str]) -> tuple[str, str]:
    return rng.choice(colors), rng.choice(shapes)


def motion_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str]) -> Scene:
    """One object moving monotonically along a row or a column, start ≠ end (so reversing the
    frames gives the opposite direction)."""
    color, shape = _object(rng, colors, shapes)
    start, end = sorted(rng.sample(range(grid), 2))
    steps = sorted([start, end] + [rng.randint(start, end) for _ in range(instants - 2)])
    direction, line = rng.choice(DIRECTIONS), rng.randrange(grid)
    if direction in ("left", "up"):
        steps = [grid - 1 - s for s in steps]
    cells = tuple((line, s) if direction in ("left", "right") else (s, line) for s in steps)
    return Scene("motion", (Track(shape, (color,) * instants, cells),), instants)


def wander_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str]) -> Scene:
    """One object that moves along one axis at a time, back and forth allowed, such that playing the
    instants in another order changes the distance travelled (so the distance needs order)."""
    color, shape = _object(rng, colors, shapes)
    while True:
        cells = [(rng.randrange(grid), rng.randrange(grid))]
        for _ in range(instants - 1):
            row, col = cells[-1]
            if rng.random() < 0.5:
                row = rng.randrange(grid)
            else:
                col = rng.randrange(grid)
            cells.append((row, col))
        reorders = itertools.islice(itertools.permutations(cells), 120)  # all of them up to 5 instants
        if len({path_length(tuple(p)) for p in reorders}) > 1:
            return Scene("wander", (Track(shape, (color,) * instants, tuple(cells)),), instants)


def appear_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str]) -> Scene:
    """Two objects of different colours, each shown during one interval; the first starts and ends
    strictly earlier than the second, so reversing the frames swaps which appears first."""
    (c0, c1), cells = rng.sample(colors, 2), rng.sample([(r, c) for r in range(grid) for c in range(grid)], 2)
    a0 = rng.randint(0, instants - 2)
    b0 = rng.randint(a0 + 1, instants - 1)
    b1 = rng.randint(b0, instants - 1)
    a1 = rng.randint(a0, b1 - 1)
    tracks = []
    for color, cell, (lo, hi) in ((c0, cells[0], (a0, a1)), (c1, cells[1], (b0, b1))):
        shown = tuple(color if lo <= t <= hi else None for t in range(instants))
        tracks.append(Track(rng.choice(shapes), shown, (cell,) * instants))
    rng.shuffle(tracks)
    return Scene("appear", tuple(tracks), instants)


def recolor_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str],
                  changes: int | None = None) -> Scene:
    """One still object whose colour changes `changes` times (default: 1 … instants-1). The sequence
    of colours is no palindrome, so reversing the frames changes their order, and some colour shows
    at two instants, so shuffling them can change the number of changes."""
    cell, shape = (rng.randrange(grid), rng.randrange(grid)), rng.choice(shapes)
    while True:
        count = rng.randint(1, instants - 1) if changes is None else changes
        changes_at = sorted(rng.sample(range(1, instants), count))
        segments = [rng.choice(colors)]
        for _ in changes_at:
            segments.append(rng.choice([c for c in colors if c != segments[-1]]))
        colors_at = tuple(segments[sum(t >= c for c in changes_at)] for t in range(instants))
        if segments != segments[::-1] and len(set(colors_at)) < instants:
            break
    return Scene("recolor", (Track(shape, colors_at, (cell,) * instants),), instants)


def blink_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str]) -> Scene:
    """One still object, shown at t1, that disappears at least once."""
    color, shape = _object(rng, colors, shapes)
    cell = (rng.randrange(grid), rng.randrange(grid))
    while True:
        shown = [True] + [rng.random() < 0.5 for _ in range(instants - 1)]
        if not all(shown):
            break
    track = Track(shape, tuple(color if s else None for s in shown), (cell,) * instants)
    return Scene("blink", (track,), instants)


def still_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str],
                objects: int = 1) -> Scene:
    """`objects` still objects in distinct cells."""
    cells = rng.sample([(r, c) for r in range(grid) for c in range(grid)], objects)
    tracks = []
    for cell in sorted(cells):
        color, shape = _object(rng, colors, shapes)
        tracks.append(Track(shape, (color,) * instants, (cell,) * instants))
    return Scene("still", tuple(tracks), instants)


def text_scene(rng: random.Random, instants: int, grid: int, colors: list[str], shapes: list[str]) -> Scene:
    """A short word or code written in the middle of the frame."""
    if rng.random() < 0.5:
        text = rng.choice(WORDS)
    else:
        alphabets = (CODE_LETTERS, CODE_DIGITS) * 2
        text = "".join(rng.choice(chars) for chars in alphabets[: rng.randint(2, 4)])
    return Scene("text", (), instants, text)


BUILDERS = {"motion": motion_scene, "wander": wander_scene, "appear": appear_scene, "recolor": recolor_scene,
            "blink": blink_scene, "still": still_scene, "text": text_scene}


# ---- drawing -----------------------------------------------------------------------------------

def cell_box(cell: Cell, size: int, grid: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) pixel bounds of a cell, bottom/right exclusive."""
    edges = [round(i * size / grid) for i in range(grid + 1)]
    return edges[cell[0]], edges[cell[1]], edges[cell[0] + 1], edges[cell[1] + 1]


def cell_center(cell: Cell, size: int, grid: int) -> tuple[int, int]:
    """(y, x) of the pixel at the centre of a cell: every shape covers it."""
    top, left, bottom, right = cell_box(cell, size, grid)
    return (top + bottom) // 2, (left + right) // 2


def _background(size: int, grid: int, style: str) -> np.ndarray:
    """(size, size, 3) uint8, dim enough that no object colour can be mistaken for it."""
    if style == "black":
        return np.zeros((size, size, 3), np.uint8)
    if style == "gradient":
        ramp = np.linspace(20, 80, size)
        image = np.empty((size, size, 3))
        image[..., 0], image[..., 1], image[..., 2] = ramp[None, :], ramp[:, None], 50
        return image.round().astype(np.uint8)
    image = np.zeros((size, size, 3), np.uint8)
    for index in range(grid * grid):  # golden-ratio hues: neighbouring cells get distant tints
        rgb = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.6, 0.3)
        top, left, bottom, right = cell_box(divmod(index, grid), size, grid)
        image[top:bottom, left:right] = [round(255 * v) for v in rgb]
    return image


def _shape_mask(shape: str, cell: Cell, size: int, grid: int) -> np.ndarray:
    top, left, bottom, right = cell_box(cell, size, grid)
    cy, cx = cell_center(cell, size, grid)
    half = max(2, round(0.3 * min(bottom - top, right - left)))
    box = (cx - half, cy - half, cx + half, cy + half)
    mask = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "square":
        draw.rectangle(box, fill=1)
    elif shape == "circle":
        draw.ellipse(box, fill=1)
    else:
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=1)
    return np.array(mask, dtype=bool)


@lru_cache(maxsize=256)
def _text_mask(text: str, size: int) -> np.ndarray:
    """Pillow's bitmap default font, scaled up with nearest-neighbour so it stays sharp and legible."""
    font = ImageFont.load_default_imagefont()
    width, height = font.getbbox(text)[2:]
    small = Image.new("L", (width + 2, height + 2), 0)
    ImageDraw.Draw(small).text((1, 1), text, fill=255, font=font)
    scale = max(1, min(size // 28, (size - 4) // small.width))
    big = small.resize((small.width * scale, small.height * scale), Image.NEAREST)
    mask = np.zeros((size, size), bool)
    top, left = (size - big.height) // 2, (size - big.width) // 2
    mask[top:top + big.height, left:left + big.width] = np.array(big) > 127
    return mask


class Renderer:
    """Draws scenes on a fixed background; masks of every shape in every cell are made once."""

    def __init__(self, size: int, grid: int, background: str):
        self.size, self.grid = size, grid
        self.background = _background(size, grid, background)
        self.masks = {(shape, (r, c)): _shape_mask(shape, (r, c), size, grid)
                      for shape in SHAPES for r in range(grid) for c in range(grid)}

    def frame(self, scene: Scene, t: int) -> np.ndarray:
        """Instant `t` as a (size, size, 3) uint8 RGB array."""
        image = self.background.copy()
        for track in scene.tracks:
            if track.colors[t] is not None:
                image[self.masks[track.shape, track.cells[t]]] = COLOR_RGB[track.colors[t]]
        if scene.text:
            mask = _text_mask(scene.text, self.size)
            image[mask] = (245, 245, 245)
        return image

    def frames(self, scene: Scene) -> list[np.ndarray]:
        return [self.frame(scene, t) for t in range(scene.instants)]


# ---- encoding ----------------------------------------------------------------------------------

_REFORMATTER = VideoReformatter()  # reused: building a swscale context per frame cost 2 ms


def write_video(path: Path, instants: list[np.ndarray], fps: float, repeat: int, crf: int = 12) -> None:
    """H.264 mp4 (yuv420p, one keyframe, no B-frames), each instant written `repeat` times.

    Single-threaded x264 with fixed options gives the same bytes for the same frames.
    """
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = instants[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "ultrafast", "g": str(len(instants) * repeat),
                          "bf": "0", "threads": "1"}
        pts = 0
        for pixels in instants:
            rgb = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame = _REFORMATTER.reformat(rgb, format="yuv420p")
            for _ in range(repeat):
                frame.pts, pts = pts, pts + 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_image(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG")
