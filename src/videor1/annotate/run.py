"""`videor1 annotate`: chain-of-thought records from a teacher, resumable, through one `Generator`.

records → prompts with media (the CoT prompt, `video-r1`: paper Figure 11) → teacher in batches
→ `judge` each response → journal line → at the end, the COT file and the report from the journal.

The teacher is a local checkpoint (`HFGenerator`) or an OpenAI-compatible endpoint
(`videor1.eval.generate.endpoint_generator`); both answer a batch of prompts, so one code path serves both.
Batches are fixed slices of the input order and a batch cut by a kill is generated again whole, so a
resumed run gives every record the batch (padding, seed) of an uninterrupted run. A batch that raises
is retried record by record (`generate_each`); a record that still fails is journaled as
teacher_error, a record whose media cannot be read as media_error: both are reported, neither stops
the run, and the next run retries them only with `retry_failed`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videor1.annotate.decide import Decision, failure, judge
from videor1.annotate.report import AnnotateReport, build_report, write_report
from videor1.data.loading import load_records, relocated_path, require_records, write_records
from videor1.data.records import Record
from videor1.eval.generate import (
    Dtype,
    Generator,
    HFGenerator,
    endpoint_generator,
    eval_sampling,
    generate_each,
    record_prompt,
    vision_factor,
)
from videor1.eval.progress import eval_progress
from videor1.eval.results import ResultLog, check_settings
from videor1.eval.runner import media_config
from videor1.media.errors import MediaError
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS
from videor1.media.shuffle import sample_seed
from videor1.models.inputs import Prompt
from videor1.prompts import load_template
from videor1.rollout.base import SamplingConfig


class AnnotateConfig(BaseModel):
    """One annotation run: input records, teacher, how it is asked, and what is kept."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="Training records (Video-R1-260k format: .json, .jsonl or a datasets "
                                   "directory).")
    media_root: Path | None = Field(default=None, description="Root of the records' media paths "
                                                              "(default: the data file's directory).")
    allow_outside_media_root: bool = Field(
        default=False, description="Accept records whose media lead outside the media root, and write a COT "
        "file whose media lie outside its directory (its readers then need the same opt-out).")
    out: Path = Field(description="COT file to write (.json list or .jsonl); the journal, settings and "
                                  "report go beside it (<stem>.journal.jsonl, <stem>.settings.json, "
                                  "<stem>.report.json/.md).")
    teacher: Path | None = Field(default=None, description="Local teacher checkpoint directory.")
    endpoint: str | None = Field(default=None, description="Or an OpenAI-compatible server's base URL (e.g. "
                                 "vLLM); API key from $VIDEOR1_API_KEY or $OPENAI_API_KEY.")
    endpoint_model: str | None = Field(default=None, description="Model name on the endpoint (default: its "
                                       "first).")
    concurrency: int = Field(default=4, ge=1, description="Endpoint requests in flight (at most batch_size).")
    template: str = Field(default="video-r1",
                          description="Prompt preset or file; the paper annotates with the "
                                                          "training prompt (Figure 11), video-r1.")
    frames: int = Field(default=32, ge=2, description="Frames per video shown to the teacher.")
    max_pixels: int = Field(default=EVAL_MAX_PIXELS, ge=1, description="Max pixels per frame or image.")
    min_pixels: int = Field(default=EVAL_MIN_PIXELS, ge=1, description="Min pixels per frame.")
    sampling: SamplingConfig = Field(default_factory=eval_sampling, description="Teacher decoding; default "
                                     "the paper's evaluation decoding (temperature 0.01, top_p 0.001), 1024 "
                                     "tokens.")
    threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Keep a response whose accuracy reward "
                             "is at least this; 0/1 for multiple choice and numerical, continuous for OCR, "
                             "free-form and regression (0.5: the RL stage's correct_threshold, paper).")
    min_think_words: int = Field(default=20, ge=1, description="Fewest words of <think> content kept.")
    max_think_words: int = Field(default=500, ge=1, description="Most words of <think> content kept (~650 "
                                 "tokens: reasoning and answer fit the paper's 768-token response).")
    batch_size: int = Field(default=8, ge=1, description="Prompts per teacher call (endpoint: sent "
                                                         "concurrently).")
    seed: int = Field(default=0, description="Seeds the teacher's sampling, per batch.")
    limit: int | None = Field(default=None, ge=1, description="Annotate only the first N records.")
    retry_failed: bool = Field(default=False, description="Annotate again records journaled as media_error "
                               "or teacher_error (by default a decided record is never redone).")
    dtype: Dtype = Field(default="auto",
                         description="Local teacher: auto (bfloat16 on GPU, float32 on CPU), ….")
    device: str | None = Field(default=None, description="Local teacher: cuda, cpu, … (default: cuda if "
                                                         "available).")

    @model_validator(mode="before")
    @classmethod
    def _min_pixels_within_max(cls, data: Any) -> Any:
        # min_pixels left unset follows a max_pixels set below it (a small clip needs no upsizing)
        if isinstance(data, dict) and data.get("min_pixels") is None and data.get("max_pixels") is not None:
            data = {**data, "min_pixels": min(EVAL_MIN_PIXELS, int(data["max_pixels"]))}
        return data

    @model_validator(mode="after")
    def _check(self) -> AnnotateConfig:
        if (self.teacher is None) == (self.endpoint is None):
            raise ValueError("give exactly one teacher: a local checkpoint (teacher) or an endpoint URL "
                             "(endpoint)")
        if self.out.suffix not in (".json", ".jsonl"):
            raise ValueError(f"out must end in .json or .jsonl, got {self.out}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}")
        if self.min_think_words > self.max_think_words:
            raise ValueError(f"min_think_words={self.min_think_words} > "
                             f"max_think_words={self.max_think_words}")
        load_template(self.template)  # an unknown template fails now, not after loading the teacher
        return self

    def settings(self) -> dict:
        """Everything that changes a decision: a resumed run must match it (check_settings)."""
        keep = {"data", "media_root", "teacher", "endpoint", "endpoint_model", "template", "frames",
                "max_pixels", "min_pixels", "sampling", "threshold", "min_think_words", "max_think_words",
                "batch_size", "seed", "dtype"}
        values = self.model_dump(mode="json", include=keep)
        for key in ("data", "media_root", "teacher"):
            if values[key] is not None:
                values[key] = str(Path(values[key]).resolve())
        return values


