"""Evaluating a model on a benchmark file: media → prompts → batched generation → scores → reports.

Reliability, by construction:
- media are loaded per sample before batching: a sample whose media fail is recorded as failed
  with the reason, and its batch runs without it;
- a batch whose generation fails is retried sample by sample; a sample that still fails is
  recorded as failed with the reason;
- each result is appended to a JSONL and fsynced; a run started again skips the ids already there.
  Batches are fixed slices of the file's item order, and a batch cut by a kill is generated again
  whole, so every sample sees the same batch (same padding, same seed) as in an uninterrupted run,
  and the resumed summary, recomputed over all samples, equals the uninterrupted one.

`--shuffle` evaluates with each video's frames shuffled (seeded per item); `temporal_reliance`
runs ordered and shuffled and reports the gap (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videor1.data.loading import load_records, require_records
from videor1.data.records import EvalRecord, Record
from videor1.eval.benchmarks import Benchmark, detect_benchmark, get_benchmark, sample_ids
from videor1.eval.generate import (
    Dtype,
    Generation,
    Generator,
    HFGenerator,
    endpoint_generator,
    eval_sampling,
    generate_each,
    record_prompt,
    vision_factor,
)
from videor1.eval.progress import EvalProgress, eval_progress
from videor1.eval.report import BenchmarkSummary, write_benchmark_report, write_report
from videor1.eval.results import ResultLog, check_settings
from videor1.eval.scoring import SampleResult, aggregate, sample_result, temporal_reliance
from videor1.media.cache import FrameCache
from videor1.media.errors import MediaError
from videor1.media.loader import MediaConfig
from videor1.media.sampling import EVAL_MAX_PIXELS, EVAL_MIN_PIXELS, IMAGE_MIN_PIXELS
from videor1.media.shuffle import ShuffleMode, apply_permutation, sample_seed, shuffle_permutation
from videor1.models.inputs import Prompt
from videor1.prompts import PromptTemplate, build_question, load_template
from videor1.rollout.base import SamplingConfig

log = logging.getLogger(__name__)

ORDERED = "ordered"


class EndpointUnavailable(RuntimeError):
    """Samples left unscored because the endpoint was unreachable or overloaded; a rerun resumes them."""


def condition_name(shuffle: ShuffleMode | None) -> str:
    return ORDERED if shuffle is None else f"shuffle-{shuffle}"


def media_config(frames: int, min_pixels: int, max_pixels: int, factor: int = 28,
                 cache_dir: Path | None = None
                 ) -> MediaConfig:
    """Evaluation media: `frames` per video, frames and images at most `max_pixels`."""
    return MediaConfig(nframes=frames, video_min_pixels=min_pixels, video_max_pixels=max_pixels,
                       image_min_pixels=min(IMAGE_MIN_PIXELS, max_pixels), image_max_pixels=max_pixels,
                       factor=factor, cache_dir=cache_dir)


class EvalConfig(BaseModel):
    """One evaluation: which model, which benchmark file, how media are sampled and answers decoded."""

    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(default=None, description="Local checkpoint directory (real Qwen-VL or tiny).")
    endpoint: str | None = Field(default=None, description="Instead of a model: base URL of an "
                                 "OpenAI-compatible server (videor1 serve, vLLM); each prompt is one request "
                                 "(videor1.rollout.endpoint).")
    endpoint_model: str | None = Field(default=None, description="Model name at the endpoint (default: the "
                                       "first it lists).")
    concurrency: int = Field(default=4, ge=1, description="Endpoint requests in flight at once.")
    bench: str = Field(default="all", description="Benchmark adapter (vsibench, videommmu, mmvu, mvbench, "
                       "tempcompass, videomme, synthetic, generic), or 'all' with a directory as data.")
    data: Path = Field(description="Evaluation file in the Video-R1 format (or a directory with bench=all).")
    media_root: Path | None = Field(default=None, description="Root of the records' media paths "
                                                              "(default: the data file's directory).")
    allow_outside_media_root: bool = Field(
        default=False, description="Accept items whose media path leads outside the media root (by default "
        "such an item is a bad record).")
    out_dir: Path = Field(description="Where the per-sample JSONL, summary JSON and Markdown go.")
    frames: int = Field(default=32, ge=2, description="Frames per video (paper: 16-64 at evaluation).")
    max_pixels: int = Field(default=EVAL_MAX_PIXELS, ge=1, description="Max pixels per frame / image "
                                                                    "(paper: 256·28·28 at evaluation).")
    min_pixels: int = Field(default=EVAL_MIN_PIXELS, ge=1, description="Min pixels per frame (set "
                                                                   "explicitly: the processor default "
                                                                   "upsizes small videos).")
    template: str = Field(default="video-r1-eval", description="Prompt preset (video-r1, video-r1-eval, "
                                                                "plain) or a template file.")
    sampling: SamplingConfig = Field(default_factory=eval_sampling, description="Decoding; default: the "
                                     "paper's temperature 0.01, top_p 0.001, up to 1024 new tokens.")
    batch_size: int = Field(default=8, ge=1, description="Prompts per generate call.")
    shuffle: ShuffleMode | None = Field(default=None, description="Shuffle each video's frames: frame or "
                                        "temporal_patch (2-frame groups). None: ordered frames.")
    temporal_reliance: bool = Field(default=False, description="Run ordered and shuffled (shuffle, default "
                                    "frame) and report both scores and their gap.")
    seed: int = Field(default=0, description="Seeds the shuffles (per item) and the sampling (per batch).")
    dtype: Dtype = Field(default="auto", description="auto: bfloat16 on GPU, float32 on CPU.")
    device: str | None = Field(default=None, description="cuda, cpu, … (default: cuda when available).")
    limit: int | None = Field(default=None, ge=1, description="Evaluate only the first N items.")
    cache_dir: Path | None = Field(default=None, description="Frame cache directory (None: no cache).")

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        if self.model is not None and self.endpoint is not None:
            raise ValueError("give a model (local checkpoint) or an endpoint (URL), not both")
        if self.endpoint is not None:  # now, not per sample once generation starts (each would be failed)
            from videor1.rollout.chat import check_base_url

            check_base_url(self.endpoint)
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}: "
                             "lower min_pixels or raise max_pixels")
        load_template(self.template)  # an unknown template fails now, not after loading the model
        return self

    def conditions(self) -> list[ShuffleMode | None]:
        if self.temporal_reliance:
            return [None, self.shuffle or "frame"]
        return [self.shuffle]

    def media(self, factor: int) -> MediaConfig:
        return media_config(self.frames, self.min_pixels, self.max_pixels, factor, self.cache_dir)

    def settings(self, bench: Benchmark, condition: str) -> dict:
        """Everything that changes a sample's result: a resumed run must match it."""
        keep = ("model", "data", "media_root", "frames", "max_pixels", "min_pixels", "template", "sampling",
                "batch_size", "seed", "dtype")
        values = self.model_dump(mode="json", include=set(keep))
        for key in ("model", "data", "media_root"):
            if values[key] is not None:
                values[key] = str(Path(values[key]).resolve())
        if self.endpoint is not None:  # only then: local runs keep the settings they resume against
            values.update(endpoint=self.endpoint, endpoint_model=self.endpoint_model)
        return {**values, "benchmark": bench.name, "condition": condition}


