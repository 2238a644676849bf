"""Commands that run a model: `eval`, `eval-judge`, `infer`, `annotate`, `serve`.

Each takes its typed config (`EvalConfig`, `EvalJudgeConfig`, `InferConfig`, `AnnotateConfig`,
`ServeConfig`): the options, their help and defaults come from it (`videor1.cli.options`), and the
resolved config is saved next to the command's outputs.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer
from rich.table import Table

from videor1.annotate.run import AnnotateConfig
from videor1.api.server import ServeConfig
from videor1.cli.common import console, err_console, fail
from videor1.cli.options import Shortcut, config_command, save_config
from videor1.eval.infer import InferConfig
from videor1.eval.judge import EvalJudgeConfig
from videor1.eval.runner import EvalConfig

commands = typer.Typer()  # loaded when one of them is invoked (videor1.cli.common.LAZY)

# The decoding options every generating command shares, as shortcuts into its `sampling` section.
SAMPLING = (
    Shortcut("max-new-tokens", "sampling.max_new_tokens"),
    Shortcut("temperature", "sampling.temperature"),
    Shortcut("top-p", "sampling.top_p"),
    Shortcut("greedy", sets={"sampling.temperature": 0.0, "sampling.top_p": 1.0},
             help="Greedy decoding instead of the paper's temperature 0.01, top_p 0.001."),
)
PROGRESS = inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")])
pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731


@config_command(commands, "eval", EvalConfig, rename={"out_dir": "out"}, shortcuts=SAMPLING,
                extra=(PROGRESS,))
def evaluate(config: EvalConfig, progress: bool) -> None:
    """Evaluate a model on video benchmarks; resumes into --out; per-category scores and temporal reliance."""
    from videor1.data import DataFileError
    from videor1.eval import run_suite
    from videor1.eval.runner import EndpointUnavailable

    if (config.model is None) == (config.endpoint is None):
        fail("give exactly one of --model DIR (a local checkpoint) or --endpoint URL (a server)")
    try:
        results = run_suite(config, show_progress=progress)
    except (ValueError, DataFileError, FileNotFoundError, EndpointUnavailable) as error:
        fail(str(error))
    save_config(config, config.out_dir / "eval.yaml")  # after the run: a refused one leaves no file
    out = config.out_dir
    table = Table(title=f"{out} (scores in %, failed samples score 0)")
    for column in ("benchmark", "condition", "items", "failed", "accuracy", "MRA", "overall", "(acc+MRA)/2"):
        table.add_column(column, justify="left" if column in ("benchmark", "condition") else "right")
    for result in results:
        for name, s in result.summary.conditions.items():
            table.add_row(result.summary.title, name, str(s.n), str(s.failed), pct(s.accuracy), pct(s.mra),
                          pct(s.overall), pct(s.reference_overall))
        if (r := result.summary.temporal_reliance) is not None and r.overall.gap is not None:
            table.add_row(result.summary.title, "temporal reliance", str(r.n), "", "", "",
                          f"{100 * r.overall.gap:+.1f}", "")
    console.print(table)
    console.print(f"reports: {out / 'report.md'}, {out / 'summary.json'}; "
                  f"samples: {out}/<bench>.<condition>.jsonl")


@config_command(commands, "eval-judge", EvalJudgeConfig,
                option_kwargs={"api_key": {"envvar": "VIDEOR1_JUDGE_API_KEY"}})
def eval_judge(config: EvalJudgeConfig) -> None:
    """Paper §4.5: ask a judge model whether each video response reasons over time; % per benchmark and
    condition. Resumable: verdicts go to RESULTS/judge/; a run again asks only what has no verdict. Writes
    judge.json and judge.md."""
    from videor1.eval import BENCHMARKS
    from videor1.eval.judge import run_judge
    from videor1.rollout.chat import ChatClient, EndpointError

    key = config.api_key.get_secret_value() if config.api_key is not None else None
    try:
        client = ChatClient(config.endpoint, model=config.model, api_key=key, concurrency=config.concurrency)
        with client:
            report = run_judge(config.results, client, config.judge())
    except (EndpointError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    save_config(config, config.results / "judge" / "eval-judge.yaml")
    table = Table(title=f"{config.results}: temporal reasoning, judged by {report['judge']['model']}")
    for column in ("benchmark", "condition", "responses", "temporal", "not", "unparseable", "pending",
                   "% temporal"):
        table.add_column(column, justify="left" if column in ("benchmark", "condition") else "right")
    rows = [(BENCHMARKS[b].title if b in BENCHMARKS else b, c, n) for b, conds in report["benchmarks"].items()
            for c, n in conds.items()]
    for bench, condition, n in rows + [("all", c, n) for c, n in report["overall"].items()]:
        share = "–" if n["temporal_pct"] is None else f"{n['temporal_pct']:.1f}"
        counts = (str(n[k]) for k in ("responses", "yes", "no", "unparseable", "pending"))
        table.add_row(bench, condition, *counts, share)
    console.print(table)
    console.print(f"report: {config.results / 'judge.json'}, {config.results / 'judge.md'}")
    if report["failed_requests"]:
        err_console.print(f"[yellow]{report['failed_requests']} request(s) failed[/]: "
                          "run again to retry them")


@config_command(commands, "infer", InferConfig, rename={"problem_type": "type"}, shortcuts=SAMPLING)
def infer_command(config: InferConfig) -> None:
    """Ask one question about a video or an image; print the model's reasoning and its answer."""
    from videor1.eval.generate import endpoint_generator
    from videor1.eval.infer import infer
    from videor1.media.errors import MediaError
    from videor1.rollout.chat import EndpointError

    if (config.model is None) == (config.endpoint is None):
        fail("give exactly one of --model DIR (a local checkpoint) or --endpoint URL (a server)")
    try:
        generator = None
        if config.endpoint is not None:
            generator = endpoint_generator(config.endpoint, config.endpoint_model, config.sampling)
        result = infer(config.model, config.question, video=config.video, image=config.image,
                       problem_type=config.problem_type, options=config.options, template=config.template,
                       frames=config.frames, max_pixels=config.max_pixels, min_pixels=config.min_pixels,
                       sampling=config.sampling, seed=config.seed, dtype=config.dtype, device=config.device,
                       generator=generator)
    except (ValueError, MediaError, FileNotFoundError, EndpointError) as error:
        fail(str(error))
    console.print("[bold]reasoning:[/]")
    console.print(result.reasoning if result.reasoning is not None else result.output, markup=False,
                  highlight=False)
    console.print("[bold]answer:[/] ", end="")
    console.print(result.answer if result.answer is not None else "(no <answer> tags)", markup=False,
                  highlight=False)