@dataclass
class AnnotatePaths:
    out: Path
    journal: Path
    settings: Path
    report: Path
    markdown: Path

    @classmethod
    def of(cls, out: Path) -> AnnotatePaths:
        stem = out.with_suffix("")
        return cls(out, *(stem.with_name(stem.name + s) for s in (".journal.jsonl", ".settings.json",
                                                                  ".report.json", ".report.md")))


@dataclass
class AnnotateResult:
    report: AnnotateReport
    paths: AnnotatePaths


def make_teacher(config: AnnotateConfig) -> Generator:
    """The local checkpoint or the endpoint, behind the same `Generator` protocol."""
    if config.teacher is not None:
        return HFGenerator(config.teacher, config.sampling, config.dtype, config.device)
    return endpoint_generator(config.endpoint, config.endpoint_model, config.sampling, config.concurrency)


def check_unique_ids(records: list[Record], source: Path) -> None:
    """`ValueError` naming the file when two records share a journal id, str(problem_id)."""
    ids = [str(r.problem_id) for r in records]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        shown = ", ".join(repeated[:10]) + (" …" if len(repeated) > 10 else "")
        raise ValueError(f"{source}: {len(repeated)} problem_id(s) occur more than once ({shown}); the "
                         "journal resumes by problem_id, so make them unique (e.g. `videor1 data validate` "
                         "lists them)")


