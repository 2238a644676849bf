"""Checkpoints are atomic and `--resume` continues exactly.

Slow: a real `videor1 rl` process is SIGKILLed (right after checkpoint-4 is published, or while
checkpoint-4 is being written), resumed, and its per-step metrics, final weights and optimizer
state compared with those of an uninterrupted run. Fast: what `latest_checkpoint` picks among
complete checkpoints and the leftovers of a killed writer, that `latest` names a complete
checkpoint at every moment of a save, and that a resumed metrics file keeps exactly the steps
before the resume point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rl_support import rl_overrides
from safetensors.torch import load_file

from videor1.train import checkpoint as ckpt
from videor1.train.checkpoint import STATE, latest_checkpoint, save_checkpoint
from videor1.train.metrics import MetricsWriter

STEPS, SAVE_EVERY = 6, 2
ENV = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")


def _command(rl_workspace: Path, out: Path, *flags: str) -> list[str]:
    overrides = rl_overrides(rl_workspace, out, **{"run.max_steps": STEPS, "run.save_every": SAVE_EVERY,
                                                   "optim.lr": 1e-3})
    return [sys.executable, "-m", "videor1.cli", "rl", *overrides, *flags]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(rl_workspace, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "A"
    proc = subprocess.run(_command(rl_workspace, out), env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return out


def _published(out: Path) -> bool:
    """`latest` names checkpoint-4: the process is now past step 4's save, in step 5."""
    pointer = out / "latest"
    return pointer.is_file() and pointer.read_text().strip() == "checkpoint-4"


def _writing(out: Path) -> bool:
    """checkpoint-4 is being written (its temporary directory exists)."""
    return (out / ".checkpoint-4.tmp").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("kill_when", "resume_points"), [(_published, (4,)), (_writing, (2, 4))],
                         ids=["after_checkpoint", "during_checkpoint"])
def test_sigkill_then_resume_equals_uninterrupted_run(rl_workspace, uninterrupted, tmp_path, kill_when,
                                                      resume_points):
    out, log = tmp_path / "B", tmp_path / "killed.log"
    with log.open("w") as stderr:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen(_command(rl_workspace, out), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=stderr)
    try:
        deadline = time.monotonic() + 400
        while not kill_when(out):
            assert proc.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-6000:]}"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / f"checkpoint-{STEPS}").exists()
    logged_before = len(_metrics(out))
    assert logged_before < STEPS

    resumed = subprocess.run(_command(rl_workspace, out, "--resume"), env=ENV, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    # it resumed from checkpoint-4, or from checkpoint-2 when killed before checkpoint-4 was in place
    resumed_from = [k for k in resume_points
                    if f"resumed from {out / f'checkpoint-{k}'} at step {k}" in resumed.stderr]
    assert len(resumed_from) == 1, resumed.stderr[-6000:]

    a, b = _metrics(uninterrupted), _metrics(out)
    assert [m["step"] for m in a] == list(range(1, STEPS + 1))
    assert [m["step"] for m in b] == list(range(1, STEPS + 1))  # steps after the checkpoint logged once
    for line_a, line_b in zip(a, b):
        assert line_a.keys() == line_b.keys()
        # exact equality, floats included: the resumed run recomputes the same numbers bit for bit
        assert {k: v for k, v in line_a.items() if not k.startswith("time/")} == \
               {k: v for k, v in line_b.items() if not k.startswith("time/")}, line_a["step"]

    final_a, final_b = uninterrupted / f"checkpoint-{STEPS}", out / f"checkpoint-{STEPS}"
    assert (uninterrupted / "latest").read_text().strip() == final_a.name
    assert (out / "latest").read_text().strip() == final_b.name
    weights_a, weights_b = (load_file(d / "hf" / "model.safetensors") for d in (final_a, final_b))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    initial = load_file(rl_workspace / "formatted" / "model.safetensors")
    assert any(not torch.equal(initial[k], weights_a[k]) for k in weights_a)  # training did move the weights
    opt_a, opt_b = (torch.load(d / "optimizer.bin", weights_only=True) for d in (final_a, final_b))
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for index, state in opt_a["state"].items():
        other = opt_b["state"][index]
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(other[k])) for k, v in state.items())
    for run in (uninterrupted, out):
        checkpoints = sorted(p.name for p in run.glob("checkpoint-*"))
        assert checkpoints == ["checkpoint-4", "checkpoint-6"]  # keep_checkpoints=2
        for name in checkpoints:
            assert (run / name / "config.yaml").is_file() and (run / name / STATE).is_file()
        assert not list(run.glob(".checkpoint-*.tmp")), "a finished run leaves no temporary checkpoint"
    assert (final_a / "config.yaml").read_text().replace(str(uninterrupted), "") == \
           (final_b / "config.yaml").read_text().replace(str(out), "")


# --- fast: atomicity of checkpoints and the resumed metrics file -------------------------------

def _complete(out: Path, step: int) -> Path:
    path = out / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    (path / STATE).write_text(json.dumps({"step": step}))
    return path


def test_latest_checkpoint_never_picks_a_killed_writers_leftovers(tmp_path):
    out = tmp_path / "run"
    two = _complete(out, 2)
    (out / "latest").write_text("checkpoint-2")
    # a writer killed while writing step 4: everything but the rename, trainer_state.json included
    partial = out / ".checkpoint-4.tmp"
    (partial / "hf").mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half")
    (partial / STATE).write_text(json.dumps({"step": 4}))
    # and a checkpoint directory without its state file (e.g. copied by hand, interrupted)
    (out / "checkpoint-6").mkdir()
    (out / "checkpoint-6" / "model.safetensors").write_bytes(b"half")
    assert latest_checkpoint(out) == two
    (out / "latest").unlink()  # without the pointer: the newest complete checkpoint
    assert latest_checkpoint(out) == two
    (out / "latest").write_text("checkpoint-6")  # a pointer naming an incomplete directory is not trusted
    assert latest_checkpoint(out) == two
    assert latest_checkpoint(tmp_path / "empty") is None


