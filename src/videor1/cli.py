"""The `videor1` command. Each subcommand parses its options and calls the module that owns the work.

Heavy imports happen inside the commands, so that `videor1 --help` answers at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="videor1",
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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


FileArg = Annotated[Path, typer.Argument(help="A .json list, a .jsonl file, or a saved `datasets` directory.")]
MediaRoot = Annotated[
    Path | None,
    typer.Option("--media-root", help="Directory that record paths are relative to (default: the data file's directory)."),
]
AllowOutside = Annotated[bool, typer.Option("--allow-outside-media-root", help="Let record media paths lead outside the media root (by default such a record is bad: `..`, absolute paths and symlinks are resolved first).")]


@data_app.command("validate")
def data_validate(
    file: FileArg,
    media_root: MediaRoot = None,
    kind: Annotated[str, typer.Option(help="Record schema: auto (cot when every record has `process`), train, cot, eval.")] = "auto",
    report: Annotated[Path | None, typer.Option(help="Where to write the bad records (JSONL; written, empty, even when all are good). Default: <file stem>.bad.jsonl here, only when some record is bad.")] = None,
    allow_bad: Annotated[bool, typer.Option("--allow-bad", help="Exit 0 even when some records are bad.")] = False,
    media: Annotated[str, typer.Option(help="Media check: open (decode videos at their sampled frames, decode images), exists, or none.")] = "open",
    allow_outside_media_root: AllowOutside = False,
) -> None:
    """Check every record: schema, answer letter among the options, numeric answers, media present."""
    from videor1.data import DataFileError
    from videor1.data.validate import validate_records
    from videor1.media.check import open_problem

    if kind not in ("auto", "train", "cot", "eval"):
        _fail(f"--kind must be auto, train, cot or eval, got {kind!r}")
    if media not in ("open", "exists", "none"):
        _fail(f"--media must be open, exists or none, got {media!r}")
    try:
        result = validate_records(file, kind=kind, media_root=media_root, check_media=media,
                                  allow_outside_media_root=allow_outside_media_root, open_media=open_problem)
    except DataFileError as error:
        _fail(str(error))

    table = Table(title=f"{file} ({result.kind} records, media root {result.media_root})")
    for column in ("data source", "problem type", "data type"):
        table.add_column(column)
    table.add_column("good", justify="right", style="green")
    table.add_column("bad", justify="right", style="red")
    for (source, ptype, dtype), (good, bad) in sorted(result.groups.items()):
        table.add_row(source, ptype, dtype, str(good), str(bad))
    table.add_section()
    table.add_row("all", "", "", str(len(result.good)), str(len(result.bad)))
    console.print(table)

    if result.duplicate_ids:
        shown = ", ".join(map(str, result.duplicate_ids[:10]))
        err_console.print(f"[yellow]warning:[/] {len(result.duplicate_ids)} problem_id(s) occur more than once: {shown}")
    if result.videos_opened:
        per_video = 1000 * result.video_seconds / result.videos_opened
        console.print(f"media: {result.videos_opened} video(s) decoded at their sampled frames in "
                      f"{result.video_seconds:.1f} s ({per_video:.0f} ms per video)")
    if report is not None or result.bad:  # an asked-for report is written even when empty (no stale one)
        report = report or Path(f"{file.stem}.bad.jsonl")
        result.write_bad(report)
    if not result.bad:
        console.print(f"[green]all {result.total} records are valid[/]"
                      + (f" (empty report written to {report})" if report is not None else ""))
        return
    for bad in result.bad[:5]:
        err_console.print(f"  {bad.describe()}", markup=False, highlight=False)
    if len(result.bad) > 5:
        err_console.print(f"  … and {len(result.bad) - 5} more")
    err_console.print(f"[red]{len(result.bad)} of {result.total} records are bad[/]; reasons written to {report}")
    if not allow_bad:
        raise typer.Exit(code=1)


@data_app.command("stats")
def data_stats(
    file: FileArg,
    plot: Annotated[Path | None, typer.Option(help="Also write a bar chart PNG here.")] = None,
) -> None:
    """Distribution of the records by data type, problem type and source."""
    from videor1.data import DataFileError, read_raw
    from videor1.data.stats import FIELDS, distribution, plot_distribution

    try:
        dist = distribution(read_raw(file))
    except DataFileError as error:
        _fail(str(error))
    if dist.total == 0:
        _fail(f"{file}: no record is a JSON object (first: {dist.unreadable[0]})")
    for line in dist.unreadable[:5]:
        err_console.print(f"[yellow]warning:[/] {file}: {line}; not counted", highlight=False)
    for name in FIELDS:
        table = Table(title=name.replace("_", " "))
        table.add_column("value")
        table.add_column("records", justify="right")
        table.add_column("share", justify="right")
        for value, count in dist.counts[name].most_common():
            table.add_row(value, str(count), f"{count / max(dist.total, 1):.1%}")
        console.print(table)
    console.print(f"{dist.total} records")
    if plot is not None:
        console.print(f"chart written to {plot_distribution(dist, plot, title=f'{file.name}: {dist.total} records')}")


@data_app.command("mix")
def data_mix(
    config: Annotated[Path, typer.Option("--config", help="Mix config (YAML): seed, total, sources with count or ratio.")],
    out: Annotated[Path, typer.Option("--out", help="Output record file (.json or .jsonl).")],
    media_root: Annotated[
        Path | None, typer.Option("--media-root", help="Media root of the output (default: the output file's directory).")
    ] = None,
) -> None:
    """Build a training file from several sources, deterministic for the config's seed."""
    from pydantic import ValidationError

    from videor1.data import DataFileError, write_records
    from videor1.data.mix import MixConfig, mix_records
    from videor1.media.check import open_problem

    try:
        mix_config = MixConfig.from_yaml(config)
        result = mix_records(mix_config, media_root or out.resolve().parent, open_problem)
    except (ValidationError, ValueError, DataFileError, OSError) as error:
        _fail(f"{config}: {error}")
    write_records(result.records, out)
    table = Table(title=f"{out}: {len(result.records)} records (seed {mix_config.seed})")
    for column in ("source", "available", "drawn", "bad, skipped"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, drawn in result.drawn.items():
        table.add_row(name, str(result.available[name]), str(drawn), str(len(result.skipped[name])))
    console.print(table)
    for name, bad in result.skipped.items():
        if bad:
            err_console.print(f"[yellow]warning:[/] {name}: {len(bad)} bad record(s) skipped; first: {bad[0].describe()}")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Output directory (videos/, images/, JSON files).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of RL training questions.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same files.")] = 0,
    config: Annotated[Path | None, typer.Option(help="YAML with SynthConfig fields (size, instants, repeat, fps, …).")] = None,
) -> None:
    """Write a synthetic temporal video dataset: real mp4 videos, PNG images, Video-R1 JSON files."""
    import yaml
    from pydantic import ValidationError

    from videor1.data.synth import SynthConfig, synthesize

    try:
        synth_config = SynthConfig.model_validate(yaml.safe_load(config.read_text()) or {}) if config else SynthConfig()
    except (ValidationError, OSError, yaml.YAMLError) as error:
        _fail(f"{config}: {error}")
    summary = synthesize(out, n=n, seed=seed, config=synth_config)
    table = Table(title=f"{out} (seed {seed}, {summary.seconds:.1f} s, {summary.videos} videos, {summary.images} images)")
    for column in ("file", "records", "video", "image", "temporal"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for name, count in summary.files.items():
        types = summary.data_types.get(name, {})
        table.add_row(name, str(count), str(types.get("video", 0)), str(types.get("image", 0)),
                      str(summary.temporal.get(name, 0)))
    console.print(table)


@app.command("prompt")
def prompt(
    file: FileArg,
    index: Annotated[int, typer.Option(help="Which record (position in the file).")] = 0,
    template: Annotated[str, typer.Option(help="Preset name (video-r1, video-r1-eval, plain) or a template file.")] = "video-r1",
) -> None:
    """Print the question text that a record becomes under a prompt template."""
    from pydantic import ValidationError

    from videor1.data import DataFileError, RecordError, read_raw
    from videor1.data.loading import parse_row
    from videor1.data.records import RECORD_KINDS
    from videor1.data.validate import guess_kind
    from videor1.prompts import build_question, load_template

    try:
        rows = read_raw(file)
        if not 0 <= index < len(rows):
            _fail(f"{file} has {len(rows)} records; --index {index} is out of range")
        record = parse_row(rows[index], RECORD_KINDS[guess_kind(rows)], str(file), index)
        console.print(build_question(record, load_template(template)), markup=False, highlight=False)
    except (DataFileError, RecordError, ValueError, ValidationError) as error:
        _fail(str(error))


@model_app.command("tiny")
def model_tiny(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint directory to write.")],
    arch: Annotated[str, typer.Option(help="qwen2_5_vl or qwen3_vl.")] = "qwen2_5_vl",
    size: Annotated[str, typer.Option(help="tiny (~1 M parameters) or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    data: Annotated[list[Path] | None, typer.Option(help="Record files whose text trains the tokenizer (repeatable).")] = None,
) -> None:
    """Build a tiny randomly initialised Qwen model, tokenizer and processor, offline; it loads like a real checkpoint."""
    from videor1.models.tiny import SIZES, build_tiny_from_records

    if arch not in ("qwen2_5_vl", "qwen3_vl"):
        _fail(f"--arch must be qwen2_5_vl or qwen3_vl, got {arch!r}")
    if size not in SIZES:
        _fail(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    path = build_tiny_from_records(out, data or [], arch, size, seed)
    console.print(f"tiny {arch} ({size}) written to {path}")


StageConfig = Annotated[Path | None, typer.Option(help="YAML recipe (see configs/); key=value arguments override it.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the run directory's latest checkpoint.")]
Check = Annotated[bool, typer.Option("--check", help="Validate the config, print it, and exit.")]
STAGE = {"allow_extra_args": True, "ignore_unknown_options": True}


def _run_stage(load, train, config: Path | None, overrides: list[str], resume: bool, check: bool) -> None:
    """A training stage from its recipe and overrides: --check prints the resolved config, else train."""
    import yaml
    from accelerate import PartialState

    try:
        stage_config = load(config, overrides)
    except (ValueError, OSError) as error:
        _fail(str(error))
    if check:
        console.print(yaml.safe_dump(stage_config.model_dump(mode="json"), sort_keys=False), markup=False,
                      highlight=False)
        return
    from videor1.data import DataFileError

    try:
        result = train(stage_config, resume=resume)
    except DataFileError as error:  # a data file unreadable, or without one valid record
        _fail(str(error))
    if PartialState().is_main_process:
        console.print(f"done: {result.output_dir}")


@app.command("rl", context_settings=STAGE)
def rl(ctx: typer.Context, config: StageConfig = None, resume: Resume = False, check: Check = False) -> None:
    """RL with T-GRPO or GRPO (accelerate: run under `accelerate launch` for several processes)."""
    from videor1.train.config import load_config
    from videor1.train.rl import train

    _run_stage(load_config, train, config, ctx.args, resume, check)


@app.command("sft", context_settings=STAGE)
def sft(ctx: typer.Context, config: StageConfig = None, resume: Resume = False, check: Check = False) -> None:
    """SFT cold start on chain-of-thought records (accelerate: run under `accelerate launch` for several processes)."""
    from videor1.train.sft import load_sft_config, train

    _run_stage(load_sft_config, train, config, ctx.args, resume, check)


@app.command("doctor")
def doctor() -> None:
    """Check this machine: versions, video decoding, the processor, and one RL step on a tiny model."""
    from videor1.doctor import run_doctor

    if not run_doctor(console):
        raise typer.Exit(code=1)


Endpoint = Annotated[str | None, typer.Option("--endpoint", help="Instead of --model: an OpenAI-compatible server's base URL (videor1 serve, vLLM; key: $VIDEOR1_API_KEY or $OPENAI_API_KEY).")]
EndpointModel = Annotated[str | None, typer.Option("--endpoint-model", help="Model name on the endpoint (default: the first it lists).")]


def _one_generator(model: Path | None, endpoint: str | None) -> None:
    if (model is None) == (endpoint is None):
        _fail("give exactly one of --model DIR (a local checkpoint) or --endpoint URL (a server)")


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Evaluation file in the Video-R1 format, or a directory of them with --bench all (eval_vsibench.json, eval_videomme.json, …).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory: per-sample JSONL, summary JSON, Markdown. Running again resumes.")],
    model: Annotated[Path | None, typer.Option("--model", help="Local checkpoint directory (a real Qwen-VL checkpoint or a tiny one); or give --endpoint.")] = None,
    endpoint: Endpoint = None,
    endpoint_model: EndpointModel = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Endpoint requests in flight at once.")] = 4,
    bench: Annotated[str, typer.Option("--bench", help="vsibench, videommmu, mmvu, mvbench, tempcompass, videomme, synthetic, generic, or all.")] = "all",
    media_root: MediaRoot = None,
    allow_outside_media_root: AllowOutside = False,
    frames: Annotated[int, typer.Option(min=2, help="Frames per video (paper: 16-64 at evaluation).")] = 32,
    max_pixels: Annotated[int, typer.Option(min=1, help="Max pixels per frame or image (paper: 256*28*28).")] = 256 * 28 * 28,
    min_pixels: Annotated[int, typer.Option(min=1, help="Min pixels per frame.")] = 16 * 28 * 28,
    template: Annotated[str, typer.Option(help="Prompt preset (video-r1, video-r1-eval, plain) or a template file.")] = "video-r1-eval",
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per generate call.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 1024,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of the paper's temperature 0.01, top_p 0.001.")] = False,
    temperature: Annotated[float | None, typer.Option(help="Override the sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Override top_p.")] = None,
    shuffle: Annotated[str | None, typer.Option(help="Shuffle each video's frames: frame or temporal_patch (2-frame groups).")] = None,
    temporal_reliance: Annotated[bool, typer.Option("--temporal-reliance", help="Run ordered and shuffled (--shuffle, default frame); report both and the gap.")] = False,
    seed: Annotated[int, typer.Option(help="Seeds the per-item shuffles and the sampling.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16.")] = "auto",
    device: Annotated[str | None, typer.Option(help="cuda, cpu, … (default: cuda when available).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items of each file.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Frame cache directory (default: no cache).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Evaluate a model on video benchmarks; resumes into --out; per-category scores and temporal reliance."""
    from pydantic import ValidationError

    from videor1.data import DataFileError
    from videor1.eval import EvalConfig, eval_sampling, run_suite
    from videor1.eval.runner import EndpointUnavailable

    _one_generator(model, endpoint)
    try:
        sampling = eval_sampling(max_new_tokens, greedy)
        overrides = {k: v for k, v in (("temperature", temperature), ("top_p", top_p)) if v is not None}
        sampling = sampling.model_validate({**sampling.model_dump(), **overrides})
        config = EvalConfig(model=model, endpoint=endpoint, endpoint_model=endpoint_model, concurrency=concurrency,
                            bench=bench, data=data, media_root=media_root,
                            allow_outside_media_root=allow_outside_media_root, out_dir=out, frames=frames,
                            max_pixels=max_pixels, min_pixels=min_pixels, template=template, sampling=sampling,
                            batch_size=batch_size, shuffle=shuffle, temporal_reliance=temporal_reliance, seed=seed,
                            dtype=dtype, device=device, limit=limit, cache_dir=cache_dir)
        results = run_suite(config, show_progress=progress)
    except (ValidationError, ValueError, DataFileError, FileNotFoundError, EndpointUnavailable) as error:
        _fail(str(error))

    table = Table(title=f"{out} (scores in %, failed samples score 0)")
    for column in ("benchmark", "condition", "items", "failed", "accuracy", "MRA", "overall", "(acc+MRA)/2"):
        table.add_column(column, justify="left" if column in ("benchmark", "condition") else "right")
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for result in results:
        for name, s in result.summary.conditions.items():
            table.add_row(result.summary.title, name, str(s.n), str(s.failed), pct(s.accuracy), pct(s.mra),
                          pct(s.overall), pct(s.reference_overall))
        if (r := result.summary.temporal_reliance) is not None and r.overall.gap is not None:
            table.add_row(result.summary.title, "temporal reliance", str(r.n), "", "", "", f"{100 * r.overall.gap:+.1f}", "")
    console.print(table)
    console.print(f"reports: {out / 'report.md'}, {out / 'summary.json'}; samples: {out}/<bench>.<condition>.jsonl")


@app.command("eval-judge")
def eval_judge(
    results: Annotated[Path, typer.Option("--results", help="An `eval` output directory (its per-sample <bench>.<condition>.jsonl).")],
    endpoint: Annotated[str, typer.Option("--endpoint", help="OpenAI-compatible base URL of the judge (…/v1 or without it).")],
    model: Annotated[str | None, typer.Option("--model", help="Judge model name (default: the first the endpoint lists).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="VIDEOR1_JUDGE_API_KEY", help="Bearer key, if the endpoint wants one.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest judge reply, in tokens.")] = 1024,
) -> None:
    """Paper §4.5: ask a judge model whether each video response reasons over time; % per benchmark and condition.

    Resumable: verdicts go to DIR/judge/; a run again asks only what has no verdict. Writes judge.json and judge.md."""
    from videor1.rollout.chat import ChatClient, EndpointError
    from videor1.eval import BENCHMARKS
    from videor1.eval.judge import JudgeConfig, run_judge

    try:
        with ChatClient(endpoint, model=model, api_key=api_key, concurrency=concurrency) as client:
            report = run_judge(results, client, JudgeConfig(max_tokens=max_tokens, chunk=max(32, 4 * concurrency)))
    except (EndpointError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    table = Table(title=f"{results}: temporal reasoning, judged by {report['judge']['model']}")
    for column in ("benchmark", "condition", "responses", "temporal", "not", "unparseable", "pending", "% temporal"):
        table.add_column(column, justify="left" if column in ("benchmark", "condition") else "right")
    rows = [(BENCHMARKS[b].title if b in BENCHMARKS else b, c, n) for b, conds in report["benchmarks"].items()
            for c, n in conds.items()]
    for bench, condition, n in rows + [("all", c, n) for c, n in report["overall"].items()]:
        pct = "–" if n["temporal_pct"] is None else f"{n['temporal_pct']:.1f}"
        table.add_row(bench, condition, *(str(n[k]) for k in ("responses", "yes", "no", "unparseable", "pending")), pct)
    console.print(table)
    console.print(f"report: {results / 'judge.json'}, {results / 'judge.md'}")
    if report["failed_requests"]:
        err_console.print(f"[yellow]{report['failed_requests']} request(s) failed[/]: run again to retry them")


@app.command("infer")
def infer_command(
    question: Annotated[str, typer.Option("--question", help="The question, without options.")],
    model: Annotated[Path | None, typer.Option("--model", help="Local checkpoint directory; or give --endpoint.")] = None,
    endpoint: Endpoint = None,
    endpoint_model: EndpointModel = None,
    video: Annotated[Path | None, typer.Option("--video", help="A video file (or give --image).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="An image file (or give --video).")] = None,
    problem_type: Annotated[str | None, typer.Option("--type", help="multiple choice, numerical, OCR, free-form or regression (default: multiple choice with --options, else free-form).")] = None,
    options: Annotated[list[str] | None, typer.Option("--options", help="One option, repeatable: 'A. red' or 'red' (lettered in order).")] = None,
    template: Annotated[str, typer.Option(help="Prompt preset (video-r1, video-r1-eval, plain) or a template file.")] = "video-r1",
    frames: Annotated[int, typer.Option(min=2, help="Frames sampled from the video.")] = 32,
    max_pixels: Annotated[int, typer.Option(min=1, help="Max pixels per frame or image.")] = 256 * 28 * 28,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 1024,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of temperature 0.01, top_p 0.001.")] = False,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16.")] = "auto",
    device: Annotated[str | None, typer.Option(help="cuda, cpu, … (default: cuda when available).")] = None,
) -> None:
    """Ask one question about a video or an image; print the model's reasoning and its answer."""
    from videor1.data.records import PROBLEM_TYPES
    from videor1.eval import eval_sampling
    from videor1.eval.generate import endpoint_generator
    from videor1.rollout.chat import EndpointError
    from videor1.eval.infer import infer
    from videor1.media.errors import MediaError

    _one_generator(model, endpoint)
    problem_type = problem_type or ("multiple choice" if options else "free-form")
    if problem_type not in PROBLEM_TYPES:
        _fail(f"--type must be one of {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
    try:
        sampling = eval_sampling(max_new_tokens, greedy)
        generator = None if endpoint is None else endpoint_generator(endpoint, endpoint_model, sampling)
        result = infer(model, question, video=video, image=image, problem_type=problem_type, options=options,
                       template=template, frames=frames, max_pixels=max_pixels, sampling=sampling, dtype=dtype,
                       device=device, generator=generator)
    except (ValueError, MediaError, FileNotFoundError, EndpointError) as error:
        _fail(str(error))
    console.print("[bold]reasoning:[/]")
    console.print(result.reasoning if result.reasoning is not None else result.output, markup=False, highlight=False)
    console.print("[bold]answer:[/] ", end="")
    console.print(result.answer if result.answer is not None else "(no <answer> tags)", markup=False, highlight=False)


@app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Option("--model", help="Local checkpoint directory to serve.")],
    host: Annotated[str, typer.Option(help="Interface to bind; anything but loopback exposes the model and the media roots to the network (protect it with --api-key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    media_root: Annotated[list[Path] | None, typer.Option("--media-root", help="Directory whose files requests may name by path (repeatable; none: only data: URLs).")] = None,
    frames: Annotated[int, typer.Option(min=2, help="Frames sampled from each video (a client's prepared clip of N frames needs --frames N).")] = 32,
    max_pixels: Annotated[int, typer.Option(min=1, help="Max pixels per frame or image.")] = 256 * 28 * 28,
    min_pixels: Annotated[int, typer.Option(min=1, help="Min pixels per frame.")] = 16 * 28 * 28,
    served_model_name: Annotated[str | None, typer.Option(help="Model name in /v1/models and requests (default: the directory's name).")] = None,
    max_request_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body, in MiB (413 above).")] = 256.0,
    dtype: Annotated[str, typer.Option(help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16.")] = "auto",
    device: Annotated[str | None, typer.Option(help="cuda, cpu, … (default: cuda when available).")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Prompt plus completion tokens per request (default and most: the checkpoint's max_position_embeddings).")] = None,
    request_timeout: Annotated[float, typer.Option(help="Seconds one request may hold the model; beyond, its generation stops (422).")] = 300.0,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="VIDEOR1_API_KEY", show_envvar=True, help="Require 'Authorization: Bearer KEY' on /v1/* (401 otherwise).")] = None,
) -> None:
    """Serve a checkpoint as an OpenAI-compatible /v1/chat/completions endpoint (images and videos)."""
    from pydantic import ValidationError

    from videor1.api.server import ServeConfig, serve

    try:
        config = ServeConfig(model=model, host=host, port=port, media_roots=media_root or [], frames=frames,
                             max_pixels=max_pixels, min_pixels=min_pixels, served_model_name=served_model_name,
                             max_request_mb=max_request_mb, dtype=dtype, device=device, max_model_len=max_model_len,
                             request_timeout=request_timeout, api_key=api_key or None)
        serve(config)
    except ValidationError as error:
        _fail("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in error.errors()))
    except (ValueError, OSError) as error:
        _fail(str(error))


@app.command("annotate")
def annotate_command(
    data: Annotated[Path, typer.Option("--data", help="Training records to annotate (Video-R1-260k format).")],
    out: Annotated[Path, typer.Option("--out", help="COT file to write (.json or .jsonl); journal, settings and report beside it. Running again resumes.")],
    teacher: Annotated[Path | None, typer.Option("--teacher", help="Local teacher checkpoint directory (or give --endpoint).")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="OpenAI-compatible base URL, e.g. a vLLM server (key: $VIDEOR1_API_KEY or $OPENAI_API_KEY).")] = None,
    endpoint_model: Annotated[str | None, typer.Option("--endpoint-model", help="Model name on the endpoint (default: its first).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Endpoint requests in flight.")] = 4,
    media_root: MediaRoot = None,
    template: Annotated[str, typer.Option(help="Prompt preset or file (the paper annotates with video-r1).")] = "video-r1",
    threshold: Annotated[float, typer.Option(max=1.0, help="Keep when the accuracy reward is at least this (0.5: the RL stage's correct threshold).")] = 0.5,
    min_think_words: Annotated[int, typer.Option(min=1, help="Fewest words of reasoning kept.")] = 20,
    max_think_words: Annotated[int, typer.Option(min=1, help="Most words of reasoning kept.")] = 500,
    frames: Annotated[int, typer.Option(min=2, help="Frames per video.")] = 32,
    max_pixels: Annotated[int, typer.Option(min=1, help="Max pixels per frame or image.")] = 256 * 28 * 28,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per teacher call.")] = 8,
    allow_outside_media_root: AllowOutside = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest teacher response, in tokens.")] = 1024,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of temperature 0.01, top_p 0.001.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N records.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the teacher's sampling.")] = 0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Annotate again the records journaled as media_error or teacher_error.")] = False,
    dtype: Annotated[str, typer.Option(help="Local teacher: auto, float32, bfloat16, float16.")] = "auto",
    device: Annotated[str | None, typer.Option(help="Local teacher: cuda, cpu, … (default: cuda when available).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Chain-of-thought records from a teacher, filtered by our rewards; the output feeds `videor1 sft`."""
    from pydantic import ValidationError

    from videor1.data import DataFileError
    from videor1.annotate import REASONS, AnnotateConfig, annotate
    from videor1.rollout.chat import EndpointError
    from videor1.eval import eval_sampling

    try:
        config = AnnotateConfig(data=data, media_root=media_root, allow_outside_media_root=allow_outside_media_root,
                                out=out, teacher=teacher, endpoint=endpoint,
                                endpoint_model=endpoint_model, concurrency=concurrency, template=template,
                                frames=frames, max_pixels=max_pixels, min_pixels=min(16 * 28 * 28, max_pixels),
                                sampling=eval_sampling(max_new_tokens, greedy), threshold=threshold,
                                min_think_words=min_think_words, max_think_words=max_think_words,
                                batch_size=batch_size, seed=seed, limit=limit, retry_failed=retry_failed,
                                dtype=dtype, device=device)
        result = annotate(config, show_progress=progress)
    except (ValidationError, ValueError, DataFileError, FileNotFoundError, EndpointError) as error:
        _fail(str(error))
    report = result.report
    table = Table(title=f"{out}: {report.kept} of {report.records} records kept")
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


@data_app.command("import-bench")
def data_import_bench(
    bench: Annotated[str, typer.Option("--bench", help="vsibench, videommmu, mmvu, mvbench, tempcompass or videomme (formats: docs/benchmarks.md).")],
    src: Annotated[Path, typer.Option("--src", help="Official annotations: VSI-Bench / Video-MME parquet, JSON or JSONL; the lmms-lab/VideoMMMU directory (or one track's parquet); MMVU's validation.json; MVBench's json/ directory; TempCompass's multi-choice.json.")],
    out: Annotated[Path, typer.Option("--out", help="Video-R1 evaluation file to write (.json or .jsonl).")],
    video_dir: Annotated[str | None, typer.Option(help="Folder of the videos under the media root (default: the release's own layout).")] = None,
) -> None:
    """Convert a benchmark's official annotations into the Video-R1 evaluation format."""
    from videor1.data import DataFileError, write_records
    from videor1.eval.importers import IMPORTERS

    if bench not in IMPORTERS:
        _fail(f"--bench must be one of {', '.join(IMPORTERS)}, got {bench!r}")
    try:
        result = IMPORTERS[bench](src, **({} if video_dir is None else {"video_dir": video_dir}))
    except (DataFileError, OSError, ValueError, KeyError) as error:
        _fail(f"{src}: {error}")
    write_records(result.records, out)
    console.print(f"{len(result.records)} records written to {out}")
    for reason in result.skipped[:10]:
        err_console.print(f"[yellow]skipped[/] {reason}", highlight=False)
    if len(result.skipped) > 10:
        err_console.print(f"… and {len(result.skipped) - 10} more skipped")
    for reason, count in result.left_out.items():
        console.print(f"left out by design: {count} ({reason})", highlight=False)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory: data, runs, evaluations, logs, report/. Running again resumes.")] = Path("outputs/demo"),
    seeds: Annotated[int, typer.Option(min=1, help="RL seeds per arm (the table shows mean ± spread when > 1).")] = 1,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke version: tiny budgets, a few minutes.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Independent stages (RL arms, evaluations) run side by side, sharing the cores.")] = 2,
    cache: Annotated[Path | None, typer.Option(help="Cache of perception-pretrained base models (default: ~/.cache/videor1/demo).")] = None,
    recipes: Annotated[Path | None, typer.Option(help="Directory of the demo recipes (default: the repository's configs/demo).")] = None,
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
        _fail(str(error))
    console.print(f"report: {report} and {report.with_suffix('.html')}")


if __name__ == "__main__":  # `python -m videor1.cli …`, e.g. under `accelerate launch -m videor1.cli rl …`
    app()