def _decide_batch(chunk: list[Record], config: AnnotateConfig, ask: Callable[[Record], Prompt],
                  teacher: Generator
                  ) -> list[Decision]:
    """Decisions for a batch, in its order: media first (a failure leaves the batch), then one teacher
    call."""
    decisions: dict[str, Decision] = {}
    live: list[tuple[Record, Prompt]] = []
    for record in chunk:
        try:
            live.append((record, ask(record)))
        except (MediaError, ValueError, OSError) as error:
            decisions[str(record.problem_id)] = failure(str(record.problem_id), "media_error", error)
    if live:
        ids = [str(record.problem_id) for record, _ in live]
        outputs = generate_each(teacher, [prompt for _, prompt in live], ids,
                                sample_seed(config.seed, "annotate", str(chunk[0].problem_id)))
        for (record, _), out in zip(live, outputs, strict=True):
            decisions[str(record.problem_id)] = (
                failure(str(record.problem_id), "teacher_error", out) if isinstance(out, Exception) else
                judge(record, out.text, out.tokens, config.threshold, config.min_think_words,
                      config.max_think_words))
    return [decisions[str(record.problem_id)] for record in chunk]


def _check_media_under(records: list[Record], media_root: Path | None, out_root: Path) -> None:
    """Refuse an output directory that does not hold the records' media: the COT file's readers (sft)
    would refuse every record whose media path leads outside its directory."""
    outside = [r for r in records if Path(relocated_path(r, media_root, out_root)).parts[0] == ".."]
    if outside:
        raise ValueError(f"{len(outside)} record(s)' media lie outside {out_root.resolve()}, the directory "
                         f"of out (first: {outside[0].label}, {outside[0].path!r}), so `videor1 sft` would "
                         "refuse them: write out into a directory that holds the media (e.g. beside the "
                         "data file), or set allow_outside_media_root (--allow-outside-media-root) here and "
                         "in sft")


def annotate(config: AnnotateConfig, teacher: Generator | None = None, show_progress: bool = True
             ) -> AnnotateResult:
    """Annotate `config.data` (resuming the journal beside `config.out`), then write the COT file and report.

    `teacher`: answers prompts; default `make_teacher(config)`, built only when a record is still to do.
    """
    started = time.perf_counter()
    if teacher is None:
        from videor1.rollout.chat import with_served_model

        config = with_served_model(config)
    paths = AnnotatePaths.of(config.out)
    loaded = require_records(load_records(config.data, kind=Record, media_root=config.media_root,
                                          allow_outside_media_root=config.allow_outside_media_root))
    check_unique_ids(loaded.records, config.data)
    records = loaded.records[:config.limit] if config.limit else loaded.records
    out_root = Path(config.out).parent  # media paths relocated so that the COT file finds its media
    if not config.allow_outside_media_root:  # known now, not after the teacher's work
        _check_media_under(records, loaded.media_root, out_root)
    check_settings(paths.settings, config.settings())
    journal = ResultLog(paths.journal, Decision, replace=True)  # a retried record's last line counts
    redo = lambda row: row is None or (config.retry_failed and row.failed)  # noqa: E731
    todo = {str(r.problem_id) for r in records if redo(journal.rows.get(str(r.problem_id)))}
    chunks = [records[i:i + config.batch_size] for i in range(0, len(records), config.batch_size)]
    pending = [chunk for chunk in chunks if any(str(r.problem_id) in todo for r in chunk)]
    media = media_config(config.frames, config.min_pixels, config.max_pixels, vision_factor(config.teacher))
    ask = partial(record_prompt, template=load_template(config.template), media_root=loaded.media_root,
                  media=media)
    if pending and teacher is None:
        teacher = make_teacher(config)
    with eval_progress(show_progress) as progress:
        task = progress.add_task("annotate", total=len(records), completed=len(records) - len(todo))
        for chunk in pending:
            for row in _decide_batch(chunk, config, ask, teacher):
                if row.id in todo:  # the others were decided before a kill; their batch was redone for these
                    journal.append(row)
                    progress.advance(task, tokens=row.tokens or 0)
        stats = progress.stats()

    rows = journal.rows
    write_records([{**rows[str(r.problem_id)].record, "path": relocated_path(r, loaded.media_root, out_root)}
                   for r in records if rows[str(r.problem_id)].kept], config.out)
    report = build_report(records, rows, [str(e) for e in loaded.bad], config.data, config.out, paths.journal,
                          config.settings(), {"seconds": time.perf_counter() - started, **stats})
    write_report(report, paths.report, paths.markdown)
    return AnnotateResult(report, paths)