class _Killed(Exception):
    pass


class _FakeRun:
    """Stand-ins for accelerate, the policy, the processor and the config that write small files and
    check, at each step of `save_checkpoint`, that `latest` names a complete checkpoint."""

    def __init__(self, out: Path, keep: int = 2):
        self.out, self.kill_at = out, None
        self.is_main_process = True
        self.config = SimpleNamespace(run=SimpleNamespace(keep_checkpoints=keep), save=self._save_config)
        self.policy = SimpleNamespace(model=SimpleNamespace(save_pretrained=self._save_model))
        self.processor = SimpleNamespace(save_pretrained=lambda p: self._write(Path(p) / "tokenizer.json"))

    def check(self, moment: str) -> None:
        pointer = self.out / "latest"
        if pointer.exists():
            assert (self.out / pointer.read_text().strip() / STATE).is_file(), f"latest incomplete {moment}"
        found = latest_checkpoint(self.out)
        assert found is None or (found / STATE).is_file()
        if self.kill_at == moment:
            raise _Killed(moment)

    def _write(self, path: Path, moment: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        self.check(moment or path.name)

    def wait_for_everyone(self):
        self.check("barrier")

    def save_state(self, path):
        self._write(Path(path) / "model.safetensors", "save_state")

    def unwrap_model(self, policy):
        return policy

    def get_state_dict(self, policy):
        self.check("get_state_dict")
        return {}

    def _save_model(self, path, state_dict=None):
        self._write(Path(path) / "model.safetensors", "save_pretrained")

    def _save_config(self, path):
        self._write(Path(path), "config")

    def save(self, step: int) -> Path:
        return save_checkpoint(self.out, step, self, self.policy, self.processor, self.config)


def test_latest_names_a_complete_checkpoint_at_every_moment_of_a_save(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    run = _FakeRun(out)
    replace, rmtree = os.replace, ckpt.shutil.rmtree

    def checked_replace(src, dst):
        run.check(f"before replace {Path(dst).name}")
        replace(src, dst)
        run.check(f"after replace {Path(dst).name}")

    def checked_rmtree(path, *args, **kwargs):
        rmtree(path, *args, **kwargs)
        run.check(f"after rmtree {Path(path).name}")

    monkeypatch.setattr(ckpt.os, "replace", checked_replace)
    monkeypatch.setattr(ckpt.shutil, "rmtree", checked_rmtree)
    for step in (2, 4, 6):
        assert run.save(step) == out / f"checkpoint-{step}"
        assert latest_checkpoint(out) == out / f"checkpoint-{step}"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]

    # killed at each moment of writing step 8: the previous checkpoint, or the new one, never half
    for moment in ("barrier", "save_state", "save_pretrained", "tokenizer.json", "config",
                   "before replace checkpoint-8", "after replace checkpoint-8", "before replace latest"):
        run.kill_at = moment
        with pytest.raises(_Killed):
            run.save(8)
        run.kill_at = None
        found = latest_checkpoint(out)
        assert found in (out / "checkpoint-6", out / "checkpoint-8"), moment
        assert json.loads((found / STATE).read_text())["step"] == int(found.name.split("-")[1])
        if found.name == "checkpoint-8":  # renamed into place: it is whole
            assert {p.name for p in found.iterdir()} == {"model.safetensors", "hf", "config.yaml", STATE}
            rmtree(found)
    # after the kills, a save of the same step replaces the leftovers
    assert run.save(8) == out / "checkpoint-8"
    assert not list(out.glob(".*.tmp"))
    assert (out / "latest").read_text().strip() == "checkpoint-8"


def test_pruning_keeps_the_checkpoint_latest_names(tmp_path):
    """A run started afresh (no --resume) in a directory holding a longer run's checkpoints: pruning
    must not delete the checkpoint it has just written and pointed `latest` at."""
    out = tmp_path / "run"
    _complete(out, 10)  # from an earlier, longer run in the same directory
    run = _FakeRun(out, keep=1)
    run.save(2)
    assert (out / "latest").read_text().strip() == "checkpoint-2"
    assert (out / "checkpoint-2" / STATE).is_file()
    assert latest_checkpoint(out) == out / "checkpoint-2"


class _Accelerator:
    log_with = None


def _config(log_every: int = 1):
    return SimpleNamespace(run=SimpleNamespace(log_every=log_every))


def test_resumed_metrics_file_keeps_exactly_the_steps_before_the_resume_point(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "train/loss": s / 10}) for s in range(1, 6)]
    # a run killed after logging step 5 (past its checkpoint at 4), mid-way through writing step 6
    path.write_text("\n".join(lines) + "\n" + '{"step": 6, "train/lo')
    writer = MetricsWriter(tmp_path, _Accelerator(), _config(), start_step=4, enabled=True)
    assert path.read_text() == "".join(line + "\n" for line in lines[:4])
    writer.log(5, {"train/loss": 0.5, "bad": float("nan")})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert json.loads(path.read_text().splitlines()[-1])["bad"] is None
    # a process other than the main one neither truncates nor writes
    MetricsWriter(tmp_path, _Accelerator(), _config(), start_step=0, enabled=False).log(1, {"x": 1.0})
    assert len(path.read_text().splitlines()) == 5
    # a fresh run (start 0) in the same directory starts an empty file
    MetricsWriter(tmp_path, _Accelerator(), _config(), start_step=0, enabled=True)
    assert path.read_text() == ""
