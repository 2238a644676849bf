"""`videor1 doctor` and `videor1 demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from videor1.cli.common import app, console, err_console, fail


@app.command("doctor")
def doctor(
    accelerate_config: Annotated[Path | None, typer.Option(
        "--accelerate-config", exists=True, dir_okay=False,
        help="Also check what this `accelerate launch --config_file` needs (e.g. "
             "configs/accelerate/deepspeed_zero3.yaml: DeepSpeed, GPUs).")] = None,
) -> None:
    """Check this machine: versions, video decoding, the processor, and one RL step on a tiny model."""
    from videor1.doctor import run_doctor

    if not run_doctor(console, accelerate_config):
        raise typer.Exit(code=1)


@app.command("demo")
def demo(
    out: Annotated[Path,
                   typer.Option("--out",
                                help="Output directory: data, runs, evaluations, logs, report/. Running "
                                     "again resumes.")] = Path("outputs/demo"),
    seeds: Annotated[int, typer.Option(min=1, help="RL seeds per arm (the table shows mean ± spread when > "
                                                   "1).")] = 1,
    quick: Annotated[bool,
                     typer.Option("--quick", help="Smoke version: tiny budgets, a few minutes.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Independent stages (RL arms, evaluations) run side by "
                                                  "side, sharing the cores.")] = 2,
    cache: Annotated[Path | None, typer.Option(help="Cache of perception-pretrained base models (default: "
                                                    "~/.cache/videor1/demo).")] = None,
    recipes: Annotated[Path | None, typer.Option(help="Directory of the demo recipes (default: the "
                                                      "repository's configs/demo).")] = None,
) -> None:
    """The whole pipeline in miniature on a CPU: synthetic data, a tiny base model with perception
    pretraining, SFT, RL arms (GRPO, T-GRPO, ablations), evaluation with ordered and shuffled frames,
    and a report with the training curves and the ablation table."""
    from pydantic import ValidationError

    from videor1.demo.pipeline import run_demo
    from videor1.demo.recipe import load_recipe

    try:
        report = run_demo(load_recipe(recipes), out, seeds=seeds, quick=quick, cache=cache, jobs=jobs,
                          console=err_console)
    except (ValidationError, ValueError, FileNotFoundError, RuntimeError) as error:
        fail(str(error))
    console.print(f"report: {report} and {report.with_suffix('.html')}")
