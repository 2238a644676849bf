"""The synthetic data set: determinism, valid records, real media that show what the records say,
questions whose answers need frame order exactly when they are marked temporal."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from videor1.data.records import option_letter, option_text
from videor1.data.synth import (
    REASONING,
    TASKS,
    ShortcutConfig,
    SynthConfig,
    new_scene,
    plan,
    question_file,
    synthesize,
)
from videor1.data.synth_scenes import (
    COLOR_RGB,
    DIRECTIONS,
    OPPOSITE,
    WORDS,
    Renderer,
    Scene,
    Track,
    _text_mask,
    cell_center,
    direction_of,
)
from videor1.data.validate import validate_records
from videor1.media.check import open_problem
from videor1.rewards import PROBLEM_TYPES, accuracy_reward, format_reward

KINDS = {"rl_train": "train", "cot_train": "cot", "eval": "eval", "describe": "train", "rl_eval": "eval"}
SMALL = SynthConfig(cot_size=12, eval_size=10, describe_size=12)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(out, n=60, seed=0)


def load(out: Path, name: str) -> list[dict]:
    return json.loads((out / f"{name}.json").read_text())


def decode(path: Path) -> tuple[list[np.ndarray], float, str]:
    """(RGB frames, average frame rate, codec name)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate), stream.codec_context.name


def answer_word(record: dict) -> str:
    answer = record["solution"].removeprefix("<answer>").removesuffix("</answer>")
    if record["problem_type"] != "multiple choice":
        return answer
    return next(option_text(o) for o in record["options"] if option_letter(o) == answer)


def permuted(scene: Scene, order: tuple[int, ...]) -> Scene:
    tracks = tuple(Track(t.shape, tuple(t.colors[i] for i in order), tuple(t.cells[i] for i in order))
                   for t in scene.tracks)
    return Scene(scene.kind, tracks, scene.instants, scene.text)


def located(frame: np.ndarray, track: Track, grid: int = 3) -> tuple[int, int] | None:
    """The cell whose centre pixel shows the track's colour (None when no cell does)."""
    hits = []
    for cell in itertools.product(range(grid), repeat=2):
        y, x = cell_center(cell, frame.shape[0], grid)
        colors = {c for c in track.colors if c is not None}
        if any(np.abs(frame[y, x].astype(int) - COLOR_RGB[c]).max() <= 30 for c in colors):
            hits.append(cell)
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    runs = [synthesize(tmp_path / name, n=16, seed=seed, config=SMALL) for name, seed in
            (("a", 3), ("b", 3), ("c", 4))]
    a, b, c = (tmp_path / name for name in "abc")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert any(str(f).endswith(".mp4") for f in files) and any(str(f).endswith(".png") for f in files)
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert runs[0].files == runs[1].files
    for name in KINDS:
        assert (a / f"{name}.json").read_text() != (c / f"{name}.json").read_text()
    shared = [rel for rel in files if (c / rel).is_file() and rel.suffix == ".mp4"]
    assert any((a / rel).read_bytes() != (c / rel).read_bytes() for rel in shared)


def test_every_file_validates_without_bad_records(synth):
    out, summary = synth
    assert summary.files == {"rl_train": 60, "cot_train": 60, "eval": 50, "describe": 60, "rl_eval": 50}
    for name, kind in KINDS.items():
        report = validate_records(out / f"{name}.json", kind=kind, open_media=open_problem)
        assert report.bad == [], report.bad[:3]
        assert report.duplicate_ids == []
        assert report.total == summary.files[name]
        assert all(not Path(r.path).is_absolute() for r in report.good)


