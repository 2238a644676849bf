"""Per-step metrics: a JSONL file (the source of truth, rewritten from the resume step on resume),
accelerate's trackers (TensorBoard, W&B when installed and asked for), a rich progress bar and a
short line every `log_every` steps; on the main process only."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)
_SHOWN = ("reward/accuracy", "reward/format", "temporal/granted", "temporal/changed_advantages",
          "response/length", "train/kl", "train/loss", "eval/loss", "eval/format", "eval/accuracy")


def trackers(run) -> list[str]:
    """The accelerate trackers to use: TensorBoard, plus W&B etc. when installed (warned once otherwise)."""
    chosen = ["tensorboard"] if run.tensorboard and importlib.util.find_spec("tensorboard") else []
    for name in run.report_to:
        if importlib.util.find_spec(name) is None:
            log.warning("run.report_to lists %s, which is not installed: not reporting to it", name)
        else:
            chosen.append(name)
    return chosen


class MetricsWriter:
    def __init__(self, out_dir: Path, accelerator, config, start_step: int, enabled: bool, stage: str = "rl"):
        self.stage = stage  # "rl" or "sft": the tracker project and the progress bar's label
        self.path = Path(out_dir) / "metrics.jsonl"
        self.accelerator, self.enabled, self.log_every = accelerator, enabled, config.run.log_every
        self.console = Console(stderr=True)
        self.task = None
        self.bar: Progress | None = None
        if not enabled:
            return
        kept = []
        if self.path.exists():  # a killed run may have logged steps after its last checkpoint
            kept = [line for line in self.path.read_text().splitlines()
                    if (step := _step(line)) is not None and step <= start_step]
        self.path.write_text("".join(line + "\n" for line in kept))
        if accelerator.log_with:
            accelerator.init_trackers(stage,
                                      config={k: str(v) for k,
                                              v in _flat(config.model_dump(mode="json")).items()})

    def progress(self, total: int, start: int) -> Progress:
        self.bar = Progress(TextColumn(self.stage.upper()), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                            console=self.console, disable=not self.enabled)
        self.task = self.bar.add_task(self.stage, total=total, completed=start, info="")
        return self.bar

    def log(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k,
                 v in metrics.items()}
        with self.path.open("a") as out:
            out.write(json.dumps({"step": step, **clean}) + "\n")
        if self.accelerator.log_with:
            self.accelerator.log({k: v for k, v in clean.items() if v is not None}, step=step)
        info = "  ".join(f"{k.split('/')[-1]} {clean[k]:.3g}" for k in _SHOWN if clean.get(k) is not None)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        if step % self.log_every == 0 and self.bar is None:
            self.console.print(f"step {step}: {info}")

    def close(self) -> None:
        if self.enabled and self.accelerator.log_with:
            self.accelerator.end_training()


def _step(line: str) -> int | None:
    """The step of a metrics line; None for a blank line or one cut short when a run was killed."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _flat(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