@dataclass
class Item:
    id: str
    record: Record


@dataclass
class EvalResult:
    summary: BenchmarkSummary
    samples: dict[str, Path]  # condition -> per-sample JSONL
    summary_path: Path
    markdown_path: Path


@dataclass
class _Context:
    config: EvalConfig
    bench: Benchmark
    media_root: Path | None
    media: MediaConfig
    cache: FrameCache | None
    template: PromptTemplate
    shuffle: ShuffleMode | None
    condition: str


def _prompt(item: Item, ctx: _Context) -> tuple[str, Prompt, list[int] | None]:
    """The question text, the prompt with its media (frames shuffled when asked), and the frame order."""
    prompt = record_prompt(item.record, ctx.template, ctx.media_root, ctx.media, ctx.cache)
    if prompt.video is None or ctx.shuffle is None:
        return prompt.text, prompt, None
    seed = sample_seed(ctx.config.seed, "eval-shuffle", item.id)
    permutation = shuffle_permutation(len(prompt.video.frames), ctx.shuffle, seed)
    prompt.video = dataclasses.replace(prompt.video,
                                       frames=apply_permutation(prompt.video.frames, permutation))
    return prompt.text, prompt, permutation


Loaded = tuple[Item, str, Prompt | Exception,
               list[int] | None]  # item, question, prompt or why not, frame order