def test_all_problem_types_data_types_tasks_and_temporality(synth):
    out, summary = synth
    for name in ("rl_train", "cot_train", "eval"):
        records = load(out, name)
        assert {r["problem_type"] for r in records} == set(PROBLEM_TYPES)
        assert {r["data_type"] for r in records} == {"image", "video"}
        assert {r["task"] for r in records} == set(TASKS)
        assert {r["temporal"] for r in records} == {True, False}
        assert all(r["data_type"] == "video" for r in records if r["temporal"])
        assert summary.tasks[name] == {t: sum(r["task"] == t for r in records) for t in sorted(TASKS)}
    train = load(out, "rl_train")
    assert sum(r["temporal"] for r in train) == 30  # temporal_fraction 0.5
    assert sum(r["data_type"] == "image" for r in train) == 15  # image_fraction 0.25
    assert len({r["path"] for r in train}) < len(train)  # some videos carry several questions
    problems = [r["problem"] for r in train]
    assert not any("Options" in p or "<" in p or "\n" in p for p in problems)


def test_eval_scenes_are_disjoint_from_training_scenes(synth):
    out, _ = synth
    def keys(name):
        return {Scene.from_json(r["scene"]).key() for r in load(out, name)}
    def hashes(name):
        return {hashlib.sha1((out / r["path"]).read_bytes()).hexdigest() for r in load(out, name)}
    train = keys("rl_train") | keys("cot_train") | keys("describe")
    for held_out in ("eval", "rl_eval"):
        assert keys(held_out) and not keys(held_out) & train
        assert not hashes(held_out) & (hashes("rl_train") | hashes("cot_train") | hashes("describe"))
        assert {r["path"] for r in load(out, held_out)}.isdisjoint({r["path"] for r in load(out, "rl_train")})


def test_decoded_video_shows_the_scene(synth):
    out, _ = synth
    config = SynthConfig()
    checked = 0
    for record in load(out, "rl_train"):
        scene = Scene.from_json(record["scene"])
        if record["data_type"] != "video" or scene.kind not in ("motion", "wander"):
            continue
        frames, fps, codec = decode(out / record["path"])
        assert len(frames) == config.instants * config.repeat
        assert frames[0].shape == (config.size, config.size, 3)
        assert fps == config.fps and codec == "h264"
        for first, second in zip(frames[::2], frames[1::2]):
            assert np.abs(first.astype(int) - second).max() <= 8  # repeated instant, codec noise only
        track = scene.tracks[0]
        instants = frames[::config.repeat]
        assert located(instants[0], track) == track.cells[0]
        assert located(instants[-1], track) == track.cells[-1]
        assert [located(f, track) for f in instants] == list(track.cells)
        checked += 1
    assert checked >= 5


def test_images_and_blinks_show_the_scene(synth):
    out, _ = synth
    seen = set()
    for record in load(out, "rl_train"):
        scene = Scene.from_json(record["scene"])
        if scene.kind in ("still", "blink", "recolor", "appear"):
            if record["data_type"] == "image":
                frames = [np.array(Image.open(out / record["path"]).convert("RGB"))]
            else:
                frames = decode(out / record["path"])[0][::2]
            for track in scene.tracks:
                for frame, color, cell in zip(frames, track.colors, track.cells):
                    y, x = cell_center(cell, frame.shape[0], 3)
                    if color is None:  # hidden: its colours show in no cell
                        assert located(frame, track) is None
                    else:
                        assert np.abs(frame[y, x].astype(int) - COLOR_RGB[color]).max() <= 30
            seen.add((scene.kind, record["data_type"]))
    assert {("still", "image"), ("blink", "video"), ("recolor", "video"), ("appear", "video")} <= seen


def test_reversed_direction_clip_gives_the_opposite_answer(synth):
    out, _ = synth
    records = [r for r in load(out, "rl_train") + load(out, "eval") if r["task"] == "direction"]
    assert len(records) >= 10
    for record in records:
        scene = Scene.from_json(record["scene"])
        word = answer_word(record)
        assert direction_of(scene.tracks[0].cells) == word
        assert direction_of(scene.reversed().tracks[0].cells) == OPPOSITE[word]
        frames = decode(out / record["path"])[0][::2]
        cells = [located(f, scene.tracks[0]) for f in frames]  # where it is on screen
        moved = np.sign(np.subtract(cells[-1], cells[0])).tolist()
        assert moved == {"right": [0, 1], "left": [0, -1], "down": [1, 0], "up": [-1, 0]}[word]
        assert direction_of(tuple(reversed(cells))) == OPPOSITE[word]  # played backwards


