"""`videor1 doctor`: is this machine ready to train? One row per check, a likely fix for each failure.

In order: the versions that matter (each against what videor1 declares), CUDA, a video round trip
(encode an H.264 mp4 with PyAV, read it back with `videor1.media.read_video`), the Qwen2.5-VL
processor on the decoded clip, and one T-GRPO step on a tiny model built on the spot. A failing
check does not stop the others. Everything runs offline in a temporary directory, in ~30 s on 2 cores.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# The video of the round trip: 16 flat grey frames at 8 fps, frame i at grey level 20 + 12 i, so that a
# decoded frame tells which source frame it is. 8 frames of 56x56 are sampled (2x2 merged tokens).
FRAMES, FPS, SIDE, NFRAMES, PIXELS = 16, 8, 64, 8, 56 * 56
PIN = "pip install 'torch==2.14.1' 'torchvision==0.29.2'"  # the tested pair (pyproject.toml)


class DoctorError(Exception):
    """A failed check: what went wrong, and the likely fix."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


@dataclass
class Check:
    name: str
    run: Callable[[dict], str]  # state shared between checks -> detail; raises on failure
    fix: str  # shown when `run` raises anything but a DoctorError carrying its own fix


@dataclass
class Row:
    check: str
    ok: bool
    detail: str
    seconds: float


# ---------------------------------------------------------------------------------------------- versions

def _requirement(package: str):
    """videor1's declared requirement on `package` (a packaging Requirement), or None."""
    from packaging.requirements import Requirement

    try:
        declared = importlib.metadata.requires("videor1") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for line in declared:
        requirement = Requirement(line)
        if requirement.name.lower() == package.lower() and requirement.marker is None:
            return requirement
    return None


def _package(package: str, module: str, fix: str | None = None) -> str:
    """Import `module`; its distribution's version, checked against videor1's requirement."""
    requirement = _requirement(package)
    install = fix or f"pip install '{requirement or package}'"
    try:
        importlib.import_module(module)
        version = importlib.metadata.version(package)
    except Exception as error:  # ImportError, or an ABI mismatch surfacing as anything
        raise DoctorError(f"cannot import {module}: {type(error).__name__}: {error}", install) from error
    if requirement is not None and not requirement.specifier.contains(version, prereleases=True):
        raise DoctorError(f"{package} {version} is outside videor1's requirement {requirement}", install)
    if requirement is None or not requirement.specifier:
        return version
    return f"{version} (needs {requirement.specifier})"


def check_python(state: dict) -> str:
    if sys.version_info < (3, 11):
        raise DoctorError(f"Python {platform.python_version()} is too old", "use Python 3.11 or newer")
    return f"{platform.python_version()} ({platform.machine()}, {platform.system()})"


def check_torch(state: dict) -> str:
    version = _package("torch", "torch", PIN)
    import torch

    return f"{version}, {'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU-only build'}, " \
           f"{torch.get_num_threads()} threads"


def check_torchvision(state: dict) -> str:
    version = _package("torchvision", "torchvision", PIN)
    import torch
    import torchvision

    try:  # its compiled ops load only when built for this torch
        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except Exception as error:
        raise DoctorError(f"torchvision {torchvision.__version__} was not built for torch "
                          f"{torch.__version__} ({type(error).__name__}: "
                          f"{error})", f"pin the pair: {PIN}") from error
    return version


def check_transformers(state: dict) -> str:
    version = _package("transformers", "transformers")
    import inspect

    from transformers import Qwen2_5_VLModel

    if "mm_encoder_outputs" not in inspect.signature(Qwen2_5_VLModel.forward).parameters:
        raise DoctorError(f"transformers {version} has no `mm_encoder_outputs` (shared vision embeddings)",
                          "pip install 'transformers>=5.23,<6'")
    return version


def check_accelerate(state: dict) -> str:
    return _package("accelerate", "accelerate")


def check_pyav(state: dict) -> str:
    version = _package("av", "av", "pip install 'av>=14' (the PyPI wheels bundle FFmpeg with libx264)")
    import av

    libs = av.library_versions
    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    codec = ".".join(map(str, libs.get("libavcodec", ())))
    return f"{version}, FFmpeg {ffmpeg or '?'} (libavcodec {codec})"


