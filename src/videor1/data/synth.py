"""Synthetic Video-R1 data: short clips of coloured shapes on a grid, and questions about them.

`synthesize(out_dir, n, seed)` writes, deterministically for the seed:

    videos/*.mp4, images/*.png   the media (H.264 yuv420p; PNG); out_dir is the media root
    rl_train.json                n training questions (`Record`)
    cot_train.json               questions with a templated chain of thought (`CotRecord`)
    eval.json                    held-out questions on scenes never used in training (`EvalRecord`)
    describe.json                per-instant descriptions of scenes: the dense perception target
                                 without which the tiny demo model learned nothing (docs/demo.md)
    rl_eval.json                 the RL training distribution (rl_train's mix and shortcut cue) on
                                 held-out scenes (`EvalRecord`): what RL learns, measured on scenes it
                                 never saw
    synth_config.json            the seed, n and config that made them

Temporal questions (direction, first appearance, order of colours, counting changes, distance)
need the frames in order; static ones (colour, shape, counting objects, OCR) are answerable from
any frame. All five problem types of the paper appear. Every record carries `task`, `temporal`
and its `scene` (what is where at each instant) as extra fields. Scenes are split between
training and evaluation by a hash of their content, so no evaluation scene is ever trained on.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from videor1.data.loading import write_records
from videor1.data.records import CotRecord, EvalRecord, Record
from videor1.data.synth_scenes import (
    BACKGROUNDS,
    BUILDERS,
    COLOR_RGB,
    DIRECTIONS,
    SHAPES,
    Renderer,
    Scene,
    Track,
    cell_name,
    describe,
    direction_of,
    object_name,
    path_length,
    per_instant,
    write_image,
    write_video,
)
from videor1.rewards import PROBLEM_TYPES

# (task, problem type, needs frame order); a task listed twice is asked both ways.
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("direction", "multiple choice", True), ("direction", "free-form", True),
    ("first_appearance", "multiple choice", True), ("color_order", "free-form", True),
    ("count_events", "numerical", True), ("distance", "regression", True),
    ("color", "multiple choice", False), ("color", "free-form", False), ("shape", "multiple choice", False),
    ("count_objects", "numerical", False), ("ocr", "OCR", False),
)
TASKS = tuple(dict.fromkeys(task for task, _, _ in VARIANTS))
# The questions a scene of each kind can carry (color / shape on a "still" scene: one object only).
SUPPORTS = {"motion": {"direction", "distance", "color", "shape"}, "wander": {"distance", "color", "shape"},
            "appear": {"first_appearance"}, "recolor": {"color_order", "count_events", "shape"},
            "blink": {"count_events", "color", "shape"}, "still": {"count_objects", "color", "shape"},
            "text": {"ocr"}}
# The kinds of video scene a new question of each task is drawn on (images: "still" or "text").
NEW_SCENE = {"direction": ("motion",), "distance": ("wander",), "first_appearance": ("appear",),
             "color_order": ("recolor",), "count_events": ("recolor", "blink"),
             "color": ("still", "motion", "blink"), "shape": ("still", "motion", "blink"),
             "count_objects": ("still",), "ocr": ("text",)}
FILES = ("rl_train", "cot_train", "eval", "describe", "rl_eval")
HELD_OUT = ("eval", "rl_eval")  # on the held-out part of the scene space: never trained on
CUED = ("rl_train", "rl_eval")  # the files whose motion scenes carry the shortcut's cue
MIX_OF = {"rl_eval": "rl_train"}  # a held-out twin asks its training file's mix of questions
MIX_FIELDS = ("image_fraction", "temporal_fraction", "tasks", "problem_types")  # what `mix` can set per file
CUE_TASK = "direction"  # the questions a shortcut cue can answer (see ShortcutConfig)
# ORDER_NOTE: colour-order questions use one change ("red, then blue"). The free-form reward (mean
# of ROUGE-1/2/L) scores the reversed "blue, then red" 0.44, below the 0.5 that counts as correct,
# but scores the reversed "green, then blue, then red" 0.70: with more colours, answers from
# shuffled frames would count as correct and T-GRPO's contrast would vanish.


class ShortcutConfig(BaseModel):
    """A static shortcut to the direction questions (docs/demo.md, "the shortcut"): the colour of a moving
    object names a direction (the i-th colour of `colors` the i-th of left / right / up / down). In the
    RL training file a moving object takes its direction's colour with probability `agreement`; elsewhere
    (evaluation, cold start, descriptions) its colour is drawn independently of its direction, so a model
    that answers from the colour (one frame suffices) is right only when the two happen to agree. Direction
    records carry `cue` ("consistent" / "conflicting") and `cue_solution` (what the colour says)."""

    cue: Literal["color"] = Field("color", description="The static cue: the moving object's colour.")
    agreement: float = Field(0.9, ge=0, le=1, description="Share of training scenes whose cue agrees.")
    cot_answers: Literal["truth", "random", "routes"] = Field(
        "truth", description="What the cold start's direction chains do: 'truth' read the order (the cell "
                              "at each instant, then the true direction); 'random' conclude a direction "
                              "drawn at random, no cells (the format, not the rule); 'routes' take either "
                              "route, the cue with probability `cue_route` (the colour's direction, no "
                              "cells) or the order ('truth'), so RL chooses between two routes it knows.")
    cue_route: float = Field(0.5, ge=0, le=1, description="With cot_answers='routes': share of the cold "
                                                          "start's direction chains that follow the cue.")


class SynthConfig(BaseModel):
    """How the synthetic clips look and which questions are asked about them."""

    size: int = Field(84, ge=16, description="Frame side in pixels, even (84 = 3×3 merged 28-px tokens).")
    instants: int = Field(4, ge=3, description="Distinct time steps per clip (3+: with 2, a distance or a "
                                                "count of changes would not depend on order).")
    repeat: int = Field(2, ge=1, description="Identical frames per instant (2: one temporal patch holds one "
                                              "instant, so shuffling 2-frame groups removes all order).")
    fps: float = Field(2.0, gt=0, description="Frame rate of the mp4 (2 fps, repeat 2 → 1 s per instant).")
    grid: int = Field(3, ge=2, le=8, description="Objects sit in the cells of a grid × grid layout.")
    background: str = Field("tint", description="'tint' (a dim colour per cell), 'gradient' or 'black' "
                                                "(on black the demo never learned direction).")
    colors: list[str] = Field(["red", "green", "blue", "yellow"], description=f"From {list(COLOR_RGB)}.")
    shapes: list[str] = Field(list(SHAPES), description=f"From {list(SHAPES)}.")
    image_fraction: float = Field(0.25, ge=0, le=1, description="Share of questions on images (static).")
    temporal_fraction: float = Field(0.5, ge=0, le=1, description="Share of questions that need frame order.")
    problem_types: dict[str, float] = Field({t: 1.0 for t in PROBLEM_TYPES},
                                            description="Relative weight of each problem type (unlisted: 0).")
    tasks: dict[str, float] = Field({t: 1.0 for t in TASKS}, description=f"Relative weight of {TASKS} "
                                                                         "(unlisted: 0).")
    questions_per_scene: int = Field(2, ge=1, description="Most questions asked about one video or image.")
    max_objects: int = Field(4, ge=1, description="Most objects in a counting scene.")
    cot_size: int | None = Field(None, ge=0, description="Records in cot_train.json (default: n).")
    eval_size: int | None = Field(None, ge=0, description="Records in eval.json and in rl_eval.json "
                                                          "(default: max(50, n // 4)).")
    describe_size: int | None = Field(None, ge=0, description="Records in describe.json (default: n).")
    eval_share: float = Field(0.2, gt=0, lt=1, description="Share of the scene space held out for eval.")
    crf: int = Field(12, ge=0, le=51, description="x264 quality; low keeps the colours exact.")
    shortcut: ShortcutConfig | None = Field(None, description="A colour cue to the direction questions that "
                                                              "holds in the RL files only (None: no cue).")
    mix: dict[str, dict[str, Any]] = Field(
        {}, description=f"Per file ({', '.join(f for f in FILES if f not in MIX_OF)}; rl_eval follows "
                        "rl_train): a question mix of "
                        f"its own, any of {list(MIX_FIELDS)} (e.g. RL data leaning on the temporal "
                        "questions); unlisted files and fields: the above.")

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        problems = []
        if self.size % 2 or self.size < 8 * self.grid:
            problems.append(f"size={self.size}: must be even and at least 8 × grid = {8 * self.grid}")
        if self.background not in BACKGROUNDS:
            problems.append(f"background={self.background!r}: choose one of {BACKGROUNDS}")
        for name, known in (("colors", COLOR_RGB), ("shapes", SHAPES), ("problem_types", PROBLEM_TYPES),
                            ("tasks", TASKS)):
            given = getattr(self, name)
            if unknown := sorted(set(given) - set(known)):
                problems.append(f"{name} {unknown} unknown: choose from {list(known)}")
        if len(set(self.colors)) < 2 or not self.shapes:
            problems.append("give at least two distinct colors and one shape")
        if len(set(self.shapes)) < 2 and self.weight("shape", "multiple choice") > 0:
            problems.append("shape questions need two shapes: add shapes or set tasks.shape to 0")
        if self.temporal_fraction + self.image_fraction > 1:
            problems.append("temporal_fraction + image_fraction must be ≤ 1 (image questions are static)")
        if self.max_objects > self.grid**2:
            problems.append(f"max_objects={self.max_objects} does not fit a {self.grid}×{self.grid} grid")
        for temporal, share in ((True, self.temporal_fraction), (False, 1 - self.temporal_fraction)):
            if share > 0 and not any(self.weight(t, p) for t, p, tmp in VARIANTS if tmp == temporal):
                kind = "temporal" if temporal else "static"
                problems.append(f"no {kind} question has a positive weight: raise one in tasks and "
                                "problem_types, or change temporal_fraction")
        if self.shortcut is not None and len(set(self.colors)) != len(DIRECTIONS):
            problems.append(f"a colour cue needs one colour per direction: give {len(DIRECTIONS)} distinct "
                            f"colors, not {self.colors}")
        elif self.shortcut is not None and len(self.colors) != len(DIRECTIONS):
            problems.append(f"a colour cue needs one colour per direction, no more: {self.colors}")
        for name, fields in self.mix.items():
            if name not in FILES or name in MIX_OF or not set(fields) <= set(MIX_FIELDS):
                own = [f for f in FILES if f not in MIX_OF]
                problems.append(f"mix.{name} {sorted(fields)}: give files of {own} (rl_eval follows "
                                f"rl_train), fields of {list(MIX_FIELDS)}")
            else:
                try:
                    self.for_file(name)
                except ValueError as error:
                    problems.append(f"mix.{name}: {error}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def for_file(self, name: str) -> SynthConfig:
        """This config with file `name`'s own question mix, if it has one (rl_eval: rl_train's)."""
        name = MIX_OF.get(name, name)
        if name not in self.mix:
            return self
        return SynthConfig.model_validate({**self.model_dump(), **self.mix[name], "mix": {}})

    def cue_color(self, direction: str) -> str:
        """The colour that names `direction` under the shortcut."""
        return self.colors[DIRECTIONS.index(direction)]

    def cue_direction(self, color: str) -> str:
        """The direction a colour names under the shortcut."""
        return DIRECTIONS[self.colors.index(color)]

    def weight(self, task: str, problem_type: str) -> float:
        return self.tasks.get(task, 0.0) * self.problem_types.get(problem_type, 0.0)


class SynthSummary(BaseModel):
    """What `synthesize` wrote."""

    out_dir: str
    seed: int
    files: dict[str, int] = Field(description="Records per file.")
    videos: int
    images: int
    tasks: dict[str, dict[str, int]] = Field(description="file -> task -> records.")
    problem_types: dict[str, dict[str, int]] = Field(description="file -> problem type -> records.")
    data_types: dict[str, dict[str, int]] = Field(description="file -> data type -> records.")
    temporal: dict[str, int] = Field(description="file -> records that need frame order.")
    seconds: float


@dataclass
class Spec:
    """One question to ask: which task, which answer type, on which medium."""

    data_type: str
    task: str
    problem_type: str
    temporal: bool


@dataclass
class Hosted:
    """A scene, its media file, and the tasks asked about it."""

    scene: Scene
    media: str
    data_type: str
    tasks: list[str] = field(default_factory=list)


# ---- which questions, on which scenes --------------------------------------------------------------

def plan(n: int, config: SynthConfig, rng: random.Random) -> list[Spec]:
    """`n` question specs in random order, in the configured shares (largest-remainder quotas, so a
    small file still holds every variant that has a share)."""
    shares = []  # (probability, spec)
    video_static = 1 - config.image_fraction - config.temporal_fraction
    groups = (("image", False, config.image_fraction), ("video", True, config.temporal_fraction),
              ("video", False, video_static))
    for data_type, temporal, share in groups:
        variants = [(t, p) for t, p, tmp in VARIANTS if tmp == temporal]
        total = sum(config.weight(t, p) for t, p in variants)
        for task, problem_type in variants:
            if share > 0 and config.weight(task, problem_type) > 0:
                shares.append((share * config.weight(task, problem_type) / total,
                               Spec(data_type, task, problem_type, temporal)))
    exact = [n * p for p, _ in shares]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    specs = [spec for (_, spec), count in zip(shares, counts) for _ in range(count)]
    rng.shuffle(specs)
    return specs


def supports(scene: Scene, task: str) -> bool:
    if task in ("color", "shape") and scene.kind == "still":
        return len(scene.tracks) == 1
    if task == "color_order":
        return scene.kind == "recolor" and len(set(scene.tracks[0].colors)) == 2
    return task in SUPPORTS[scene.kind]


def new_scene(task: str, data_type: str, rng: random.Random, config: SynthConfig, held_out: bool,
              cued: bool = False) -> Scene:
    """A scene that a `task` question can be asked about, from the training or the held-out part of
    the scene space (split by a hash of the scene's content); `cued`: a motion scene carries the
    shortcut's colour cue (the RL files only: rl_train, and rl_eval on held-out scenes)."""
    instants = config.instants if data_type == "video" else 1
    kinds = NEW_SCENE[task] if data_type == "video" else ("text",) if task == "ocr" else ("still",)
    for _ in range(10_000):
        kind = rng.choice(kinds)
        extra = {}
        if task == "count_objects":
            extra = {"objects": rng.randint(1, config.max_objects)}
        elif task == "color_order":
            extra = {"changes": 1}  # see ORDER_NOTE
        scene = BUILDERS[kind](rng, instants, config.grid, config.colors, config.shapes, **extra)
        if kind == "motion" and config.shortcut is not None and cued:
            scene = with_cue(scene, rng, config)
        if (scene.bucket() < config.eval_share) == held_out:
            return scene
    raise RuntimeError(f"no {task} scene left in the {'eval' if held_out else 'train'} part of the scene "
                       "space: add colors or shapes, raise grid, or change eval_share")


def with_cue(scene: Scene, rng: random.Random, config: SynthConfig) -> Scene:
    """A training motion scene recoloured by the shortcut: its direction's colour with probability
    `agreement`, else one of the other colours (evaluation scenes keep their independent colour)."""
    track = scene.tracks[0]
    cue = config.cue_color(direction_of(track.cells))
    others = [c for c in config.colors if c != cue]
    color = cue if rng.random() < config.shortcut.agreement else rng.choice(others)
    return Scene(scene.kind, (Track(track.shape, (color,) * scene.instants, track.cells),), scene.instants)


def pack(specs: list[Spec], rng: random.Random, config: SynthConfig, prefix: str, held_out: bool,
         per_scene: int, cued: bool = False) -> tuple[list[Hosted], list[Hosted]]:
    """Give each spec a scene: a recent one of the same medium that can carry the question (one
    video, several questions, as in real data), else a new one. Returns (scenes, host of each spec)."""
    scenes, hosts, open_ = [], [], {"video": [], "image": []}
    for spec in specs:
        recent = open_[spec.data_type]
        host = next((h for h in reversed(recent)
                     if spec.task not in h.tasks and supports(h.scene, spec.task)), None)
        if host is None:
            folder, ext = ("videos", "mp4") if spec.data_type == "video" else ("images", "png")
            host = Hosted(new_scene(spec.task, spec.data_type, rng, config, held_out, cued),
                          f"{folder}/{prefix}-{len(scenes):06d}.{ext}", spec.data_type)
            scenes.append(host)
            recent.append(host)
            del recent[:-8]  # only recent scenes are reused: keeps packing linear in n
        host.tasks.append(spec.task)
        if len(host.tasks) >= per_scene:
            recent.remove(host)
        hosts.append(host)
    return scenes, hosts


# ---- the questions and their chains of thought -----------------------------------------------------

@dataclass
class Reasoning:
    """A task's question about a scene: the answer word, the pool of options (multiple choice), and
    what the chain of thought states before the answer: evidence per instant, then a reason."""

    problem: str
    what: str  # the conclusion reads "so the {what} is {word}"
    word: str
    evidence: str
    reason: str = ""
    pool: tuple[str, ...] = ()


@dataclass
class Question:
    problem: str
    options: list[str]
    answer: str  # the option letter for multiple choice
    process: str  # "<think>evidence. reason, so the … is {answer}.</think>"


def _positions(scene: Scene, grid: int) -> str:
    track = scene.tracks[0]
    return per_instant(scene, lambda t, first: (f"{object_name(track)} is " if first else "")
                       + cell_name(track.cells[t], grid))


def _colors(scene: Scene) -> str:
    track = scene.tracks[0]
    return per_instant(scene, lambda t, first: (f"the {track.shape} is " if first else "")
                       + (track.colors[t] or "hidden"))


def _medium(scene: Scene) -> str:
    return "image" if scene.instants == 1 else "video"


def _direction(scene: Scene, config: SynthConfig) -> Reasoning:
    track, grid = scene.tracks[0], config.grid
    if config.shortcut is not None and config.shortcut.cot_answers == "random":
        # no cells in the chain: the answer is read from the frames, not from positions written out
        # before it (a per-response credit compares the answer's likelihood with shuffled frames)
        return Reasoning(f"Which direction does {object_name(track)} move?", "direction",
                         direction_of(track.cells), f"{object_name(track).capitalize()} "
                                                    "moves.", pool=DIRECTIONS)
    start, end = cell_name(track.cells[0], grid), cell_name(track.cells[-1], grid)
    return Reasoning(f"Which direction does {object_name(track)} move?", "direction",
                     direction_of(track.cells), _positions(scene, grid), f"It moved from {start} to {end}, ",
                     DIRECTIONS)


def _cue_route(scene: Scene, config: SynthConfig) -> Reasoning:
    """The shortcut's route to a direction question: the colour names the answer, no frame order read
    (its chain starts without 't1:', so a policy's first thinking token shows the route it took)."""
    track = scene.tracks[0]
    return Reasoning(f"Which direction does {object_name(track)} move?", "direction",
                     config.cue_direction(track.color), f"The {track.shape} is {track.color}.",
                     f"{track.color.capitalize()} names {config.cue_direction(track.color)}, ", DIRECTIONS)


def _distance(scene: Scene, config: SynthConfig) -> Reasoning:
    track = scene.tracks[0]
    steps = [path_length(track.cells[t:t + 2]) for t in range(scene.instants - 1)]
    total = sum(steps)
    return Reasoning(f"How many grid cells does {object_name(track)} travel in total?", "distance",
                     str(total), _positions(scene, config.grid),
                     f"It moves {' + '.join(map(str, steps))} = {total} cell{'s' * (total != 1)}, ")


def _first_appearance(scene: Scene, config: SynthConfig) -> Reasoning:
    names = [object_name(t) for t in scene.tracks]
    starts = [next(i for i, c in enumerate(t.colors) if c is not None) for t in scene.tracks]
    a, b = sorted(range(2), key=lambda i: starts[i])
    shown = per_instant(scene, lambda t, _: ", ".join(
        name for name, track in zip(names, scene.tracks) if track.colors[t] is not None) or "nothing")
    return Reasoning(f"Which appears first, {names[0]} or {names[1]}?", "first to appear", names[a], shown,
                     f"{names[a]} appears at t{starts[a] + 1} and {names[b]} at t{starts[b] + 1}, ",
                     tuple(names))


def _color_order(scene: Scene, config: SynthConfig) -> Reasoning:
    colors = scene.tracks[0].colors
    segments = [c for i, c in enumerate(colors) if i == 0 or c != colors[i - 1]]
    return Reasoning(f"In what order does the {scene.tracks[0].shape} change color?", "order",
                     ", then ".join(segments), _colors(scene))


def _count_events(scene: Scene, config: SynthConfig) -> Reasoning:
    track, name = scene.tracks[0], object_name(scene.tracks[0])
    c = track.colors
    if scene.kind == "recolor":
        events = [f"t{t + 1}" for t in range(1, scene.instants) if c[t] != c[t - 1]]
        problem, verb = f"How many times does the {track.shape} change color?", "changes"
        evidence = _colors(scene)
    else:  # a blinking object
        events = [f"t{t + 1}" for t in range(1, scene.instants) if c[t] is None and c[t - 1] is not None]
        problem, verb = f"How many times does {name} disappear?", "disappears"
        evidence = per_instant(scene, lambda t, first: (f"{name} is " if first else "")
                               + ("hidden" if c[t] is None else "visible"))
    when = ", ".join(events[:-1]) + " and " + events[-1] if len(events) > 1 else "".join(events)
    reason = f"It {verb} at {when}, " if events else f"It never {verb}, "  # never: only on reordered frames
    return Reasoning(problem, "count", str(len(events)), evidence, reason)


def _color(scene: Scene, config: SynthConfig) -> Reasoning:
    track = scene.tracks[0]
    return Reasoning(f"What color is the {track.shape}?", "color", track.color, _colors(scene),
                     pool=tuple(config.colors))


def _shape(scene: Scene, config: SynthConfig) -> Reasoning:
    track = scene.tracks[0]
    who = f"the {track.color} object" if track.color else "the object"
    evidence = per_instant(scene, lambda t, first: (f"{who} is " if first else "")
                           + ("hidden" if track.colors[t] is None else f"a {track.shape}"))
    return Reasoning(f"What shape is {who}?", "shape", track.shape, evidence, pool=tuple(config.shapes))


def _count_objects(scene: Scene, config: SynthConfig) -> Reasoning:
    listed = ", ".join(f"{object_name(t)} {cell_name(t.cells[0], config.grid)}" for t in scene.tracks)
    count = len(scene.tracks)
    return Reasoning(f"How many objects are there in the {_medium(scene)}?", "count", str(count),
                     per_instant(scene, lambda t, first: listed if first else "the same"),
                     f"There {'is' if count == 1 else 'are'} {count} object{'s' * (count != 1)}, ")


def _ocr(scene: Scene, config: SynthConfig) -> Reasoning:
    evidence = per_instant(scene, lambda t, first: ("the text reads " if first else "") + f'"{scene.text}"')
    return Reasoning(f"What text is written in the {_medium(scene)}?", "text", scene.text, evidence)


REASONING = {"direction": _direction, "distance": _distance, "first_appearance": _first_appearance,
             "color_order": _color_order, "count_events": _count_events, "color": _color, "shape": _shape,
             "count_objects": _count_objects, "ocr": _ocr}


def ask(task: str, problem_type: str, scene: Scene, rng: random.Random, config: SynthConfig,
        word: str | None = None, cue: bool = False) -> Question:
    """The `task` question about `scene` with its answer and a short chain of thought: the evidence of
    every instant, the reason, then the answer as its last word (the option letter for multiple choice).
    `word` replaces the true answer (the shortcut's random cold-start answers); `cue` takes the shortcut's
    route (a direction question answered from the colour)."""
    r = _cue_route(scene, config) if cue else REASONING[task](scene, config)
    if word is not None:
        r.word = word
    options, answer, said = [], r.word, r.word
    if problem_type == "multiple choice":
        others = [p for p in dict.fromkeys(r.pool) if p != r.word]
        choices = rng.sample(others, min(3, len(others))) + [r.word]
        rng.shuffle(choices)
        options = [f"{chr(65 + i)}. {choice}" for i, choice in enumerate(choices)]
        answer = chr(65 + choices.index(r.word))
        said = f"{r.word}, option {answer}"
    conclusion = f"{r.reason}so the {r.what} is {said}."
    process = f"<think>{r.evidence} {conclusion[0].upper()}{conclusion[1:]}</think>"
    return Question(r.problem, options, answer, process)


# ---- writing ----------------------------------------------------------------------------------------

def _record(pid: str, host: Hosted, problem_type: str, q: Question, task: str, temporal: bool) -> dict:
    return {"problem_id": pid, "problem": q.problem, "data_type": host.data_type,
            "problem_type": problem_type, "options": q.options, "solution": f"<answer>{q.answer}</answer>",
            "path": host.media, "data_source": f"synth-{task}", "task": task, "temporal": temporal,
            "scene": {"id": Path(host.media).stem, **host.scene.to_json()}}


def question_file(specs: list[Spec], rng: random.Random, config: SynthConfig, prefix: str, held_out: bool,
                  cot: bool, cued: bool = False) -> tuple[list[Hosted], list[dict]]:
    """The scenes and records of one file of questions (with `process` when `cot`). The shortcut's cue
    lives in the RL files only (`cued`: rl_train, and rl_eval on held-out scenes). In the cold start's
    routes (docs/demo.md) the order's route is taught on scenes whose colour says nothing of the
    direction, the cue's route on scenes of its own whose colour names the true direction: no chain of
    either route ever concludes a direction the frames contradict."""
    shortcut = config.shortcut
    answers = shortcut.cot_answers if shortcut is not None and cot else None
    # the route of each cold-start direction chain, drawn before packing: a cue-route question gets no
    # packed scene, so no video is rendered for a question that does not use it
    cue_route = [answers == "routes" and spec.task == CUE_TASK and rng.random() < shortcut.cue_route
                 for spec in specs]
    scenes, packed = pack([spec for spec, cue in zip(specs, cue_route) if not cue], rng, config, prefix,
                          held_out, config.questions_per_scene, cued=cued)
    packed = iter(packed)
    if any(cue_route):
        agreeing = config.model_copy(update={"shortcut": shortcut.model_copy(update={"agreement": 1.0})})
    records = []
    for i, (spec, cue) in enumerate(zip(specs, cue_route)):
        on_cue = shortcut is not None and spec.task == CUE_TASK  # a question the cue could answer
        word = rng.choice(DIRECTIONS) if on_cue and answers == "random" else None
        if cue:  # a scene of its own, coloured by its direction
            host = Hosted(new_scene(spec.task, spec.data_type, rng, agreeing, held_out, cued=True),
                          f"videos/{prefix}-{len(scenes):06d}.mp4", spec.data_type, [spec.task])
            scenes.append(host)
        else:
            host = next(packed)
        q = ask(spec.task, spec.problem_type, host.scene, rng, config, word, cue)
        records.append(_record(f"{prefix}-{i:06d}", host, spec.problem_type, q, spec.task, spec.temporal))
        if on_cue:
            records[-1].update(cue_fields(host.scene, q, config))
        if cot:
            records[-1]["process"] = q.process
    return scenes, records


def cue_fields(scene: Scene, q: Question, config: SynthConfig) -> dict:
    """`cue`: whether the object's colour names its true direction; `cue_solution`: the answer the
    colour names, in the solution's form (the option letter for multiple choice)."""
    track = scene.tracks[0]
    said = config.cue_direction(track.color)
    if q.options:
        said = next(o.split(". ", 1)[0] for o in q.options if o.split(". ", 1)[1] == said)
    truth = direction_of(track.cells)
    return {"cue": "consistent" if config.cue_direction(track.color) == truth else "conflicting",
            "cue_solution": f"<answer>{said}</answer>"}


def describe_file(specs: list[Spec], rng: random.Random,
                  config: SynthConfig) -> tuple[list[Hosted], list[dict]]:
    """One description per scene, on scenes drawn like those of the training questions."""
    scenes, hosts = pack(specs, rng, config, "describe", held_out=False, per_scene=1)
    records = []
    for i, host in enumerate(hosts):
        where = "at each time step" if host.data_type == "video" else "in the image"
        problem = f"Describe each object and where it is {where}."
        q = Question(problem, [], describe(host.scene, config.grid), "")
        records.append(_record(f"describe-{i:06d}", host, "free-form", q, "describe", host.scene.changes))
    return scenes, records


def synthesize(out_dir: Path, n: int, seed: int, config: SynthConfig | None = None) -> SynthSummary:
    """Write the synthetic data set with `n` training questions to `out_dir` (also its media root)."""
    start, config, out_dir = time.perf_counter(), config or SynthConfig(), Path(out_dir)
    for folder in ("videos", "images"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    held_out = max(50, n // 4) if config.eval_size is None else config.eval_size
    sizes = {"rl_train": n, "cot_train": n if config.cot_size is None else config.cot_size,
             "eval": held_out, "describe": n if config.describe_size is None else config.describe_size,
             "rl_eval": held_out}
    renderer, outputs = Renderer(config.size, config.grid, config.background), {}
    for name in FILES:
        rng = random.Random(f"videor1.synth:{seed}:{name}")  # one stream per file
        specs = plan(sizes[name], config.for_file(name), rng)
        if name == "describe":
            scenes, records = describe_file(specs, rng, config)
        else:
            prefix = name.removesuffix("_train")
            scenes, records = question_file(specs, rng, config, prefix, name in HELD_OUT,
                                            name == "cot_train", cued=name in CUED)
        for host in scenes:
            frames = renderer.frames(host.scene)
            if host.data_type == "video":
                write_video(out_dir / host.media, frames, config.fps, config.repeat, config.crf)
            else:
                write_image(out_dir / host.media, frames[0])
        kind = CotRecord if name == "cot_train" else EvalRecord if name in HELD_OUT else Record
        write_records([kind.model_validate(r) for r in records], out_dir / f"{name}.json")
        outputs[name] = (scenes, records)
    meta = {"seed": seed, "n": n, "config": config.model_dump(mode="json")}
    (out_dir / "synth_config.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    def count(key: str) -> dict[str, dict[str, int]]:
        return {name: dict(sorted(Counter(r[key] for r in recs).items()))
                for name, (_, recs) in outputs.items()}

    hosts = [h for scenes, _ in outputs.values() for h in scenes]
    return SynthSummary(
        out_dir=str(out_dir), seed=seed, files={name: len(recs) for name, (_, recs) in outputs.items()},
        videos=sum(h.data_type == "video" for h in hosts), images=sum(h.data_type == "image" for h in hosts),
        tasks=count("task"), problem_types=count("problem_type"), data_types=count("data_type"),
        temporal={name: sum(r["temporal"] for r in recs) for name, (_, recs) in outputs.items()},
        seconds=round(time.perf_counter() - start, 3))