def test_temporal_answers_depend_on_order_and_static_ones_do_not(synth):
    out, _ = synth
    config = SynthConfig()
    for record in load(out, "rl_train") + load(out, "eval"):
        scene = Scene.from_json(record["scene"])
        reasoning = REASONING[record["task"]]
        assert reasoning(scene, config).word == answer_word(record)
        orders = list(itertools.permutations(range(scene.instants)))
        answers = {reasoning(permuted(scene, o), config).word if record["task"] != "direction"
                   else direction_of(permuted(scene, o).tracks[0].cells) for o in orders}
        assert (len(answers) > 1) == record["temporal"], record["problem_id"]
        if record["task"] in ("first_appearance", "color_order"):  # reversing changes the answer
            assert reasoning(scene.reversed(), config).word != answer_word(record)


def test_reward_tells_the_reversed_answer_from_the_right_one(synth):
    out, _ = synth
    config = SynthConfig()
    for record in load(out, "rl_train") + load(out, "eval"):
        if record["task"] in ("direction", "color_order", "first_appearance"):
            scene = Scene.from_json(record["scene"]).reversed()
            wrong = REASONING[record["task"]](scene, config).word
            if record["problem_type"] == "multiple choice":
                wrong = next(option_letter(o) for o in record["options"] if option_text(o) == wrong)
            reward = accuracy_reward(f"<answer>{wrong}</answer>", record["solution"], record["problem_type"],
                                     record["options"])
            assert reward < 0.5, (record["problem_id"], wrong, record["solution"])


def test_cot_states_every_instant_then_ends_with_its_answer(synth):
    out, _ = synth
    for record in load(out, "cot_train"):
        body = record["process"].removeprefix("<think>").removesuffix("</think>")
        answer = record["solution"].removeprefix("<answer>").removesuffix("</answer>")
        assert body.endswith(f" {answer}.")
        if record["data_type"] == "video":
            instants = record["scene"]["instants"]
            positions = [body.find(f"t{t}:") for t in range(1, instants + 1)]
            assert all(p >= 0 for p in positions) and positions == sorted(positions)
            assert len(body.split()) < 80  # short enough for a tiny model
        completion = record["process"] + record["solution"]
        assert format_reward(completion) == 1.0
        # a one-word free-form answer has no bigram, so ROUGE-2 caps its reward at 2/3: compare with
        # the solution scored against itself
        score = accuracy_reward(completion, record["solution"], record["problem_type"], record["options"])
        best = accuracy_reward(record["solution"], record["solution"], record["problem_type"],
                               record["options"])
        assert score == best > 0.5


def test_describe_lists_every_object_at_every_instant(synth):
    out, _ = synth
    records = load(out, "describe")
    assert {r["data_type"] for r in records} == {"image", "video"}
    for record in records:
        scene = Scene.from_json(record["scene"])
        answer = record["solution"].removeprefix("<answer>").removesuffix("</answer>")
        assert record["problem_type"] == "free-form" and record["task"] == "describe"
        assert answer.count(";") == len(scene.tracks) + bool(scene.text) - 1
        if record["data_type"] == "video" and scene.tracks:
            for t in range(1, scene.instants + 1):
                assert answer.count(f"t{t} ") == len(scene.tracks)
        assert record["temporal"] == (record["data_type"] == "video" and scene.changes)
    motion = next(r for r in records if r["scene"]["kind"] == "motion")
    assert motion["solution"].startswith("<answer>the ") and ": t1 " in motion["solution"]


def test_text_is_legible_and_not_clipped():
    for text in WORDS + ("K7Q2",):
        mask = _text_mask(text, 84)
        rows, cols = np.nonzero(mask)
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < 83 and cols.max() < 83
        assert rows.max() - rows.min() >= 15 and cols.max() - cols.min() >= 40  # scaled up ×3