@config_command(commands, "annotate", AnnotateConfig, shortcuts=SAMPLING, extra=(PROGRESS,))
def annotate_command(config: AnnotateConfig, progress: bool) -> None:
    """Chain-of-thought records from a teacher, filtered by our rewards; the output feeds `videor1 sft`."""
    from videor1.annotate import REASONS, annotate
    from videor1.data import DataFileError
    from videor1.rollout.chat import EndpointError

    try:
        result = annotate(config, show_progress=progress)
    except (ValueError, DataFileError, FileNotFoundError, EndpointError) as error:
        fail(str(error))
    save_config(config, config.out.with_name(f"{config.out.stem}.config.yaml"))  # after: see `evaluate`
    report = result.report
    table = Table(title=f"{config.out}: {report.kept} of {report.records} records kept")
    for column in ("outcome", "records", "share", *report.by_data_type):
        table.add_column(column, justify="left" if column == "outcome" else "right")
    counts = {"kept": report.kept, **report.rejected}
    for name in ("kept", *REASONS):
        table.add_row(name, str(counts[name]), f"{counts[name] / max(report.records, 1):.0%}",
                      *(str(by[name]) for by in report.by_data_type.values()))
    console.print(table)
    console.print(f"report: {result.paths.markdown}; journal: {result.paths.journal}")
    if report.invalid_records:
        err_console.print(f"[yellow]warning:[/] {report.invalid_records} invalid input record(s) skipped; "
                          f"first: {report.invalid_examples[0]}", highlight=False)


@config_command(commands, "serve", ServeConfig, rename={"media_roots": "media-root"},
                option_kwargs={"api_key": {"envvar": "VIDEOR1_API_KEY", "show_envvar": True}})
def serve_command(config: ServeConfig) -> None:
    """Serve a checkpoint as an OpenAI-compatible /v1/chat/completions endpoint (images and videos)."""
    from videor1.api.server import serve

    try:
        serve(config)
    except (ValueError, OSError) as error:
        fail(str(error))
