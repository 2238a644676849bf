"""The training stages, `videor1 rl` and `videor1 sft`: a YAML recipe (`--config`), `key=value` overrides,
`--check`; their `--help` lists every setting of their config (`RLConfig`, `SFTConfig`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from videor1.cli.common import console, fail
from videor1.cli.options import settings_help
from videor1.train.config import RLConfig
from videor1.train.sft import SFTConfig

commands = typer.Typer()  # loaded when one of them is invoked (videor1.cli.common.LAZY)

StageConfig = Annotated[Path | None, typer.Option(help="YAML recipe (see configs/); key=value arguments "
                                                       "override it.")]
Resume = Annotated[bool,
                   typer.Option("--resume", help="Continue from the run directory's latest checkpoint.")]
Check = Annotated[bool, typer.Option("--check", help="Validate the config, print it, and exit.")]
STAGE = {"allow_extra_args": True, "ignore_unknown_options": True}


def run_stage(load, train, config: Path | None, overrides: list[str], resume: bool, check: bool) -> None:
    """A training stage from its recipe and overrides: --check prints the resolved config, else train."""
    import yaml
    from accelerate import PartialState

    try:
        stage_config = load(config, overrides)
    except (ValueError, OSError) as error:
        fail(str(error))
    if check:
        console.print(yaml.safe_dump(stage_config.model_dump(mode="json"), sort_keys=False), markup=False,
                      highlight=False)
        return
    from videor1.data import DataFileError

    try:
        result = train(stage_config, resume=resume)
    except DataFileError as error:  # a data file unreadable, or without one valid record
        fail(str(error))
    if PartialState().is_main_process:
        console.print(f"done: {result.output_dir}")


@commands.command("rl", context_settings=STAGE, epilog=settings_help(RLConfig))
def rl(ctx: typer.Context, config: StageConfig = None, resume: Resume = False, check: Check = False) -> None:
    """RL with T-GRPO or GRPO (accelerate: run under `accelerate launch` for several processes)."""
    from videor1.train.config import load_config
    from videor1.train.rl import train

    run_stage(load_config, train, config, ctx.args, resume, check)


@commands.command("sft", context_settings=STAGE, epilog=settings_help(SFTConfig))
def sft(ctx: typer.Context, config: StageConfig = None, resume: Resume = False, check: Check = False) -> None:
    """SFT cold start on chain-of-thought records (run under `accelerate launch` for several processes)."""
    from videor1.train.sft import load_sft_config, train

    run_stage(load_sft_config, train, config, ctx.args, resume, check)
