"""`videor1 doctor`: every check passes on this machine; a failing check is reported with its fix,
and the checks after it still run."""

from __future__ import annotations

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
