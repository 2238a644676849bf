"""`videor1 demo`: the paper in miniature on a CPU, by chaining the real commands.

Stages (each one or more `videor1 …` commands run as subprocesses with the recipes of configs/demo):

    data                 data synth, data validate (every file), data mix (the video-only RL file)
    base                 model tiny, then sft with the perception recipe; the result is cached
                         under --cache keyed by its recipe, so a second demo skips it
    sft                  sft with the cold-start recipe, from the base model
    rl/<arm>-s<seed>     rl with the RL recipe plus the arm's overrides, for every arm and seed
    eval/<model>         eval with ordered and shuffled frames, for the SFT model and every RL run;
                         with the recipe's `train_eval`, also on rl_eval.json (the RL training
                         distribution on held-out scenes, sampled as RL samples) into eval-train/<model>
    report               Markdown + HTML with plots (videor1.demo.report)

A finished stage leaves `stages/<name>.json` (its commands and seconds); running the demo again
skips finished stages, and a training stage cut off midway continues from its last checkpoint
(`--resume`), an evaluation from its last fsynced sample. Each stage's output goes to
`logs/<name>.log`; the terminal shows one progress bar per stage, read from the stage's metrics.
Independent stages run `jobs` at a time; the cores are split between the stages running side by
side (a stage alone gets them all), unless `threads` fixes each stage's torch threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from videor1.data.synth import FILES as DATA_FILES
from videor1.data.synth import HELD_OUT
from videor1.demo.recipe import Arm, DemoRecipe
from videor1.train.checkpoint import latest_checkpoint

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def videor1(*args: str | Path) -> list[str]:
    """The argv of a videor1 command, run with this interpreter."""
    return [sys.executable, "-m", "videor1.cli", *map(str, args)]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("videor1", "torch", "transformers", "accelerate", "av", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class Stage:
    """Commands to run in order, then `finish` (in this process); `progress` reads (done, total)."""

    name: str
    commands: list[list[str]]
    after: tuple[str, ...] = ()
    progress: Callable[[], tuple[int, int] | None] = lambda: None
    finish: Callable[[], None] | None = None
    note: str = ""
    identity: str | None = None  # replaces the commands in `key` (the cached base model: its recipe hash)
    seconds: float = field(default=0.0, init=False)

    def key(self) -> str:
        """What the stage runs: its command lines (less the interpreter) and the contents of every
        recipe file they name, hashed. A finished stage whose key changed was made by another recipe."""
        if self.identity is not None:
            return self.identity
        digest = hashlib.sha256(json.dumps([argv[1:] for argv in self.commands]).encode())
        for arg in (a for argv in self.commands for a in argv):
            path = Path(arg.split("=", 1)[-1])
            if path.suffix in (".yaml", ".yml") and path.is_file():
                digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def final_model(run_dir: Path) -> Path:
    """The Hugging Face export of a finished training run."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint (did the stage finish?)")
    return checkpoint / "hf"


