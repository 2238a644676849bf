"""Benchmark adapters: which benchmark an evaluation file holds, and where each item's category lives.

Every benchmark is read in the Video-R1 evaluation format (`EvalRecord`: problem_id, problem,
data_type, problem_type, options, solution, path, data_source, plus benchmark fields kept as
extras). An adapter only says how to break the scores down (docs/benchmarks.md) and which items VSI-Bench
scores with MRA. The category of an item is the first non-empty field of `fields`; then, where
allowed, `data_source` when it names more than the benchmark itself; then a keyword found in
`data_source` or `path` (VideoMMMU's tracks); else "unknown".

| benchmark (`--bench`) | breakdown   | fields tried, in order                                    | then
       |
|-----------------------|-------------|-----------------------------------------------------------|-------------------|
| vsibench              | task        | original_question_type, question_type, task, category     | unknown
       |
| videommmu             | track       | track, category, question_track                           | perception
/ comprehension / adaptation in data_source or path; also `discipline` |
| mmvu                  | subject     | subject, discipline, category                             |
data_source; also `discipline` |
| mvbench               | task        | task, task_type, sub_task, category                       |
data_source       |
| tempcompass           | dimension   | dim, dimension, temporal_aspect, category, task           |
data_source       |
| videomme              | duration    | duration, duration_category (short / medium / long)       | unknown;
also `task_type` and `domain` breakdowns when present |
| synthetic             | task        | task                                                      | also
`temporal`: temporal / static, and `cue`: consistent / conflicting (the shortcut's direction items); OCR and
free-form count as correct (1) at reward ≥ 0.5, as in RL |
| generic               | source      | category, task, data_source                               | unknown
       |

VSI-Bench's numerical tasks (object_counting, object_abs_distance, object_size_estimation,
room_size_estimation) are scored with MRA; an item of another or unknown task is scored with MRA
when its problem type is numerical or regression. Regression items of every benchmark are scored
with MRA, as the reference evaluation does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from videor1.data.records import Record
from videor1.rewards import get_problem_type

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
# VSI-Bench (Yang et al., "Thinking in Space"): numerical-answer and multiple-choice tasks.
VSI_NUMERICAL_TASKS = frozenset({"object_counting", "object_abs_distance", "object_size_estimation",
                                 "room_size_estimation"})
VSI_CHOICE_TASKS = frozenset({"object_rel_distance", "object_rel_direction_easy",
                              "object_rel_direction_medium", "object_rel_direction_hard", "route_planning",
                              "obj_appearance_order"})
VIDEOMME_DURATIONS = ("short", "medium", "long")
VIDEOMMMU_TRACKS = ("perception", "comprehension", "adaptation")


def _norm(text: str) -> str:
    """Lowercase alphanumerics only: "VSI-Bench" and "vsi_bench" are the same name."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _label(value: object) -> str | None:
    """A category value as a stable label ("Object Counting" -> "object_counting"), or None if empty."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return re.sub(r"\s+", "_", text.lower()) if text else None


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark's items are grouped and scored (see the module's table)."""

    name: str
    title: str
    category: str  # name of the main breakdown
    fields: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    use_data_source: bool = False
    keywords: tuple[str, ...] = ()  # category values recognised in data_source or path
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # further breakdowns: (name, fields)
    flags: tuple[tuple[str, str, str], ...] = ()  # bool field -> (field, label if true, label if false)
    mra_tasks: frozenset[str] = frozenset()
    # Score OCR / free-form items 1 when their reward reaches this (RL's "correct" rule), else 0; None:
    # the continuous reward (a one-word free-form answer then scores at most 2/3: no ROUGE-2 bigram).
    correct_at: float | None = None

    def category_of(self, record: Record) -> str:
        for name in self.fields:
            if (label := _label(getattr(record, name, None))) is not None:
                return label
        source = _label(getattr(record, "data_source", None))
        if self.use_data_source and source is not None and _norm(source) not in self.names():
            return source
        haystack = f"{getattr(record, 'data_source', '')} {record.path}".lower()
        found = [k for k in self.keywords if k in haystack]
        return found[0] if len(found) == 1 else UNKNOWN

    def groups(self, record: Record) -> dict[str, str]:
        """Breakdown name -> this item's value; the main category first."""
        out = {self.category: self.category_of(record)}
        for name, fields in self.extra:
            value = next((v for f in fields if (v := _label(getattr(record, f, None))) is not None), None)
            if value is not None:
                out[name] = value
        for field, yes, no in self.flags:
            value = getattr(record, field, None)
            if isinstance(value, bool):
                out[field] = yes if value else no
        return out

    def uses_mra(self, record: Record) -> bool:
        """Whether the item is scored with Mean Relative Accuracy instead of accuracy."""
        if get_problem_type(record.problem_type).score == "mra":  # regression
            return True
        if not self.mra_tasks:
            return False
        task = self.category_of(record)
        if task in self.mra_tasks:
            return True
        return task not in VSI_CHOICE_TASKS and record.problem_type == "numerical"

    def names(self) -> set[str]:
        return {_norm(n) for n in (self.name, self.title, *self.aliases)}


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("vsibench", "VSI-Bench", "task",
              ("original_question_type", "question_type", "task", "category"), aliases=("vsi",),
              mra_tasks=VSI_NUMERICAL_TASKS),
    Benchmark("videommmu", "VideoMMMU", "track", ("track", "category", "question_track"),
              keywords=VIDEOMMMU_TRACKS, extra=(("discipline", ("discipline",)),)),
    Benchmark("mmvu", "MMVU (mc)", "subject", ("subject", "discipline", "category"), aliases=("mmvumc",),
              use_data_source=True, extra=(("discipline", ("discipline",)),)),
    Benchmark("mvbench", "MVBench", "task", ("task", "task_type", "sub_task", "category"),
              use_data_source=True),
    Benchmark("tempcompass", "TempCompass", "dimension",
              ("dim", "dimension", "temporal_aspect", "category", "task"), use_data_source=True),
    Benchmark("videomme", "Video-MME", "duration", ("duration", "duration_category"),
              extra=(("task_type", ("task_type",)), ("domain", ("domain",)))),
    Benchmark("synthetic", "Synthetic", "task", ("task",), aliases=("synth",), extra=(("cue", ("cue",)),),
              flags=(("temporal", "temporal", "static"),), correct_at=0.5),
    Benchmark("generic", "Generic", "source", ("category", "task", "data_source")),
)}