def _load_chunk(chunk: list[Item], ctx: _Context) -> list[Loaded]:
    """Each item's prompt with its media, or the error that stopped it (the sample fails, never its batch)."""
    loaded: list[Loaded] = []
    for item in chunk:
        try:
            text, prompt, permutation = _prompt(item, ctx)
        except (MediaError, ValueError, OSError) as error:
            loaded.append((item, build_question(item.record, ctx.template), error, None))
            continue
        loaded.append((item, text, prompt, permutation))
    return loaded


def _run_condition(items: list[Item], ctx: _Context, results: ResultLog, generator: Generator,
                   progress: EvalProgress) -> None:
    config = ctx.config
    chunks = [items[i:i + config.batch_size] for i in range(0, len(items), config.batch_size)]
    pending = [chunk for chunk in chunks if any(item.id not in results for item in chunk)]
    task = progress.add_task(f"{ctx.bench.name} {ctx.condition}", total=len(items),
                             completed=sum(item.id in results for item in items))
    # One thread decodes the next batch's media while the current batch generates.
    unavailable: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-media") as pool:
        upcoming = pool.submit(_load_chunk, pending[0], ctx) if pending else None
        for index, chunk in enumerate(pending):
            loaded = upcoming.result()
            if index + 1 < len(pending):
                upcoming = pool.submit(_load_chunk, pending[index + 1], ctx)
            live = [entry for entry in loaded if not isinstance(entry[2], Exception)]
            outputs: list[Generation | Exception] = []
            if live:
                seed = sample_seed(config.seed, ctx.condition, chunk[0].id)
                outputs = generate_each(generator, [prompt for _, _, prompt, _ in live],
                                        [e[0].id for e in live], seed)
            answers = dict(zip((e[0].id for e in live), outputs, strict=True))
            for item, text, prompt, permutation in loaded:
                if item.id in results:  # done before a kill: its batch was only rerun for the others
                    continue
                out = answers.get(item.id, prompt)  # the media error when it never reached generation
                if getattr(out, "transient", False):  # the endpoint was down, not the sample's fault
                    unavailable.append(f"{item.id}: {out}")
                    continue
                if isinstance(out, Exception):
                    row = sample_result(item.record, item.id, ctx.bench, ctx.condition, text, error=out,
                                        permutation=permutation)
                else:
                    row = sample_result(item.record, item.id, ctx.bench, ctx.condition, text, output=out.text,
                                        tokens=out.tokens, permutation=permutation)
                results.append(row)
                progress.advance(task, tokens=out.tokens if isinstance(out, Generation) else 0)
    if unavailable:
        raise EndpointUnavailable(f"{ctx.condition}: the endpoint did not answer for {len(unavailable)} "
                                  f"sample(s), left unscored (first: {unavailable[0]}); run the same command "
                                  "again to evaluate them — the others are kept")


