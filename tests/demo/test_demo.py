"""`videor1 demo --quick` end to end, from the command line, and its resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from videor1.demo.recipe import load_recipe


def test_recipe_loads_and_names_every_stage_file():
    recipe = load_recipe()
    assert {"full", "quick"} <= set(recipe.budgets)
    assert {arm.name for arm in recipe.arms} >= {"grpo", "tgrpo", "tgrpo-adv", "tgrpo-strict", "tgrpo-credit"}


def test_base_model_cache_key_follows_the_recipe(tmp_path):
    recipe = load_recipe()
    budget = recipe.budgets["full"]
    key = recipe.base_key(budget, {"torch": "1"})
    assert key == recipe.base_key(budget, {"torch": "1"})
    assert key != recipe.base_key(budget.model_copy(update={"perception_steps": 1}), {"torch": "1"})
    assert key != recipe.base_key(budget, {"torch": "2"})
    assert key != recipe.base_key(budget.model_copy(update={"synth_n": 9}), {"torch": "1"})


class _Out:
    """The part of a `Demo` the stage runner uses: where it writes, and placeholder resolution."""

    def __init__(self, out):
        self.out = out

    def resolve(self, argv):
        return argv


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_failed_stage_stops_the_others_at_once_and_finished_ones_are_kept(tmp_path):
    from rich.console import Console

    from videor1.demo.pipeline import Stage, StageRunner

    stages = [Stage("ok", [_python("pass")]), Stage("slow", [_python("import time; time.sleep(120)")]),
              Stage("fails", [_python("import sys; print('boom'); sys.exit(3)")], after=("ok",))]
    runner = StageRunner(_Out(tmp_path), jobs=2, threads=1, console=Console(stderr=True, quiet=True))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"'fails' failed \(exit 3\)[\s\S]*boom"):
        runner.run(stages)
    assert time.monotonic() - started < 60  # the sleeping stage was stopped, not waited for
    assert runner.finished("ok") and not runner.finished("slow") and not runner.finished("fails")


def test_a_finished_stage_made_by_another_recipe_is_refused(tmp_path):
    from rich.console import Console

    from videor1.demo.pipeline import Stage, StageRunner

    recipe = tmp_path / "rl.yaml"
    recipe.write_text("optim: {lr: 1.0e-5}\n")
    stage = lambda: Stage("rl", [_python("pass") + [f"--config={recipe}"]])  # noqa: E731
    runner = StageRunner(_Out(tmp_path), jobs=1, threads=1, console=Console(stderr=True, quiet=True))
    runner.run([stage()])
    runner.run([stage()])  # unchanged: finished earlier
    recipe.write_text("optim: {lr: 1.0e-4}\n")
    with pytest.raises(ValueError, match="stage 'rl' was run with other commands or recipes"):
        runner.run([stage()])


@pytest.mark.slow
def test_quick_demo_end_to_end_and_resume(tmp_path):
    out, cache = tmp_path / "demo", tmp_path / "cache"
    command = [sys.executable, "-m", "videor1.cli", "demo", "--quick", "--out", str(out), "--cache",
               str(cache)]
    # interrupted (the whole process group, as Ctrl-C would) once the SFT stage has finished
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 600
    while not (out / "stages" / "sft.json").is_file():
        assert first.poll() is None and time.monotonic() < deadline, \
            "the demo stopped before its SFT stage finished"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    data_log = (out / "logs" / "data.log").read_text()

    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    for stage in ("data", "base", "sft"):
        assert f"{stage}: finished earlier" in done.stderr
    assert (out / "logs" / "data.log").read_text() == data_log  # not run again

    report = out / "report"
    for name in ("report.md", "report.html", "curves.png", "ablation.png"):
        assert (report / name).stat().st_size > 0, name
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # self-contained: both plots inlined
    md = (report / "report.md").read_text()
    assert md.index("Training curves") < md.index("Ablation")

    recipe = load_recipe()
    table = md.split("## Ablation")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    header = next(line for line in table.splitlines() if line.startswith("| model")).strip("| ").split(" | ")
    assert header[2:5] == ["conflicting ordered", "conflicting shuffled", "consistent ordered"]
    for title in ["SFT (before RL)", *(arm.title for arm in recipe.arms)]:
        cells = rows[title].strip("| ").split(" | ")
        # a number for every column (the six quick items need not hold a direction question of either cue)
        assert len(cells) == len(header) and all(_number(c) for c in cells[5:]), rows[title]
    bonus = md.split("## Where the temporal bonus acted")[1].split("\n## ")[0]
    assert "T-GRPO (bonus on the advantage)" in bonus
    learning = md.split("## On the training distribution")[1].split("\n## ")[0]
    learned = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")
               for line in learning.splitlines() if line.startswith("| ")}
    # every model's score on the RL distribution's held-out items (eval-train/), and for each arm its
    # rollouts' share of correct responses early and late in RL
    assert _number(learned["SFT (before RL)"][1]), learned["SFT (before RL)"]
    for arm in recipe.arms:
        assert _number(learned[arm.title][1]) and all(_number(c) for c in learned[arm.title][3:5]), \
            learned[arm.title]
        assert (out / "eval-train" / f"{arm.name}-s0" / "synthetic.summary.json").is_file()

    # every stage ran through the real commands and recorded them
    stages = {p.relative_to(out / "stages").with_suffix("").as_posix()
              for p in (out / "stages").rglob("*.json")}
    runs = [f"{arm.name}-s0" for arm in recipe.arms]
    videos = {"data-videos"} if any(arm.videos_only for arm in recipe.arms) else set()
    assert stages == {"data", *videos, "base", "sft", "eval/sft", *(f"rl/{r}" for r in runs),
                      *(f"eval/{r}" for r in runs)}
    sft = json.loads((out / "stages" / "sft.json").read_text())
    assert "-m videor1.cli sft --config" in sft["commands"][0]
    base = next(p.name for p in cache.iterdir() if p.name.startswith("base-"))
    assert (cache / base / "config.json").is_file()

    # a second run finds everything finished (and rewrites the report only)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished earlier") == len(stages)


def _number(cell: str) -> bool:
    try:
        float(cell.split(" ± ")[0])
        return True
    except ValueError:
        return False