def get_benchmark(name: str) -> Benchmark:
    """The adapter named `name` (any spelling of a benchmark's name or alias)."""
    key = _norm(name)
    for bench in BENCHMARKS.values():
        if key in bench.names():
            return bench
    raise ValueError(f"unknown benchmark {name!r}: use one of {', '.join(BENCHMARKS)}")


def detect_benchmark(path: str | Path) -> Benchmark | None:
    """The benchmark a file holds, from its name: eval_vsibench.json, VideoMME.jsonl, … (None: unknown)."""
    stem = _norm(Path(path).name.split(".")[0])
    for candidate in (stem, stem.removeprefix("eval"), stem.removesuffix("eval")):
        for bench in BENCHMARKS.values():
            if bench.name != "generic" and candidate in bench.names():
                return bench
    return None


def sample_ids(records: list[Record]) -> list[str]:
    """A unique id per record: its problem_id; a repeat of an id gets "#k", the smallest k > 0 that is
    neither another record's problem_id nor an id already given (ids `q`, `q`, `q#1` become `q`, `q#2`,
    `q#1`: every item has its own result row)."""
    keys = [str(record.problem_id) for record in records]
    taken = set(keys)
    seen: set[str] = set()
    ids = []
    for key in keys:
        if key not in seen:
            seen.add(key)
            ids.append(key)
            continue
        k = 1
        while f"{key}#{k}" in taken:
            k += 1
        taken.add(f"{key}#{k}")
        ids.append(f"{key}#{k}")
    repeated = sorted({key for key, given in zip(keys, ids) if key != given})
    if repeated:
        log.warning("%d problem_id(s) repeat (%s); their repeats are told apart as 'id#k'", len(repeated),
                    ", ".join(repeated[:10]))
    return ids
