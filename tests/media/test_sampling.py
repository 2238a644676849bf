"""Frame-count, frame-index and resize rules against qwen-vl-utils, the test-only oracle."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from qwen_vl_utils import vision_process as qwen

from videor1.media.sampling import (
    FPS,
    FPS_MAX_FRAMES,
    FPS_MIN_FRAMES,
    FRAME_FACTOR,
    MAX_RATIO,
    FrameSampling,
    frame_indices,
    frame_range,
    geometry_problem,
    smart_nframes,
    smart_resize,
    video_frame_size,
)


def outcome(fn, *args, **kwargs):
    """fn's result, or the ValueError class when it raises one (so raising cases compare too)."""
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return ValueError


def test_constants_are_qwens():
    assert (FRAME_FACTOR, FPS, FPS_MIN_FRAMES, FPS_MAX_FRAMES, MAX_RATIO) == (
        qwen.FRAME_FACTOR, qwen.FPS, qwen.FPS_MIN_FRAMES, qwen.FPS_MAX_FRAMES, qwen.MAX_RATIO)


# --- smart_resize ---------------------------------------------------------------------------------

sides = st.one_of(st.integers(1, 64), st.integers(1, 8000))


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(height=sides, width=sides, factor=st.sampled_from([28, 32]),
       min_tokens=st.integers(1, 1024), extra_tokens=st.integers(0, 16384))
def test_smart_resize_equals_qwen(height, width, factor, min_tokens, extra_tokens):
    min_pixels = min_tokens * factor * factor
    max_pixels = min_pixels + extra_tokens * factor * factor // 2  # not always a whole number of tokens
    ours = outcome(smart_resize, height, width, factor, min_pixels, max_pixels)
    theirs = outcome(qwen.smart_resize, height, width, factor, min_pixels, max_pixels)
    if theirs is ValueError:
        assert ours is ValueError and max(height, width) / min(height, width) > MAX_RATIO
        return
    # qwen-vl-utils can floor a side to 0 when downscaling a very elongated frame; we keep >= factor.
    assert ours == (max(factor, theirs[0]), max(factor, theirs[1]))
    assert ours[0] % factor == 0 and ours[1] % factor == 0
    if min(theirs) >= factor:
        assert ours == theirs


def test_smart_resize_examples_and_errors():
    assert smart_resize(720, 1280) == qwen.smart_resize(720, 1280, 28)
    assert smart_resize(48, 64, 28, 128 * 28 * 28, 128 * 28 * 28) == (280, 392)  # small videos are upsized
    assert smart_resize(1080, 1920, 32, 4 * 32 * 32, 256 * 32 * 32) == qwen.smart_resize(
        1080, 1920, 32, 4 * 32 * 32, 256 * 32 * 32)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 201)
    with pytest.raises(ValueError, match="min_pixels"):
        smart_resize(100, 100, 28, 1000, 999)
    with pytest.raises(ValueError, match=">= 1"):
        smart_resize(0, 100)


def test_geometry_problem():
    assert geometry_problem(48, 64) is None
    assert "aspect ratio" in geometry_problem(2, 600)
    assert "empty side" in geometry_problem(0, 10)
    assert "per side" in geometry_problem(20000, 10000)
    assert geometry_problem(20000, 10000, max_side=None) is None


# --- smart_nframes and frame_range ------------------------------------------------------------------

video_fps = st.one_of(st.integers(1, 120).map(float), st.floats(0.5, 120, allow_nan=False),
                      st.sampled_from([30000 / 1001, 24000 / 1001, 25.0]))


@st.composite
def samplings(draw):
    """(FrameSampling, the same settings as a qwen-vl-utils `ele` dict)."""
    if draw(st.booleans()):
        nframes = draw(st.integers(2, 1000))
        return FrameSampling(nframes=nframes), {"nframes": nframes}
    fps = draw(st.floats(0.05, 30, allow_nan=False))
    min_frames = draw(st.integers(1, 64))
    max_frames = draw(st.integers(min_frames, 1000))
    return (FrameSampling(fps=fps, min_frames=min_frames, max_frames=max_frames),
            {"fps": fps, "min_frames": min_frames, "max_frames": max_frames})


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(pair=samplings(), total_frames=st.integers(1, 200_000), fps=video_fps)
def test_smart_nframes_equals_qwen(pair, total_frames, fps):
    sampling, ele = pair
    ours = outcome(smart_nframes, sampling, total_frames, fps)
    assert ours == outcome(qwen.smart_nframes, ele, total_frames, fps)
    if ours is not ValueError:
        assert ours % FRAME_FACTOR == 0 and FRAME_FACTOR <= ours <= total_frames


@settings(max_examples=300, deadline=None)
@given(total_frames=st.integers(1, 200_000), fps=video_fps)
def test_default_sampling_equals_qwen_defaults(total_frames, fps):
    # qwen-vl-utils' default max_frames is min(768, total_frames); ours is 768, then clamped: same result.
    ours = outcome(smart_nframes, FrameSampling(), total_frames, fps)
    assert ours == outcome(qwen.smart_nframes, {}, total_frames, fps)


@st.composite
def time_ranges(draw, duration):
    def seconds():
        return draw(st.one_of(st.none(), st.floats(0, duration * 1.2, allow_nan=False)))

    start, end = seconds(), seconds()
    assume(start is None or end is None or start < end)
    return start, end


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(data=st.data(), total_frames=st.integers(1, 20_000), fps=video_fps)
def test_frame_range_equals_qwen(data, total_frames, fps):
    start, end = data.draw(time_ranges(total_frames / fps))
    ours = outcome(frame_range, FrameSampling(start=start, end=end), total_frames, fps)
    ele = {key: value for key, value in (("video_start", start), ("video_end", end)) if value is not None}
    assert ours == outcome(qwen.calculate_video_frame_range, ele, total_frames, fps)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), pair=samplings(), total_frames=st.integers(2, 20_000), fps=video_fps)