def test_backgrounds_differ_per_cell_and_never_look_like_objects():
    tint = Renderer(84, 3, "tint").background
    centers = {tuple(tint[cell_center(c, 84, 3)]) for c in itertools.product(range(3), repeat=2)}
    assert len(centers) == 9
    for style in ("tint", "gradient", "black"):
        background = Renderer(84, 3, style).background.astype(int)
        for rgb in COLOR_RGB.values():
            assert np.abs(background - rgb).max(axis=-1).min() > 60


def test_config_shares_and_errors(tmp_path):
    config = SynthConfig(temporal_fraction=0.0, image_fraction=0.0, cot_size=4, eval_size=4, describe_size=4,
                         problem_types={"multiple choice": 1.0})
    summary = synthesize(tmp_path, n=8, seed=0, config=config)
    assert summary.temporal["rl_train"] == 0 and summary.images == 0
    assert summary.problem_types["rl_train"] == {"multiple choice": 8}
    with pytest.raises(ValueError, match="background") as error:
        SynthConfig(background="plaid", temporal_fraction=0.9, colors=["red", "mauve"])
    assert "temporal_fraction + image_fraction" in str(error.value) and "mauve" in str(error.value)
    with pytest.raises(ValueError, match="no temporal question"):
        SynthConfig(tasks={"color": 1.0})
    with pytest.raises(ValueError, match="instants"):
        SynthConfig(instants=2)
    with pytest.raises(ValueError, match="two shapes"):
        SynthConfig(shapes=["square"])
    assert SynthConfig(shapes=["square"], tasks={"direction": 1, "color": 1}).shapes == ["square"]
    assert all(f.description for f in SynthConfig.model_fields.values())


def test_a_file_mix_changes_that_file_only(tmp_path):
    """`mix.rl_train` gives RL its own question mix; the other files stay byte for byte what they were."""
    base = SynthConfig(cot_size=12, eval_size=12, describe_size=4)
    mixed = SynthConfig(**{**base.model_dump(), "mix": {"rl_train": {"temporal_fraction": 1.0,
                                                                    "image_fraction": 0.0}}})
    plain, leaning = (synthesize(tmp_path / name, n=12, seed=0, config=config)
                      for name, config in (("plain", base), ("mixed", mixed)))
    assert leaning.temporal["rl_train"] == 12 and plain.temporal["rl_train"] < 12
    for name in ("cot_train.json", "eval.json", "describe.json"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "mixed" / name).read_bytes()
    with pytest.raises(ValueError, match="mix.rl"):
        SynthConfig(mix={"rl": {"tasks": {"color": 1.0}}})
    with pytest.raises(ValueError, match="mix.rl_train"):
        SynthConfig(mix={"rl_train": {"size": 112}})
    with pytest.raises(ValueError, match="mix.rl_train"):  # a mix must be consistent on its own
        SynthConfig(mix={"rl_train": {"temporal_fraction": 0.9, "image_fraction": 0.5}})


@pytest.mark.parametrize("changes", [dict(instants=6, repeat=1, fps=4.0, grid=2, size=56, max_objects=3),
                                     dict(background="gradient", size=112, colors=["red", "cyan", "white"])])
def test_other_clip_shapes_stay_valid(tmp_path, changes):
    config = SynthConfig(**changes, cot_size=8, eval_size=8, describe_size=8)
    synthesize(tmp_path, n=16, seed=0, config=config)
    for name, kind in KINDS.items():
        assert validate_records(tmp_path / f"{name}.json", kind=kind, open_media=open_problem).bad == []
    record = next(r for r in load(tmp_path, "rl_train") if r["data_type"] == "video")
    frames, fps, _ = decode(tmp_path / record["path"])
    assert len(frames) == config.instants * config.repeat and fps == config.fps
    assert frames[0].shape == (config.size, config.size, 3)
    assert record["scene"]["instants"] == config.instants


@pytest.mark.slow
def test_synthesis_speed(tmp_path):
    start = time.perf_counter()
    summary = synthesize(tmp_path, n=200, seed=0)
    seconds = time.perf_counter() - start
    assert summary.videos / seconds >= 25, f"{summary.videos / seconds:.0f} videos/s"


SHORTCUT = SynthConfig(shortcut=ShortcutConfig(agreement=0.9), tasks={"direction": 1, "color": 1},
                       temporal_fraction=0.6, image_fraction=0.2)


