"""Sharded training for real: two CPU processes over gloo, parameters sharded by FSDP2 (`run.sharding=fsdp`,
`torch.distributed.fsdp.fully_shard`, the code a GPU run uses), under `accelerate launch`.

- T-GRPO where, in one step, one process holds only images and the other only videos, and in the next
  one holds both; with `algo.skip_shuffled=false` the processes need different numbers of shuffled-group
  generate calls (step 1: none on the images-only process), and generate responses of different
  lengths. The same with the per-response credit, whose two teacher-forced forwards only the process
  with video groups needs in step 1. Without the lockstep measures (one vision-tower call per batch,
  padding generations and forwards, `synced_gpus`) the processes' gathers no longer match: gloo then
  aborts them (checked: without the padding calls the launch fails in ~45 s, without the padding
  forwards in ~20 s) or they wait forever (NCCL); every launch has a timeout, so a hang fails the test.
- SFT with a held-out evaluation that the processes share unevenly (2 and 1 batches): the sharded
  run's `hf/` export equals a one-process run on the same global batch, and a sharded run killed
  (SIGKILL) after its first checkpoint and resumed equals the uninterrupted one.
- One `update` of 2 processes x 2 prompts equals 1 process x 4 prompts (loss and gradients): the
  token-level normaliser and the `algo.scale=batch` std are the global batch's.

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
import textwrap
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
    files = [root / "synth" / "rl_train.json", root / "synth" / "cot_train.json"]
    build_tiny_from_records(root / "tiny", files, "qwen2_5_vl", "tiny", 0)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(args: list[str], cwd: Path, kill_when=None, target: list[str] = ("-m", "videor1.cli")
            ) -> subprocess.CompletedProcess:
    """`accelerate launch` of 2 CPU processes running `videor1.cli *args` (or `target *args`), killed
    with all its processes (SIGKILL) when `kill_when()` becomes true, or failing the test after
    TIMEOUT seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(WORLD), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), *target, *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
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
    ranks = [proc.stderr.find(f"[rank{rank}]: Traceback") for rank in range(WORLD)]
    start = min((i for i in ranks if i >= 0), default=proc.stderr.find("Traceback"))
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


# The per-response credit: all responses count as correct (threshold 0), so that in step 1 only rank 1
# has credited groups and rank 0 makes the padding forwards.
@pytest.mark.parametrize("credit", [{}, {"algo.temporal_credit": "response", "algo.correct_threshold": 0.0}],
                         ids=["shuffled-groups", "per-response-credit"])
def test_tgrpo_sharded_with_unequal_modalities_and_shuffled_groups(workspace, tmp_path, credit):
    out = tmp_path / "rl"
    overrides = {"model.path": workspace / "tiny", "model.dtype": "float32",
                 "data.train_file": _rl_data(workspace), "data.media_root": workspace / "synth",
                 "data.shuffle": "false", "sampling.max_new_tokens": 12,
                 "algo.num_generations": 2, "algo.num_shuffled": 2, "algo.skip_shuffled": "false",
                 "reward.length": 0.0, "run.max_steps": 2, "run.prompts_per_device": 2,
                 "run.output_dir": out, "run.save_every": 100, "run.tensorboard": "false",
                 "run.sharding": "fsdp",
                 "optim.lr": 1e-3, **credit}
    proc = _launch(["rl", *MEDIA, *[f"{k}={v}" for k, v in overrides.items()]], tmp_path)
    assert proc.returncode == 0, _failure(proc)

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    # the questions' modalities as planned: video groups only on rank 1 in step 1, on both in step 2
    # (temporal/video_groups is averaged over the processes that had a value)
    assert lines[0]["temporal/video_groups"] == 1.0 and lines[1]["temporal/video_groups"] == 1.5
    if credit:  # every video response's reliance measured, on the processes that had video groups
        assert all(line["temporal/reliance"] is not None for line in lines)
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "sharded").is_dir()  # each process wrote its own shards
    assert (checkpoint / "hf" / "model.safetensors").is_file()  # and the gathered export


# ---------------------------------------------------------------- SFT