def test_whole_pipeline_matches_qwens_decord_reader(data, pair, total_frames, fps):
    """Range, count and indices as qwen-vl-utils' decord/torchcodec readers compute them."""
    sampling, ele = pair
    start, end = data.draw(time_ranges(total_frames / fps))
    sampling = dataclasses.replace(sampling, start=start, end=end)
    ele = {**ele, **{k: v for k, v in (("video_start", start), ("video_end", end)) if v is not None}}
    try:
        first, last, count = qwen.calculate_video_frame_range(ele, total_frames, fps)
        nframes = qwen.smart_nframes(ele, total_frames=count, video_fps=fps)
    except ValueError:
        with pytest.raises(ValueError):
            smart_nframes(sampling, frame_range(sampling, total_frames, fps)[2], fps)
        return
    assert frame_range(sampling, total_frames, fps) == (first, last, count)
    assert smart_nframes(sampling, count, fps) == nframes
    theirs = torch.linspace(first, last, nframes).round().long().tolist()
    ours = frame_indices(total_frames, nframes, first, last)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) <= 1


# --- frame_indices -------------------------------------------------------------------------------

@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(data=st.data(), total_frames=st.integers(2, 200_000))
def test_frame_indices_equal_torch_linspace_up_to_float32_ties(data, total_frames):
    start = data.draw(st.integers(0, total_frames - 2))
    end = data.draw(st.integers(start + 1, total_frames - 1))
    nframes = data.draw(st.integers(2, min(end - start + 1, 1000)))
    ours = frame_indices(total_frames, nframes, start, end)
    theirs = torch.linspace(start, end, nframes).round().long().tolist()
    # float32 error on values around `end`: a few units in the last place
    tolerance = 8 * float(np.spacing(np.float32(end)))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:  # only where the exact position is (within float32 error of) halfway between frames
            exact = start + Fraction((end - start) * i, nframes - 1)
            distance_to_tie = abs(exact - math.floor(exact) - Fraction(1, 2))
            assert abs(a - b) == 1 and distance_to_tie <= tolerance, (i, exact)
    assert ours[0] == start and ours[-1] == end and len(ours) == nframes
    assert all(b > a for a, b in zip(ours, ours[1:]))  # strictly increasing: no frame twice


def test_frame_indices_examples():
    assert frame_indices(40, 8) == [0, 6, 11, 17, 22, 28, 33, 39]
    assert frame_indices(40, 4, 10, 30) == [10, 17, 23, 30]
    assert frame_indices(10, 1) == [0]
    assert frame_indices(11, 3) == [0, 5, 10]
    with pytest.raises(ValueError, match="not inside"):
        frame_indices(10, 4, 5, 10)


# --- FrameSampling and video_frame_size ------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"nframes": 1}, "nframes=1"),
    ({"fps": 0}, "fps=0"),
    ({"min_frames": 10, "max_frames": 4}, "min_frames=10 > max_frames=4"),
    ({"start": 3.0, "end": 2.0}, "start=3.0 >= end=2.0"),
    ({"start": -1.0}, "start=-1.0"),
    ({"min_pixels": 2000, "max_pixels": 1000}, "min_pixels=2000 > max_pixels=1000"),
    ({"factor": 0}, "factor=0"),
    ({"total_pixels": 0}, "total_pixels=0"),
])
def test_frame_sampling_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match="invalid FrameSampling") as error:
        FrameSampling(**kwargs)
    assert message in str(error.value)


def test_frame_sampling_reports_every_problem_at_once():
    with pytest.raises(ValueError) as error:
        FrameSampling(nframes=0, fps=-1, min_pixels=10, max_pixels=5)
    assert all(part in str(error.value) for part in ("nframes=0", "fps=-1", "min_pixels=10"))


def test_frame_sampling_defaults_are_the_papers_training_budget():
    sampling = FrameSampling(nframes=16)
    assert (sampling.min_pixels, sampling.max_pixels, sampling.factor) == (128 * 28 * 28, 128 * 28 * 28, 28)
    budget = 128 * 28 * 28
    assert video_frame_size(720, 1280, 16, sampling) == smart_resize(720, 1280, 28, budget, budget)


@pytest.mark.parametrize("nframes", [2, 16, 64, 768])
def test_total_pixels_budget_follows_qwen(nframes):
    sampling = FrameSampling(nframes=nframes, min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28,
                             total_pixels=20480 * 28 * 28)
    # fetch_video: max(min(768*28*28, total / nframes * 2), int(min * 1.05)), then min with max_pixels
    cap = max(min(768 * 28 * 28, 20480 * 28 * 28 / nframes * FRAME_FACTOR), int(128 * 28 * 28 * 1.05))
    assert video_frame_size(1080, 1920, nframes, sampling) == qwen.smart_resize(1080, 1920, 28, 128 * 28 * 28,
                                                                                cap)
    no_budget = FrameSampling(nframes=nframes, max_pixels=768 * 28 * 28)  # then nframes does not matter
    assert video_frame_size(1080, 1920, nframes, no_budget) == smart_resize(1080, 1920, 28, 128 * 28 * 28,
                                                                           768 * 28 * 28)
