"""Commands on record files (`videor1 data …`), `videor1 prompt` and `videor1 model tiny`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from videor1.cli.common import (
    AllowOutside,
    FileArg,
    MediaRoot,
    app,
    console,
    data_app,
    err_console,
    fail,
    model_app,
)


@data_app.command("validate")
def data_validate(
    file: FileArg,
    media_root: MediaRoot = None,
    kind: Annotated[str, typer.Option(help="Record schema: auto (cot when every record has `process`), "
                                           "train, cot, eval.")] = "auto",
    report: Annotated[Path | None, typer.Option(help="Where to write the bad records (JSONL; written, empty, "
                                                     "even when all are good). Default: <file "
                                                     "stem>.bad.jsonl here, only when some record is "
                                                     "bad.")] = None,
    allow_bad: Annotated[bool,
                         typer.Option("--allow-bad", help="Exit 0 even when some records are bad.")] = False,
    media: Annotated[str, typer.Option(help="Media check: open (decode videos at their sampled frames, "
                                            "decode images), exists, or none.")] = "open",
    allow_outside_media_root: AllowOutside = False,
) -> None:
    """Check every record: schema, answer letter among the options, numeric answers, media present."""
    from videor1.data import DataFileError
    from videor1.data.validate import validate_records
    from videor1.media.check import open_problem

    if kind not in ("auto", "train", "cot", "eval"):
        fail(f"--kind must be auto, train, cot or eval, got {kind!r}")
    if media not in ("open", "exists", "none"):
        fail(f"--media must be open, exists or none, got {media!r}")
    try:
        result = validate_records(file, kind=kind, media_root=media_root, check_media=media,
                                  allow_outside_media_root=allow_outside_media_root, open_media=open_problem)
    except DataFileError as error:
        fail(str(error))

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
        err_console.print(f"[yellow]warning:[/] {len(result.duplicate_ids)} problem_id(s) occur more than "
                          f"once: {shown}")
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
    err_console.print(f"[red]{len(result.bad)} of {result.total} records are bad[/]; reasons written to "
                      f"{report}")
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
        fail(str(error))
    if dist.total == 0:
        fail(f"{file}: no record is a JSON object (first: {dist.unreadable[0]})")
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
        console.print("chart written to "
                      f"{plot_distribution(dist, plot, title=f'{file.name}: {dist.total} records')}")


@data_app.command("mix")
def data_mix(
    config: Annotated[Path,
                      typer.Option("--config",
                                   help="Mix config (YAML): seed, total, sources with count or ratio.")],
    out: Annotated[Path, typer.Option("--out", help="Output record file (.json or .jsonl).")],
    media_root: Annotated[
        Path | None,
        typer.Option("--media-root", help="Media root of the output (default: the output file's directory).")
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
        fail(f"{config}: {error}")
    write_records(result.records, out)
    table = Table(title=f"{out}: {len(result.records)} records (seed {mix_config.seed})")
    for column in ("source", "available", "drawn", "bad, skipped"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, drawn in result.drawn.items():
        table.add_row(name, str(result.available[name]), str(drawn), str(len(result.skipped[name])))
    console.print(table)
    for name, bad in result.skipped.items():
        if bad:
            err_console.print(f"[yellow]warning:[/] {name}: {len(bad)} bad record(s) skipped; first: "
                              f"{bad[0].describe()}")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Output directory (videos/, images/, JSON files).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of RL training questions.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same files.")] = 0,
    config: Annotated[Path | None, typer.Option(help="YAML with SynthConfig fields (size, instants, repeat, "
                                                     "fps, …).")] = None,
) -> None:
    """Write a synthetic temporal video dataset: real mp4 videos, PNG images, Video-R1 JSON files."""
    import yaml
    from pydantic import ValidationError

    from videor1.data.synth import SynthConfig, synthesize

    try:
        values = (yaml.safe_load(config.read_text()) or {}) if config else {}
        synth_config = SynthConfig.model_validate(values)
    except (ValidationError, OSError, yaml.YAMLError) as error:
        fail(f"{config}: {error}")
    summary = synthesize(out, n=n, seed=seed, config=synth_config)
    table = Table(title=f"{out} (seed {seed}, {summary.seconds:.1f} s, {summary.videos} videos, "
                        f"{summary.images} images)")
    for column in ("file", "records", "video", "image", "temporal"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for name, count in summary.files.items():
        types = summary.data_types.get(name, {})
        table.add_row(name, str(count), str(types.get("video", 0)), str(types.get("image", 0)),
                      str(summary.temporal.get(name, 0)))
    console.print(table)


@data_app.command("import-bench")
def data_import_bench(
    bench: Annotated[str, typer.Option("--bench",
                                       help="vsibench, videommmu, mmvu, mvbench, tempcompass or videomme "
                                            "(formats: docs/benchmarks.md).")],
    src: Annotated[Path,
                   typer.Option("--src",
                                help="Official annotations: VSI-Bench / Video-MME parquet, JSON or JSONL; "
                                     "the lmms-lab/VideoMMMU directory (or one track's parquet); MMVU's "
                                     "validation.json; MVBench's json/ directory; TempCompass's "
                                     "multi-choice.json.")],
    out: Annotated[Path, typer.Option("--out", help="Video-R1 evaluation file to write (.json or .jsonl).")],
    video_dir: Annotated[str | None, typer.Option(help="Folder of the videos under the media root (default: "
                                                       "the release's own layout).")] = None,
) -> None:
    """Convert a benchmark's official annotations into the Video-R1 evaluation format."""
    from videor1.data import DataFileError, write_records
    from videor1.eval.importers import IMPORTERS

    if bench not in IMPORTERS:
        fail(f"--bench must be one of {', '.join(IMPORTERS)}, got {bench!r}")
    try:
        result = IMPORTERS[bench](src, **({} if video_dir is None else {"video_dir": video_dir}))
    except (DataFileError, OSError, ValueError, KeyError) as error:
        fail(f"{src}: {error}")
    write_records(result.records, out)
    console.print(f"{len(result.records)} records written to {out}")
    for reason in result.skipped[:10]:
        err_console.print(f"[yellow]skipped[/] {reason}", highlight=False)
    if len(result.skipped) > 10:
        err_console.print(f"… and {len(result.skipped) - 10} more skipped")
    for reason, count in result.left_out.items():
        console.print(f"left out by design: {count} ({reason})", highlight=False)


