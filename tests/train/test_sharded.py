"""Sharded training for real: two CPU processes over gloo, parameters sharded by FSDP2 (`run.sharding=fsdp`,
`torch.distributed.fsdp.fully_shard`, the code a GPU run uses), under `accelerate launch`.

- T-GRPO where, in one step, one process holds only images and the other only videos, and in the next
  one holds both; with `algo.skip_shuffled=false` the processes need different numbers of shuffled-group
  generations (0 and 2, then 1 and 2), and generate responses of different lengths. Without the lockstep
  measures (one vision-tower call per batch, padding generations, `synced_gpus`) the processes wait for
  each other's gathers forever: every launch has a timeout, so a hang fails the test.
- SFT with a held-out evaluation that the processes share unevenly (2 and 1 batches): the sharded
  run's `hf/` export equals a one-process run on the same global batch, and a sharded run killed
  (SIGKILL) after its first checkpoint and resumed equals the uninterrupted one.

See tests/train/test_distributed.py for why two CPU processes need the torchrun launcher (`--multi_gpu`)
with the GPUs hidden.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rl_support import MEDIA
from safetensors.torch import load_file

from videor1.data.synth import synthesize
from videor1.models.tiny import build_tiny_from_records
from videor1.train.sft import load_sft_config, train

pytestmark = pytest.mark.slow

WORLD = 2
TIMEOUT = 240  # seconds per launch: a run takes ~30 s here; a hang is killed and fails
# fp32 on CPU: the runs add the same gradients in a different order (per process, then across), and
# Adam's update, g / sqrt(v), amplifies that rounding where g is near 0. Weights agree to 1e-5, 1% of
# one step's largest change (lr 1e-3); the differences measured are ~3e-6 after 4 steps.
TOLERANCE = dict(rtol=0.0, atol=1e-5)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sharded")
    synthesize(root / "synth", n=16, seed=0)
    build_tiny_from_records(root / "tiny", [root / "synth" / "rl_train.json", root / "synth" / "cot_train.json"],
                            "qwen2_5_vl", "tiny", 0)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(args: list[str], cwd: Path, kill_when=None) -> subprocess.CompletedProcess:
    """`accelerate launch` of 2 CPU processes running `videor1.cli *args`, killed with all its processes
    (SIGKILL) when `kill_when()` becomes true, or failing the test after TIMEOUT seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(WORLD),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "videor1.cli", *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        if kill_when is not None:
            while proc.poll() is None and not kill_when():
                if time.monotonic() - started > TIMEOUT:
                    raise subprocess.TimeoutExpired(command, TIMEOUT)
                time.sleep(0.05)
            if proc.poll() is None:
                _kill(proc.pid)
        stdout, stderr = proc.communicate(timeout=max(1.0, TIMEOUT - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        _kill(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the processes hung (killed after {TIMEOUT} s):\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _kill(pid: int) -> None:
    """SIGKILL the launcher and every process under it (torchrun puts each rank in a session of its own,
    so killing the launcher's process group would leave the ranks running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    doomed, todo = [], [pid]
    while todo:
        doomed.append(todo.pop())
        todo.extend(children.get(doomed[-1], []))
    for victim in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _failure(proc: subprocess.CompletedProcess) -> str:
    """The first process's traceback (the launcher's own report comes after it)."""
    start = proc.stderr.find("Traceback")
    return proc.stderr[start:start + 6000] if start >= 0 else _failure(proc)


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(run / f"checkpoint-{step}" / "hf" / "model.safetensors")


def _assert_equal_weights(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


# ---------------------------------------------------------------- T-GRPO


def _rl_data(workspace: Path) -> Path:
    """Step 1: rank 0 two images, rank 1 two videos; step 2: rank 0 an image and a video, rank 1 two
    videos (prompts_per_device=2, data.shuffle=false: rank r takes the r-th pair of each step's four)."""
    records = json.loads((workspace / "synth" / "rl_train.json").read_text())
    images = [r for r in records if r["data_type"] == "image"]
    videos = [r for r in records if r["data_type"] == "video"]
    rows = [images[0], images[1], videos[0], videos[1], images[2], videos[2], videos[3], videos[4]]
    path = workspace / "rl_mixed.json"
    path.write_text(json.dumps(rows))
    return path


def test_tgrpo_sharded_with_unequal_modalities_and_shuffled_groups(workspace, tmp_path):
    out = tmp_path / "rl"
    overrides = {"model.path": workspace / "tiny", "model.dtype": "float32", "data.train_file": _rl_data(workspace),
                 "data.media_root": workspace / "synth", "data.shuffle": "false", "sampling.max_new_tokens": 12,
                 "algo.num_generations": 2, "algo.num_shuffled": 2, "algo.skip_shuffled": "false",
                 "reward.length": 0.0, "run.max_steps": 2, "run.prompts_per_device": 2,
                 "run.output_dir": out, "run.save_every": 100, "run.tensorboard": "false", "run.sharding": "fsdp",
                 "optim.lr": 1e-3}
    proc = _launch(["rl", *MEDIA, *[f"{k}={v}" for k, v in overrides.items()]], tmp_path)
    assert proc.returncode == 0, _failure(proc)

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    # the questions' modalities as planned: video groups only on rank 1 in step 1, on both in step 2
    # (temporal/video_groups is averaged over the processes that had a value)
    assert lines[0]["temporal/video_groups"] == 1.0 and lines[1]["temporal/video_groups"] == 1.5
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "sharded").is_dir()  # each process wrote its own shards
    assert (checkpoint / "hf" / "model.safetensors").is_file()  # and the gathered export


# ---------------------------------------------------------------- SFT


def _sft_overrides(workspace: Path, out: Path, ppd: int, steps: int = 4, **extra) -> list[str]:
    values = {"model.path": workspace / "tiny", "model.dtype": "float32",
              "data.train_file": workspace / "synth" / "cot_train.json", "data.eval_fraction": 0.2,
              "eval.samples": 3, "eval.batch_size": 1, "eval.every": 1, "eval.max_new_tokens": 8, "optim.lr": 1e-3,
              "optim.schedule": "constant", "run.max_steps": steps, "run.prompts_per_device": ppd,
              "run.save_every": 2, "run.output_dir": out, "run.tensorboard": "false", **extra}
    return MEDIA + [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def sharded_sft(workspace, tmp_path_factory) -> Path:
    """2 processes x 2 examples, sharded, 4 steps (checkpoints at 2 and 4)."""
    out = tmp_path_factory.mktemp("sft") / "sharded"
    proc = _launch(["sft", *_sft_overrides(workspace, out, ppd=2, **{"run.sharding": "fsdp"})], out.parent)
    assert proc.returncode == 0, _failure(proc)
    return out


def test_sharded_sft_equals_one_process_on_the_same_global_batch(workspace, sharded_sft, tmp_path):
    single = tmp_path / "single"
    train(load_sft_config(None, _sft_overrides(workspace, single, ppd=4)), progress=False)
    _assert_equal_weights(_weights(sharded_sft, 4), _weights(single, 4))
    moved = {name for name, w in _weights(sharded_sft, 4).items() if w.ne(_weights(sharded_sft, 2)[name]).any()}
    assert len(moved) > 10  # training moved the weights between the checkpoints
    ours, theirs = ([json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
                    for run in (sharded_sft, single))
    for a, b in zip(ours, theirs, strict=True):
        assert a["step"] == b["step"]
        for key in ("train/loss", "eval/loss", "eval/samples"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4), (key, a, b)
    assert ours[0]["eval/samples"] == 3  # the held-out records of both processes (2 + 1)


def test_sharded_sft_killed_after_a_checkpoint_resumes_to_the_same_weights(workspace, sharded_sft, tmp_path):
    out = tmp_path / "killed"
    overrides = _sft_overrides(workspace, out, ppd=2, **{"run.sharding": "fsdp"})

    def published() -> bool:
        pointer = out / "latest"
        return pointer.is_file() and pointer.read_text().strip() == "checkpoint-2"

    killed = _launch(["sft", *overrides], tmp_path, kill_when=published)
    assert killed.returncode != 0 and published() and not (out / "checkpoint-4").exists()
    resumed = _launch(["sft", *overrides, "--resume"], tmp_path)
    assert resumed.returncode == 0, _failure(resumed)
    _assert_equal_weights(_weights(out, 4), _weights(sharded_sft, 4))