def _sft_overrides(workspace: Path, out: Path, ppd: int, steps: int = 4, **extra) -> list[str]:
    values = {"model.path": workspace / "tiny", "model.dtype": "float32",
              "data.train_file": workspace / "synth" / "cot_train.json", "data.eval_fraction": 0.2,
              "eval.samples": 3, "eval.batch_size": 1, "eval.every": 1, "eval.max_new_tokens": 8,
              "optim.lr": 1e-3,
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
    earlier = _weights(sharded_sft, 2)
    moved = {name for name, w in _weights(sharded_sft, 4).items() if w.ne(earlier[name]).any()}
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


# ---------------------------------------------------------------- global normalisation

# Each process builds the same global batch of 4 prompts x G=2 responses of unequal lengths and
# rewards, keeps its share (rank r: prompts 2r, 2r+1; one process: all four), computes advantages
# (`algo.scale`) and takes one `update` with SGD at lr 1, so that the weights' change is minus the
# gradient. Rank 0 writes the step's loss (averaged over processes, as the trainer logs it) and the
# gathered gradient.
UPDATE = textwrap.dedent('''
    import sys
    from pathlib import Path

    import torch
    from accelerate import Accelerator

    from videor1.algo import group_advantages
    from videor1.models.inputs import Prompt, encode
    from videor1.models.loading import ModelOptions, load_model, load_processor
    from videor1.models.logprobs import GroupedPolicy
    from videor1.models.prefix import unsupported_reason
    from videor1.rollout.base import Completions
    from videor1.train.config import load_config
    from videor1.train.parallel import Parallel
    from videor1.train.rl import update
    from videor1.train.rollout_step import RolloutBatch

    model_dir, out, sharding, aggregation, scale = sys.argv[1:6]
    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    config = load_config(None, [f"model.path={model_dir}", "data.train_file=unused.json", "algo.beta=0",
                                f"algo.aggregation={aggregation}", f"algo.scale={scale}",
                                "algo.num_generations=2", "optim.max_grad_norm=1e9"])
    parallel = Parallel(accelerator, sharding)
    processor = load_processor(model_dir)
    torch.manual_seed(0)
    model = load_model(ModelOptions(path=model_dir, dtype="float32"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model = parallel.shard(model)

    B, G, T = 4, 2, 12
    generator = torch.Generator().manual_seed(1)
    prompts = [Prompt(f"question {i}: how many?") for i in range(B)]
    ids = torch.randint(10, 200, (B * G, T), generator=generator)
    lengths = torch.randint(2, T + 1, (B * G,), generator=generator)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    rewards = torch.rand(B * G, generator=generator)
    mine = slice(rank * B // world, (rank + 1) * B // world)
    rows = slice(mine.start * G, mine.stop * G)
    gather = parallel.gather if world > 1 else None
    advantages = group_advantages(rewards[rows], G, config.algo.scale, gather=gather)
    completions = Completions(ids[rows], mask[rows], None, [""] * (rows.stop - rows.start),
                              torch.ones(rows.stop - rows.start, dtype=torch.bool))
    inputs = encode(processor, prompts[mine])
    rollout = RolloutBatch(tuple(prompts[mine]), inputs, {}, completions, advantages)
    prefix_off = unsupported_reason(model, inputs)  # None: the shared-prefix forward, sharded or not
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    policy, optimizer, scheduler = parallel.prepare(GroupedPolicy(model), optimizer, scheduler)
    stats = update([rollout], policy, accelerator, optimizer, scheduler, config, True, parallel)
    loss = parallel.sum([stats["train/loss"]])[0] / world
    after = parallel.full_state_dict(policy)
    everyone = parallel.gather(advantages)  # collectives on every process, then rank 0 writes
    if accelerator.is_main_process:
        gradient = {k.removeprefix("model."): before[k.removeprefix("model.")] - v for k, v in after.items()}
        torch.save({"loss": loss, "gradient": gradient, "advantages": everyone, "prefix_off": prefix_off},
                   out)
''')


@pytest.mark.parametrize("aggregation, scale", [("token", "batch"), ("sequence", "group")])
def test_update_of_two_processes_equals_one_process_on_twice_the_batch(workspace, tmp_path, aggregation,
                                                                       scale):
    """N processes x B prompts take the update of 1 process x N*B: the token count of `token` aggregation
    and the std of `scale=batch` are the global batch's, not each process's. Both run the shared-prefix
    forward (two forwards per backward; under FSDP2 the prompt pass's weights are gathered again when
    the gradient reaches its keys and values: without that the backward reads freed storage)."""
    script = tmp_path / "update.py"
    script.write_text(UPDATE)
    args = [str(workspace / "tiny"), "", "fsdp", aggregation, scale]
    two = _launch([*args[:1], str(tmp_path / "two.pt"), *args[2:]], tmp_path, target=[str(script)])
    assert two.returncode == 0, _failure(two)
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    one = subprocess.run([sys.executable, str(script), args[0], str(tmp_path / "one.pt"), "none", aggregation,
                          scale], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr[-4000:]
    sharded, single = torch.load(tmp_path / "two.pt"), torch.load(tmp_path / "one.pt")
    assert sharded["prefix_off"] is None and single["prefix_off"] is None
    torch.testing.assert_close(sharded["advantages"], single["advantages"], rtol=0.0, atol=0.0)  # same std
    assert sharded["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert sharded["gradient"].keys() == single["gradient"].keys()
    largest = max(g.abs().max() for g in single["gradient"].values())
    assert largest > 0
    for name, gradient in single["gradient"].items():
        # fp32: the same sums added in another order; 1e-5 of the largest gradient entry
        torch.testing.assert_close(sharded["gradient"][name], gradient, rtol=0.0, atol=1e-5 * float(largest),
                                   msg=lambda m, n=name: f"{n}: {m}")