@app.command("prompt")
def prompt(
    file: FileArg,
    index: Annotated[int, typer.Option(help="Which record (position in the file).")] = 0,
    template: Annotated[str, typer.Option(help="Preset name (video-r1, video-r1-eval, plain) or a template "
                                               "file.")] = "video-r1",
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
            fail(f"{file} has {len(rows)} records; --index {index} is out of range")
        record = parse_row(rows[index], RECORD_KINDS[guess_kind(rows)], str(file), index)
        console.print(build_question(record, load_template(template)), markup=False, highlight=False)
    except (DataFileError, RecordError, ValueError, ValidationError) as error:
        fail(str(error))


@model_app.command("tiny")
def model_tiny(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint directory to write.")],
    arch: Annotated[str, typer.Option(help="qwen2_5_vl or qwen3_vl.")] = "qwen2_5_vl",
    size: Annotated[str, typer.Option(help="tiny (~1 M parameters) or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    data: Annotated[list[Path] | None, typer.Option(help="Record files whose text trains the tokenizer "
                                                         "(repeatable).")] = None,
) -> None:
    """Build a tiny randomly initialised Qwen model, tokenizer and processor, offline; it loads like a real
    checkpoint."""
    from videor1.models.tiny import SIZES, build_tiny_from_records

    if arch not in ("qwen2_5_vl", "qwen3_vl"):
        fail(f"--arch must be qwen2_5_vl or qwen3_vl, got {arch!r}")
    if size not in SIZES:
        fail(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    path = build_tiny_from_records(out, data or [], arch, size, seed)
    console.print(f"tiny {arch} ({size}) written to {path}")
