"""`videor1 doctor`: every check passes on this machine; a failing check is reported with its fix,
and the checks after it still run."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from videor1 import doctor


def _console() -> Console:
    return Console(record=True, width=400, force_terminal=False)


@pytest.mark.slow
def test_doctor_passes_here():
    console = _console()
    assert doctor.run_doctor(console) is True
    text = console.export_text()
    for check in doctor.checks():
        line = next(line for line in text.splitlines() if line.startswith(f"│ {check.name} "))
        assert "│ ok " in line, line
    assert "FAIL" not in text
    assert f"all {len(doctor.checks())} checks passed" in text


def test_a_failing_check_is_reported_and_the_others_still_run(monkeypatch):
    def broken_video(state):
        raise RuntimeError("libx264 encoder missing")

    ran = []
    monkeypatch.setattr(doctor, "check_video", broken_video)
    monkeypatch.setattr(doctor, "check_rl_step", lambda state: ran.append("RL step") or "stubbed")
    console = _console()

    assert doctor.run_doctor(console) is False

    text = console.export_text()
    video = next(line for line in text.splitlines() if line.startswith("│ video round trip "))
    assert "FAIL" in video
    assert "RuntimeError: libx264 encoder missing" in video
    assert "Fix: install the av>=14 wheels from PyPI" in video
    # later checks ran: the processor on in-memory frames (no decoded clip), then the RL step
    processor = next(line for line in text.splitlines() if line.startswith("│ processor "))
    assert "│ ok " in processor and "in-memory frames" in processor
    assert ran == ["RL step"]
    assert "1 check(s) failed: video round trip" in text


def test_a_doctor_error_carries_its_own_fix(monkeypatch):
    def old_pyav(state):
        raise doctor.DoctorError("av 12.0 is outside videor1's requirement av>=14", "pip install 'av>=14'")

    monkeypatch.setattr(doctor, "check_pyav", old_pyav)
    monkeypatch.setattr(doctor, "check_rl_step", lambda state: "stubbed")
    rows = doctor.run_checks()
    row = next(r for r in rows if r.check == "PyAV / FFmpeg")
    assert not row.ok
    assert row.detail == "av 12.0 is outside videor1's requirement av>=14. Fix: pip install 'av>=14'"
    assert [r.check for r in rows if not r.ok] == ["PyAV / FFmpeg"]


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def test_launch_config_check_names_what_the_deepspeed_launch_lacks(monkeypatch):
    """Here: no DeepSpeed, no GPU. The check says so, with the install command, before any run."""
    if doctor._optional("deepspeed", "deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    monkeypatch.setattr(doctor, "checks", lambda config=None: [doctor.Check(
        "launch config", doctor.check_launch_config, doctor.GPU_INSTALL)])
    console = _console()
    assert doctor.run_doctor(console, CONFIGS / "deepspeed_zero3.yaml") is False
    text = " ".join(console.export_text().split())
    assert "deepspeed is not installed" in text and "pip install 'videor1[gpu]'" in text
    assert "DEEPSPEED, 8 process(es) on 1 machine(s)" in text


def test_launch_config_problems_of_each_shipped_config(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(doctor, "_optional", lambda package, module: "0.19.0")  # as if [gpu] were installed
    for name in ("ddp.yaml", "fsdp.yaml", "deepspeed_zero3.yaml", "multinode_fsdp.yaml"):
        summary, problems = doctor.launch_config_problems(CONFIGS / name)
        assert problems == [], (name, problems)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    _, problems = doctor.launch_config_problems(CONFIGS / "fsdp.yaml")
    assert problems == ["8 process(es) per machine but 4 GPU(s) visible here"]
    two_machines = tmp_path / "two.yaml"
    two_machines.write_text("distributed_type: FSDP\nnum_machines: 2\nnum_processes: 8\n")
    _, problems = doctor.launch_config_problems(two_machines)
    assert [p for p in problems if "main_process_ip" in p], problems
    broken = tmp_path / "broken.yaml"
    broken.write_text("distributed_type: [\n")
    with pytest.raises(doctor.DoctorError, match="cannot read the accelerate config"):
        doctor.launch_config_problems(broken)