def check_pillow(state: dict) -> str:
    return _package("pillow", "PIL")


def check_peft(state: dict) -> str:
    return _package("peft", "peft", "pip install 'peft>=0.17,<1' (needed for model.lora)")


def check_cuda(state: dict) -> str:
    import torch

    if not torch.cuda.is_available():
        built = f"torch built with CUDA {torch.version.cuda}, but no GPU is visible" if torch.version.cuda \
            else "CPU-only torch"
        return f"no CUDA ({built}): training runs on the CPU"
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append(f"{i}: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    bf16 = torch.cuda.is_bf16_supported()
    note = "" if bf16 else "; no bfloat16: set model.dtype=float16 or float32"
    return (f"CUDA {torch.version.cuda}, {len(devices)} GPU(s): {', '.join(devices)}; "
            f"bf16 {'yes' if bf16 else 'no'}{note}")


# ---------------------------------------------------------------------------------------------- video

def _grey(i: int) -> int:
    return 20 + 12 * i


def check_video(state: dict) -> str:
    """Encode an H.264 mp4 with PyAV, then `read_video` 8 of its 16 frames: count, timing and content."""
    from fractions import Fraction

    import av
    import numpy as np

    from videor1.media import FrameSampling, frame_indices, read_video

    path = Path(state["tmp"]) / "doctor.mp4"
    try:
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(FPS))
            stream.width = stream.height = SIDE
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "0", "preset": "ultrafast", "bf": "0"}
            for i in range(FRAMES):
                pixels = np.full((SIDE, SIDE, 3), _grey(i), np.uint8)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
    except Exception as error:
        raise DoctorError(f"PyAV cannot encode H.264 ({type(error).__name__}: {error})",
                          "install the av>=14 wheels from PyPI (they bundle FFmpeg with libx264): "
                          "pip install --force-reinstall 'av>=14'") from error
    sampling = FrameSampling(nframes=NFRAMES, min_pixels=PIXELS, max_pixels=PIXELS)
    try:
        clip = read_video(path, sampling)
    except Exception as error:
        raise DoctorError(f"cannot decode the H.264 mp4 just written ({type(error).__name__}: {error})",
                          "reinstall PyAV from the PyPI wheels: pip install --force-reinstall "
                          "'av>=14'") from error

    expected = frame_indices(FRAMES, NFRAMES)
    problems = []
    if clip.frames.shape != (NFRAMES, 56, 56, 3):
        problems.append(f"frames {tuple(clip.frames.shape)}, expected {(NFRAMES, 56, 56, 3)}")
    if clip.indices != expected:
        problems.append(f"indices {clip.indices}, expected {expected}")
    wrong_time = [(i, t) for i, t in zip(expected, clip.timestamps) if abs(t - i / FPS) > 1e-3]
    if wrong_time:
        problems.append(f"timestamps {clip.timestamps}, expected {[i / FPS for i in expected]}")
    if abs(clip.sampled_fps - NFRAMES / FRAMES * FPS) > 1e-6:
        problems.append(f"sampled fps {clip.sampled_fps}, expected {NFRAMES / FRAMES * FPS}")
    greys = [float(frame.mean()) for frame in clip.frames]
    if any(abs(g - _grey(i)) > 4 for g, i in zip(greys, expected)):
        problems.append(f"frame content {[round(g) for g in greys]}, expected {[_grey(i) for i in expected]} "
                        "(the wrong frames were decoded)")
    if problems:
        raise DoctorError("the round trip changed the video: " + "; ".join(problems),
                          "seeking or timing is wrong in this FFmpeg build: use the PyPI wheels of av>=14 "
                          "and report the doctor output")
    state["clip"] = clip
    return f"{FRAMES} frames at {FPS} fps written; {NFRAMES} read back at the right times and content " \
           f"({clip.sampled_fps:g} fps sampled, {clip.frames.shape[2]}x{clip.frames.shape[1]})"


# ---------------------------------------------------------------------------------------------- processor

