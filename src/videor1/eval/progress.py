"""A rich progress bar for evaluation: samples done of all, and this run's samples/s and tokens/s."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class ThroughputColumn(ProgressColumn):
    """Samples and generated tokens per second since this run started (resumed samples not counted)."""

    def render(self, task: Task) -> Text:
        elapsed = time.perf_counter() - task.fields.get("started", time.perf_counter())
        if elapsed <= 0 or not task.fields.get("new"):
            return Text("– samples/s", style="progress.data.speed")
        rate, tokens = task.fields["new"] / elapsed, task.fields["tokens"] / elapsed
        return Text(f"{rate:.2f} samples/s · {tokens:.0f} tok/s", style="progress.data.speed")


class EvalProgress:
    """add_task / advance like rich's Progress, counting new samples and their tokens."""

    def __init__(self, enabled: bool):
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 ThroughputColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)
        self.new = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self.per_task: dict = {}

    def add_task(self, description: str, total: int, completed: int):
        return self.progress.add_task(description, total=total, completed=completed, new=0, tokens=0,
                                      started=time.perf_counter())

    def advance(self, task, tokens: int = 0) -> None:
        new, task_tokens = self.per_task.get(task, (0, 0))
        self.per_task[task] = (new + 1, task_tokens + tokens)
        self.new += 1
        self.tokens += tokens
        self.progress.update(task, advance=1, new=new + 1, tokens=task_tokens + tokens)

    def stats(self) -> dict[str, float]:
        """This run's new samples, tokens, and their rates (a resumed run counts only its own work)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {"new_samples": self.new, "new_tokens": self.tokens, "samples_per_s": self.new / elapsed,
                "tokens_per_s": self.tokens / elapsed}


@contextlib.contextmanager
def eval_progress(enabled: bool = True) -> Iterator[EvalProgress]:
    progress = EvalProgress(enabled)
    with progress.progress:
        yield progress