def _thirds(steps: int) -> int:
    """Checkpoint interval of a training stage: a stage cut off loses at most a third of its steps."""
    return max(1, steps // 3)


def _training_progress(run_dir: Path, steps: int) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        metrics = run_dir / "metrics.jsonl"
        last = 0
        if metrics.is_file():
            for line in metrics.read_text().splitlines()[-1:]:
                try:
                    last = int(json.loads(line)["step"])
                except (ValueError, KeyError):
                    pass
        return last, steps
    return read


def _eval_progress(out_dir: Path, items: Callable[[], int]) -> Callable[[], tuple[int, int]]:
    """Samples written (ordered and shuffled runs) of 2 x items."""
    def read() -> tuple[int, int]:
        total = 2 * items()
        done = sum(sum(1 for _ in p.open()) for p in out_dir.glob("*.jsonl")) if out_dir.is_dir() else 0
        return min(done, total), total
    return read


class Demo:
    """The stages of one demo run in `out`, for a recipe, a budget and a number of seeds."""

    def __init__(self, recipe: DemoRecipe, budget_name: str, out: Path, seeds: int, cache: Path):
        self.recipe, self.budget_name, self.budget = recipe, budget_name, recipe.budgets[budget_name]
        self.out, self.seeds, self.cache = out.resolve(), seeds, cache.resolve()
        self.data = self.out / "data"
        self.versions = library_versions()
        self.base_dir = self.cache / f"base-{recipe.base_key(self.budget, self.versions)}"

    # ------------------------------------------------------------------ names and paths

    def runs(self) -> list[tuple[Arm, int, str]]:
        """(arm, seed, run name) of every RL run."""
        return [(arm, seed, f"{arm.name}-s{seed}") for seed in range(self.seeds) for arm in self.recipe.arms]

    def models(self) -> dict[str, Path]:
        """Evaluated model name -> its training run directory."""
        return {"sft": self.out / "sft", **{run: self.out / "rl" / run for _, _, run in self.runs()}}

    def eval_items(self) -> int:
        path = self.data / "eval.json"
        items = len(json.loads(path.read_text())) if path.is_file() else 0
        return min(items, self.budget.eval_items or items)

    # ------------------------------------------------------------------ stages

    def stages(self) -> list[Stage]:
        b, r = self.budget, self.recipe
        data, out = self.data, self.out
        stages = [Stage("data", [
            videor1("data", "synth", "--out", data, "--n", b.synth_n, "--seed", r.synth.seed,
                    "--config", r.path(r.synth.config)),
            *[videor1("data", "validate", data / f"{name}.json", "--report", data / f"{name}.bad.jsonl")
              for name in DATA_FILES],
        ], finish=self._write_video_mix)]
        if any(arm.videos_only for arm in r.arms):
            stages.append(Stage("data-videos", [videor1("data", "mix", "--config", data / "videos_only.yaml",
                                                        "--out", data / "rl_videos.json")], after=("data",)))
        stages.append(self._base_stage())
        cap = b.max_new_tokens
        common = [f"media.cache_dir={out / 'frames'}"]
        stages.append(Stage("sft", [videor1(
            "sft", "--config", r.path(r.recipes.sft), "--resume", f"model.path={self.base_dir}",
            f"data.train_file={data / 'cot_train.json'}", f"run.output_dir={out / 'sft'}",
            f"run.max_steps={b.sft_steps}", f"run.save_every={_thirds(b.sft_steps)}", *common,
            *([f"eval.max_new_tokens={cap}"] if cap else []))],
            after=("base",), progress=_training_progress(out / "sft", b.sft_steps)))
        stages.append(self._eval_stage("sft", 0))
        for arm, seed, run in self.runs():
            start = self.base_dir if arm.start == "perception" else None
            train_file = data / ("rl_videos.json" if arm.videos_only else "rl_train.json")
            stages.append(Stage(f"rl/{run}", [videor1(
                "rl", "--config", r.path(r.recipes.rl), "--resume",
                f"model.path={start if start is not None else '{sft}'}", f"data.train_file={train_file}",
                f"run.output_dir={out / 'rl' / run}", f"run.max_steps={b.rl_steps}", f"run.seed={seed}",
                f"run.save_every={_thirds(b.rl_steps)}", *common, *arm.overrides,
                *([f"sampling.max_new_tokens={cap}"] if cap else []))],
                after=("sft", "base") + (("data-videos",) if arm.videos_only else ()),
                progress=_training_progress(out / "rl" / run, b.rl_steps), note=arm.title))
            stages.append(self._eval_stage(run, seed))
        return stages

    def _eval_stage(self, model: str, seed: int) -> Stage:
        """`videor1 eval` of one trained model, ordered and shuffled frames (the recipe's arguments); and,
        with `train_eval`, on the RL training distribution's held-out items (eval-train/<model>)."""
        b, out = self.budget, self.out
        limit = ["--limit", str(b.eval_items)] if b.eval_items else []
        cap = [f"--max-new-tokens={b.max_new_tokens}"] if b.max_new_tokens else []

        def command(data: str, to: str, arguments: list[str]) -> list[str]:
            return videor1("eval", "--model", f"{{{model}}}", "--data", self.data / data, "--out",
                           out / to / model, "--seed", seed, "--cache-dir", out / "frames", "--no-progress",
                           *limit, *arguments, *cap)

        train = self.recipe.train_eval
        return Stage(f"eval/{model}", [command("eval.json", "eval", self.recipe.eval),
                                       *([command("rl_eval.json", "eval-train", train)] if train else [])],
            after=("sft" if model == "sft" else f"rl/{model}",),
            progress=_eval_progress(out / "eval" / model, self.eval_items))

    def _base_stage(self) -> Stage:
        """The tiny model with perception pretraining, built once per recipe key into the cache."""
        r, b = self.recipe, self.budget
        work = self.out / "perception"
        if (self.base_dir / "config.json").is_file():
            return Stage("base", [], after=("data",), note=f"cached: {self.base_dir}",
                         identity=self.base_dir.name)
        tokenizer_data = [arg for name in DATA_FILES if name not in HELD_OUT
                          for arg in ("--data", self.data / f"{name}.json")]

        def publish() -> None:  # atomic: a half-copied cache entry is never used
            tmp = self.base_dir.with_name(self.base_dir.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(final_model(work), tmp)
            if self.base_dir.exists():
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, self.base_dir)

        return Stage("base", [
            videor1("model", "tiny", "--out", work / "base", "--arch", r.base.arch, "--size", r.base.size,
                    "--seed", r.base.seed, *tokenizer_data),
            videor1("sft", "--config", r.path(r.recipes.perception), "--resume",
                    f"model.path={work / 'base'}", f"data.train_file={self.data / 'describe.json'}",
                    f"run.output_dir={work}", f"run.max_steps={b.perception_steps}",
                    f"run.save_every={_thirds(b.perception_steps)}",
                    f"media.cache_dir={self.out / 'frames'}"),
        ], after=("data",), progress=_training_progress(work, b.perception_steps), finish=publish,
            identity=self.base_dir.name)

    def _write_video_mix(self) -> None:
        """The `data mix` config of the no-image arm: every video record of rl_train.json."""
        records = json.loads((self.data / "rl_train.json").read_text())
        videos = sum(r["data_type"] == "video" for r in records)
        (self.data / "videos_only.yaml").write_text(
            "# The no-image ablation's RL data: every video record of rl_train.json, in order.\n"
            f"seed: 0\nshuffle: false\nsources:\n  - {{name: videos, path: rl_train.json, count: {videos}, "
            "where: {data_type: video}}\n")

    def resolve(self, argv: list[str]) -> list[str]:
        """Fill `{model}` placeholders with the final export of that model's run (known only once it ran)."""
        runs = self.models()
        out = []
        for arg in argv:
            for model, run_dir in runs.items():
                token = f"{{{model}}}"
                if token in arg:
                    arg = arg.replace(token, str(final_model(run_dir)))
            out.append(arg)
        return out


class StageRunner:
    """Runs stages in dependency order, `jobs` at a time, skipping those already finished."""

    def __init__(self, demo: Demo, jobs: int, threads: int | None, console: Console):
        self.demo, self.jobs, self.threads, self.console = demo, jobs, threads, console
        self.markers = demo.out / "stages"
        self.logs = demo.out / "logs"
        self.lock, self.procs, self.stopping = threading.Lock(), set(), False  # the running subprocesses

    def marker(self, name: str) -> Path:
        return self.markers / f"{name}.json"

    def finished(self, name: str) -> bool:
        return self.marker(name).is_file()

    def _check_unchanged(self, stage: Stage) -> None:
        recorded = json.loads(self.marker(stage.name).read_text()).get("key")
        if recorded != stage.key():
            raise ValueError(f"{self.demo.out}: stage {stage.name!r} was run with other commands or recipes "
                             "than the current ones; use another --out (or delete that stage's marker in "
                             "stages/ and the markers of the stages after it)")

    def run(self, stages: list[Stage]) -> None:
        self.markers.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        pending = {s.name: s for s in stages if not self.finished(s.name)}
        for s in stages:
            if s.name not in pending:
                self._check_unchanged(s)
                self.console.print(f"[dim]{s.name}: finished earlier[/]")
        bar = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=self.console)
        running: dict[Future, tuple[Stage, int]] = {}
        stop = threading.Event()
        with bar, ThreadPoolExecutor(self.jobs) as pool:
            watcher = threading.Thread(target=self._watch, args=(bar, running, stop), daemon=True)
            watcher.start()
            try:
                while pending or running:
                    ready = [s for s in pending.values() if all(map(self.finished, s.after))]
                    if not ready and not running:
                        raise RuntimeError(f"stages {sorted(pending)} wait on stages that did not finish")
                    # the cores are shared by the stages that will run side by side
                    threads = self.threads or max(1, CORES // min(self.jobs, len(ready) + len(running)))
                    for stage in ready[: self.jobs - len(running)]:
                        del pending[stage.name]
                        task = bar.add_task(stage.name, total=None, note=stage.note)
                        running[pool.submit(self._run_stage, stage, threads)] = (stage, task)
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in done:
                        stage, task = running.pop(future)
                        future.result()  # a failed stage stops the demo (finished stages stay finished)
                        bar.update(task, total=1, completed=1, note=f"{stage.seconds:.0f} s {stage.note}")
            except BaseException:  # a failure or Ctrl-C: stop the stages still running, do not wait for them
                self._stop_all()
                raise
            finally:
                stop.set()

    def _stop_all(self) -> None:
        with self.lock:
            self.stopping = True
            for proc in self.procs:
                proc.terminate()

    def _watch(self, bar: Progress, running: dict, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            for stage, task in list(running.values()):
                state = stage.progress()
                if state is not None and state[1] > 0:
                    bar.update(task, completed=state[0], total=state[1])

    def _run_stage(self, stage: Stage, threads: int) -> None:
        started = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        log = self.logs / f"{stage.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        commands = [self.demo.resolve(c) for c in stage.commands]
        with log.open("a") as sink:
            for argv in commands:
                sink.write(f"\n$ {' '.join(argv)}\n")
                sink.flush()
                with self.lock:
                    if self.stopping:
                        raise RuntimeError(f"demo stage {stage.name!r} not started: the demo is stopping")
                    proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.demo.out)
                    self.procs.add(proc)
                code = proc.wait()
                with self.lock:
                    self.procs.discard(proc)
                if code != 0:
                    tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
                    raise RuntimeError(f"demo stage {stage.name!r} failed (exit {code}): {' '.join(argv)}\n"
                                       f"last lines of {log}:\n{tail}")
        if stage.finish is not None:
            stage.finish()
        stage.seconds = time.perf_counter() - started
        self.marker(stage.name).parent.mkdir(parents=True, exist_ok=True)
        tmp = self.marker(stage.name).with_suffix(".tmp")
        tmp.write_text(json.dumps({"stage": stage.name, "key": stage.key(), "seconds": stage.seconds,
                                   "note": stage.note, "commands": [" ".join(c) for c in commands]},
                                   indent=1))
        os.replace(tmp, self.marker(stage.name))


def run_demo(recipe: DemoRecipe, out: Path, seeds: int = 1, quick: bool = False, cache: Path | None = None,
             jobs: int = 2, threads: int | None = None, console: Console | None = None) -> Path:
    """Run (or resume) the demo into `out`; returns the report's Markdown path."""
    from videor1.demo.report import write_report

    console = console or Console(stderr=True)
    budget_name = "quick" if quick else "full"
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "demo.json"
    plan = {"budget": budget_name, **recipe.budgets[budget_name].model_dump()}
    if plan_path.is_file():
        earlier = json.loads(plan_path.read_text())
        if {k: earlier.get(k) for k in plan} != plan:
            raise ValueError(f"{out} holds a demo run with another budget ({earlier}); use another --out")
    plan_path.write_text(json.dumps({**plan, "seeds": seeds}, indent=1))
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videor1" / "demo"
    demo = Demo(recipe, budget_name, out, seeds, cache)
    if not (demo.base_dir / "config.json").is_file():  # the cache was cleared: build the base model again
        (out / "stages" / "base.json").unlink(missing_ok=True)
    StageRunner(demo, jobs, threads, console).run(demo.stages())
    return write_report(demo)