def test_shortcut_cue_predicts_direction_in_training_only():
    """Training scenes: the colour names the direction 90 % of the time. Evaluation scenes: colour and
    direction are independent, so the colour tells nothing about the answer there."""
    rng = random.Random(0)
    counts = {held_out: Counter() for held_out in (False, True)}
    for held_out in (False, True):
        for _ in range(2000):
            track = new_scene("direction", "video", rng, SHORTCUT, held_out, cued=not held_out).tracks[0]
            counts[held_out][track.color, direction_of(track.cells)] += 1
    train, held = counts[False], counts[True]
    agree = {split: sum(n for (c, d), n in table.items() if SHORTCUT.cue_direction(c) == d) / 2000
             for split, table in (("train", train), ("eval", held))}
    assert 0.87 < agree["train"] < 0.93
    assert 0.22 < agree["eval"] < 0.28  # chance: one colour of four
    for color in SHORTCUT.colors:  # the answer given the colour: uniform within sampling noise
        row = [held[color, d] for d in DIRECTIONS]
        assert max(row) / sum(row) < 0.33, (color, row)


@pytest.mark.parametrize("cot_answers", ["random", "routes"])
def test_shortcut_records_say_what_the_cue_says(cot_answers):
    config = SHORTCUT.model_copy(update={"shortcut": ShortcutConfig(agreement=0.9, cot_answers=cot_answers,
                                                                    cue_route=0.5)})
    rng = random.Random(1)
    specs = plan(160, config, rng)
    # rl_train, cot_train, eval, rl_eval (the RL distribution's cue on held-out scenes)
    for held_out, cot, cue in ((False, False, True), (False, True, False), (True, False, False),
                               (True, False, True)):
        scenes, records = question_file(specs, rng, config, "x", held_out, cot, cued=cue)
        assert {h.media for h in scenes} == {r["path"] for r in records}  # no video rendered for nothing
        cued = [r for r in records if r["task"] == "direction"]
        assert cued and all("cue" not in r for r in records if r["task"] != "direction")
        routes = Counter()
        for r in cued:
            track = Scene.from_json(r["scene"]).tracks[0]
            truth, says = direction_of(track.cells), config.cue_direction(track.color)
            assert r["cue"] == ("consistent" if truth == says else "conflicting")
            cue_answer = {"solution": r["cue_solution"], "problem_type": r["problem_type"],
                          "options": r["options"]}
            assert answer_word(cue_answer) == says
            if not cot:
                assert answer_word(r) == truth
                continue
            assert f"the direction is {answer_word(r)}" in r["process"]
            if cot_answers == "random":  # a random direction, with no cells to read it from
                assert " t1" not in r["process"]
            elif "t1:" in r["process"]:  # the order's route: the cells, then the true direction
                routes["order"] += 1
                assert answer_word(r) == truth
            else:  # the cue's route: the colour names the answer, and the frames agree
                routes["cue"] += 1
                assert answer_word(r) == says == truth and f"is {track.color}" in r["process"]
        # the cue lives in the RL files only (and in the cold start's own cue-route scenes)
        plain = [r for r in cued if not (cot and cot_answers == "routes" and "t1:" not in r["process"])]
        consistent = sum(r["cue"] == "consistent" for r in plain) / len(plain)
        if cue:
            assert consistent > 0.75, (held_out, consistent)
        else:
            assert consistent < 0.45, (held_out, cot, consistent)
        if cot and cot_answers == "random":
            agree = sum(answer_word(r) == direction_of(Scene.from_json(r["scene"]).tracks[0].cells)
                        for r in cued)
            assert agree < 0.6 * len(cued)
        if cot and cot_answers == "routes":  # both routes taught, in about the configured shares
            assert 0.3 < routes["cue"] / len(cued) < 0.7, routes


def test_shortcut_needs_one_colour_per_direction():
    with pytest.raises(ValueError, match="one colour per direction"):
        SynthConfig(colors=["red", "green", "blue"], shortcut=ShortcutConfig())
