"""The `videor1` app, its sub-apps and consoles, and the one way a command fails (exit code 2)."""

from __future__ import annotations

import logging
from importlib import import_module
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

# Commands whose options are built from a config that imports torch: loaded only when named, so that
# `videor1 --help` and the data commands answer at once. name -> (module, one-line summary for listings).
LAZY = {
    "rl": ("videor1.cli.train", "RL with T-GRPO or GRPO (under `accelerate launch` for several processes)."),
    "sft": ("videor1.cli.train", "SFT cold start on chain-of-thought records."),
    "eval": ("videor1.cli.generate", "Evaluate a model on video benchmarks (per-category scores, temporal "
             "reliance; resumes)."),
    "eval-judge": ("videor1.cli.generate", "Ask a judge model whether each video response reasons over "
                   "time."),
    "infer": ("videor1.cli.generate", "Ask one question about a video or an image."),
    "annotate": ("videor1.cli.generate", "Chain-of-thought records from a teacher, filtered by our rewards."),
    "serve": ("videor1.cli.generate", "Serve a checkpoint as an OpenAI-compatible endpoint."),
}


class LazyGroup(TyperGroup):
    """The top-level group: the LAZY commands are listed from their summary and built when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY if name not in self.commands)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:  # a listing: the summary is enough
            return click.Command(name, help=LAZY[name][1])
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in LAZY and args[0] not in self.commands:
            group = typer.main.get_command(import_module(LAZY[args[0]][0]).commands)
            self.commands[args[0]] = group.commands[args[0]] if hasattr(group, "commands") else group
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="videor1",
    cls=LazyGroup,
    help="Train and evaluate video-reasoning multimodal LLMs the Video-R1 way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Record files: synthesise, validate, mix, describe.", no_args_is_help=True)
app.add_typer(data_app, name="data")
model_app = typer.Typer(help="Models: build tiny offline ones.", no_args_is_help=True)
app.add_typer(model_app, name="model")

# soft wrap: long messages and paths stay on one line (greppable, and stable in tests)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from videor1 import __version__

        console.print(f"videor1 {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


def fail(message: str) -> NoReturn:
    """Print the error and exit with code 2 (bad input: a file, a record, a setting)."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


FileArg = Annotated[Path, typer.Argument(
    help="A .json list, a .jsonl file, or a saved `datasets` directory.")]
MediaRoot = Annotated[Path | None, typer.Option(
    "--media-root", help="Directory that record paths are relative to (default: the data file's directory).")]
AllowOutside = Annotated[bool, typer.Option(
    "--allow-outside-media-root", help="Let record media paths lead outside the media root (by default such "
    "a record is bad: `..`, absolute paths and symlinks are resolved first).")]