def _in_memory_clip():
    """The round trip's clip without any file: used when the video check failed."""
    import numpy as np

    from videor1.media import Clip, VideoInfo, frame_indices

    indices = frame_indices(FRAMES, NFRAMES)
    frames = np.stack([np.full((56, 56, 3), _grey(i), np.uint8) for i in indices])
    info = VideoInfo(Path("in-memory"), SIDE, SIDE, float(FPS), FRAMES, FRAMES / FPS)
    return Clip(frames, [i / FPS for i in indices], NFRAMES / FRAMES * FPS, indices, info)


def check_processor(state: dict) -> str:
    """A tiny tokenizer + the real Qwen2.5-VL processor on the clip: grid, placeholders and timing."""
    from videor1.models.inputs import Prompt, encode
    from videor1.models.tiny import build_processor, build_tokenizer, corpus_from_records

    clip = state.get("clip")
    source = "the decoded clip"
    if clip is None:
        clip, source = _in_memory_clip(), "in-memory frames (the video check failed)"
    try:
        tokenizer = build_tokenizer(corpus_from_records([]), 1024)
        processor = build_processor("qwen2_5_vl", tokenizer, PIXELS, PIXELS)
        batch = encode(processor, [Prompt("Which way does the square move?", video=clip)])
    except ImportError as error:
        raise DoctorError(f"the processor needs a missing package ({error})",
                          f"pip install pillow and a torchvision matching torch: {PIN}") from error
    grid = batch["video_grid_thw"].tolist()
    expected_grid = [[NFRAMES // 2, 56 // 14, 56 // 14]]
    tokens = int((batch["input_ids"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum())
    expected_tokens = NFRAMES // 2 * 4 * 4 // 4
    seconds = batch.get("second_per_grid_ts")
    expected_seconds = 2 / clip.sampled_fps  # one temporal patch = 2 frames
    problems = []
    if grid != expected_grid:
        problems.append(f"video_grid_thw {grid}, expected {expected_grid}")
    if tokens != expected_tokens:
        problems.append(f"{tokens} <|video_pad|> tokens, expected {expected_tokens}")
    if seconds is None:
        problems.append("no second_per_grid_ts in the processor output")
    elif abs(float(seconds[0]) - expected_seconds) > 1e-4:
        problems.append(f"second_per_grid_ts {float(seconds[0]):g}, expected {expected_seconds:g} "
                        f"(2 frames at {clip.sampled_fps:g} fps): the processor ignored the video's fps")
    if "mm_token_type_ids" not in batch:
        problems.append("no mm_token_type_ids: Qwen2.5-VL would fall back to 1-D positions")
    if problems:
        raise DoctorError("; ".join(problems),
                          "use transformers>=5.23,<6 (videor1 passes each video's metadata "
                          "and mm_token_type_ids)")
    return f"on {source}: grid {grid[0]}, {tokens} video tokens, second_per_grid_ts {float(seconds[0]):g} s"


# ---------------------------------------------------------------------------------------------- RL step

def check_rl_step(state: dict) -> str:
    """Synthesise 8 questions, build a tiny model, train 1 T-GRPO step (G=2, 2 prompts, 8 new tokens)."""
    import json
    import math

    import torch

    from videor1.data.synth import SynthConfig, synthesize
    from videor1.models.tiny import build_tiny_from_records
    from videor1.train.config import load_config
    from videor1.train.rl import train

    root = Path(state["tmp"]) / "rl"
    try:
        synthesize(root / "synth", n=8, seed=0, config=SynthConfig(cot_size=0, eval_size=0, describe_size=0))
        build_tiny_from_records(root / "tiny", [root / "synth" / "rl_train.json"])
    except Exception as error:
        raise DoctorError(f"cannot build the tiny model or its data ({type(error).__name__}: {error})",
                          "check the PyAV and transformers rows above") from error
    overrides = {
        "model.path": root / "tiny", "model.dtype": "float32",
        "data.train_file": root / "synth" / "rl_train.json", "data.max_prompt_tokens": 2048,
        "media.nframes": 4, "media.video_min_pixels": PIXELS, "media.video_max_pixels": PIXELS,
        "media.image_min_pixels": PIXELS, "media.image_max_pixels": PIXELS, "sampling.max_new_tokens": 8,
        "algo.num_generations": 2, "algo.num_shuffled": 1, "algo.skip_shuffled": False, "run.max_steps": 1,
        "run.prompts_per_device": 2, "run.output_dir": root / "run", "run.tensorboard": False,
        "run.log_every": 1_000_000,
    }
    config = load_config(None, [f"{key}={value}" for key, value in overrides.items()])
    train(config, progress=False)
    path = root / "run" / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) != 1:
        raise DoctorError(f"{path} has {len(lines)} lines after 1 step, expected 1",
                          "report the doctor output: the trainer wrote no metrics line for its step")
    metrics = json.loads(lines[0])
    loss = metrics.get("train/loss")
    if loss is None or not math.isfinite(loss):
        raise DoctorError(f"the step's loss is {loss}", "report the doctor output: the update is broken here")
    device = "GPU" if torch.cuda.is_available() else "CPU"
    return f"1 step on the {device}: loss {loss:.3g}, {metrics.get('temporal/video_groups') or 0:g} video " \
           f"group(s) with their shuffled group, checkpoint saved"


# ---------------------------------------------------------------------------------------------- launch config

# What each accelerate launch needs beyond the base install: the `[gpu]` extra (pyproject.toml) declares
# the tested ranges; the install line installs them.
GPU_INSTALL = "pip install 'videor1[gpu]'"


def _optional(package: str, module: str) -> str | None:
    """The installed version of `package` (importing `module`), or None when it does not import."""
    try:
        importlib.import_module(module)
        return importlib.metadata.version(package)
    except Exception:  # ImportError, or a broken build surfacing as anything
        return None


def launch_config_problems(path: Path) -> tuple[str, list[str]]:
    """(what the accelerate config asks for, what this machine lacks for it: one line each)."""
    import torch
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise DoctorError(f"{path}: cannot read the accelerate config ({error})",
                          "give a file written by `accelerate config` (see configs/accelerate/)") from error
    kind = str(config.get("distributed_type", "NO"))
    processes, machines = int(config.get("num_processes", 1)), int(config.get("num_machines", 1))
    precision = str(config.get("mixed_precision", "no"))
    summary = f"{kind}, {processes} process(es) on {machines} machine(s), mixed precision {precision}"
    problems = []
    if kind == "DEEPSPEED":
        version = _optional("deepspeed", "deepspeed")
        if version is None:
            problems.append(f"deepspeed is not installed (ZeRO-3 needs it): {GPU_INSTALL} "
                            "(or pip install 'deepspeed>=0.17,<0.20'); DeepSpeed runs on CUDA GPUs only")
        stage = (config.get("deepspeed_config") or {}).get("zero_stage")
        if stage not in (None, 3):
            problems.append(f"zero_stage {stage}: videor1's lockstep measures are written for ZeRO-3 "
                            "(stages 1-2 replicate the weights and need none); say zero_stage: 3")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind in ("DEEPSPEED", "FSDP", "MULTI_GPU") and not config.get("use_cpu", False):
        per_machine = processes // max(machines, 1)
        if gpus == 0:
            problems.append(f"{kind} with GPUs asked for, but torch sees no CUDA GPU here")
        elif per_machine > gpus:
            problems.append(f"{per_machine} process(es) per machine but {gpus} GPU(s) visible here")
    if precision == "bf16" and gpus and not torch.cuda.is_bf16_supported():
        problems.append("mixed_precision bf16 but this GPU has no bf16 (pre-Ampere): use fp16 or no")
    if machines > 1:
        for key in ("main_process_ip", "main_process_port"):
            if not config.get(key):
                problems.append(f"{machines} machines need {key} (the rank-0 machine's) in the config")
    return summary, problems


def check_launch_config(state: dict) -> str:
    summary, problems = launch_config_problems(state["accelerate_config"])
    if problems:
        raise DoctorError(f"{summary}: " + "; ".join(problems), "install or change what is listed; rerun")
    flash = _optional("flash-attn", "flash_attn")
    return f"{summary}: ready" + (f" (flash-attn {flash})" if flash else "")


# ---------------------------------------------------------------------------------------------- running

def checks(accelerate_config: Path | None = None) -> list[Check]:
    """The checks in order (built at call time, so that each function can be replaced in tests); with an
    accelerate config, first what that launch needs."""
    launch = [Check("launch config", check_launch_config, GPU_INSTALL)] if accelerate_config else []
    return launch + [
        Check("python", check_python, "use Python 3.11 or newer"),
        Check("torch", check_torch, PIN),
        Check("torchvision", check_torchvision, PIN),
        Check("transformers", check_transformers, "pip install 'transformers>=5.23,<6'"),
        Check("accelerate", check_accelerate, "pip install 'accelerate>=1.10,<2'"),
        Check("PyAV / FFmpeg", check_pyav, "pip install 'av>=14' (the PyPI wheels bundle FFmpeg)"),
        Check("pillow", check_pillow, "pip install 'pillow>=10'"),
        Check("peft", check_peft, "pip install 'peft>=0.17,<1'"),
        Check("CUDA", check_cuda, "reinstall torch with CUDA for your driver, or train on the CPU"),
        Check("video round "
              "trip", check_video, "install the av>=14 wheels from PyPI (they bundle FFmpeg with libx264)"),
        Check("processor", check_processor, f"use transformers>=5.23,<6 with pillow and {PIN}"),
        Check("RL step", check_rl_step,
              "check the rows above (versions, video, processor); the location shown "
                                        "points at the failing code: report it with the doctor output"),
    ]


@contextlib.contextmanager
def _quiet():
    """No weight-loading progress bars or library warnings in the middle of the report."""
    import transformers

    loggers = [logging.getLogger(name) for name in ("transformers", "accelerate", "videor1")]
    levels = [logger.level for logger in loggers]
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _where(error: BaseException) -> str:
    """Where an exception was raised: the innermost frame, and the innermost one in videor1 if different."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "no traceback"
    last = frames[-1]
    ours = [f for f in frames if "videor1" in f.filename and not f.filename.endswith("doctor.py")]
    where = f"at {Path(last.filename).name}:{last.lineno} in {last.name}"
    if ours and ours[-1] is not last:
        where += f", from {Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}"
    return where


def run_checks(on_row: Callable[[Row], None] | None = None,
               accelerate_config: Path | None = None) -> list[Row]:
    """Run every check in order, whatever fails; one Row each."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="videor1-doctor-") as tmp:
        state: dict = {"tmp": tmp, "accelerate_config": accelerate_config}
        for check in checks(accelerate_config):
            started = time.perf_counter()
            try:
                quiet = _quiet() if check.name in ("processor", "RL step") else contextlib.nullcontext()
                with quiet:
                    row = Row(check.name, True, check.run(state), 0.0)
            except DoctorError as error:
                row = Row(check.name, False, f"{error}. Fix: {error.fix or check.fix}", 0.0)
            except Exception as error:  # an unexpected failure: say what and where, and the usual fix
                detail = f"{type(error).__name__}: {error} ({_where(error)}). Fix: {check.fix}"
                row = Row(check.name, False, detail, 0.0)
            row.seconds = time.perf_counter() - started
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def run_doctor(console: Console, accelerate_config: Path | None = None) -> bool:
    """Print the report as a table; True when every check passed. `accelerate_config`: also check what
    that launch needs (DeepSpeed installed, GPUs for its processes, bf16)."""
    with console.status("checking…") as status:
        rows = run_checks(lambda row: status.update(f"checking… ({row.check}: {'ok' if row.ok else 'FAIL'})"),
                          accelerate_config)
    table = Table(title="videor1 doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    table.add_column("s", justify="right")
    for row in rows:
        result = "[green]ok[/]" if row.ok else "[bold red]FAIL[/]"
        table.add_row(row.check, result, escape(row.detail) if row.ok else f"[red]{escape(row.detail)}[/]",
                      f"{row.seconds:.1f}")
    console.print(table)
    failed = [row.check for row in rows if not row.ok]
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed:[/] {', '.join(failed)}")
    else:
        console.print(f"[green]all {len(rows)} checks passed[/] in {sum(r.seconds for r in rows):.0f} s")
    return not failed