def run_eval(config: EvalConfig, generator: Generator | None = None,
             show_progress: bool = True) -> EvalResult:
    """Evaluate one benchmark file (resuming any earlier run into the same out_dir) and write its reports.

    `generator`: answers prompts; default an `HFGenerator` on `config.model` (or an `endpoint_generator` on
    `config.endpoint`), made only when some sample is still to be generated.
    """
    started = time.perf_counter()
    bench = get_benchmark(config.bench)
    loaded = require_records(load_records(config.data, kind=EvalRecord, media_root=config.media_root,
                                          allow_outside_media_root=config.allow_outside_media_root), "items")
    records = loaded.records[:config.limit] if config.limit else loaded.records
    items = [Item(i, r) for i, r in zip(sample_ids(records), records, strict=True)]
    if generator is None and config.model is None and config.endpoint is None:
        raise ValueError(_NO_MODEL)
    media = config.media(vision_factor(config.model))  # an endpoint: 28, Qwen2/2.5-VL's side multiple
    template = load_template(config.template)
    if generator is None:
        config = _with_served_model(config)
        generator = _LazyGenerator(config)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[SampleResult]] = {}
    paths: dict[str, Path] = {}
    with eval_progress(show_progress) as progress:
        for shuffle in config.conditions():
            condition = condition_name(shuffle)
            stem = f"{bench.name}.{condition}"
            check_settings(config.out_dir / f"{stem}.settings.json", config.settings(bench, condition))
            results = ResultLog(config.out_dir / f"{stem}.jsonl")
            ctx = _Context(config, bench, loaded.media_root, media, media.cache(), template, shuffle,
                           condition)
            _run_condition(items, ctx, results, generator, progress)
            rows[condition] = [results.rows[item.id] for item in items]
            paths[condition] = results.path
        stats = progress.stats()

    scores = {c: aggregate(r, bench, c) for c, r in rows.items()}
    reliance = None
    if len(rows) == 2:
        ordered, shuffled = rows.values()
        reliance = temporal_reliance(ordered, shuffled, bench)
    summary = BenchmarkSummary(
        benchmark=bench.name, title=bench.title, data=str(config.data), items=len(items),
        invalid_records=len(loaded.bad), invalid_examples=[str(e) for e in loaded.bad[:5]],
        conditions=scores, temporal_reliance=reliance,
        settings=config.settings(bench, "/".join(rows)),
        timing={"seconds": time.perf_counter() - started, **stats})
    summary_path, markdown_path = write_benchmark_report(summary, config.out_dir)
    write_report(config.out_dir)
    return EvalResult(summary, paths, summary_path, markdown_path)


def run_suite(config: EvalConfig, generator: Generator | None = None, show_progress: bool = True
              ) -> list[EvalResult]:
    """`bench=all` over a directory: every file whose name names a benchmark (eval_vsibench.json, …);
    otherwise one `run_eval`. The model is loaded once, for all benchmarks."""
    if config.bench != "all":
        return [run_eval(config, generator, show_progress)]
    if not config.data.is_dir():
        raise ValueError(f"bench=all needs a directory of evaluation files, got {config.data}")
    found = [(path, detect_benchmark(path)) for path in sorted(config.data.iterdir())
             if path.suffix in (".json", ".jsonl")]
    known = [(path, bench) for path, bench in found if bench is not None]
    skipped = [path.name for path, bench in found if bench is None]
    if skipped:
        log.info("not a known benchmark file name, skipped: %s", ", ".join(skipped))
    if not known:
        raise ValueError(f"{config.data}: no evaluation file named after a benchmark "
                         "(eval_vsibench.json, eval_videomme.json, …)")
    if generator is None and config.model is None and config.endpoint is None:
        raise ValueError(_NO_MODEL)
    if generator is None:
        config = _with_served_model(config)
        generator = _LazyGenerator(config)
    return [run_eval(config.model_copy(update={"bench": bench.name, "data": path}), generator, show_progress)
            for path, bench in known]


_NO_MODEL = "EvalConfig needs a model (a local checkpoint directory) or an endpoint (a server URL)"


def _with_served_model(config: EvalConfig) -> EvalConfig:
    """The config with the endpoint's model pinned (`videor1.rollout.chat.with_served_model`)."""
    from videor1.rollout.chat import EndpointError, with_served_model

    try:
        return with_served_model(config)
    except EndpointError as error:
        raise EndpointUnavailable(f"{config.endpoint}: could not list its models ({error})") from None


class _LazyGenerator:
    """The config's generator, made on first use and then shared (run_suite: one model for every
    benchmark): an HFGenerator on `model`, or an endpoint_generator on `endpoint`."""

    def __init__(self, config: EvalConfig):
        self.config, self.inner = config, None

    def __call__(self, prompts: list[Prompt], seed: int) -> list[Generation]:
        if self.inner is None:
            c = self.config
            if c.endpoint is not None:
                self.inner = endpoint_generator(c.endpoint, c.endpoint_model, c.sampling, c.concurrency)
            else:
                self.inner = HFGenerator(c.model, c.sampling, c.dtype, c.device)
        return self.inner(prompts, seed)
