"""Benchmark scores from per-sample results (docs/rewards.md): pure functions, no model and no I/O.

- An answer is read from the last `<answer>…</answer>` pair, else from the whole output, and scored
  by its problem type (`videor1.rewards.PROBLEM_TYPES`) with the training rewards: option letters as
  robustly as in training, numbers by value, OCR by 1 − WER, free-form by ROUGE.
- MRA items (every item of an `mra` type, i.e. regression; VSI-Bench's numerical tasks) get Mean
  Relative Accuracy.
- A benchmark's `accuracy` is the mean over its accuracy items (every non-regression item, except
  VSI-Bench's numerical tasks), `mra` the mean over its MRA items. A failed sample (media or
  generation) scores 0 and stays in every denominator: the item set is the benchmark's, whatever
  failed, and `failed` says how many.
- VSI-Bench `overall` is the official one: mean of the per-task scores, its three relative-direction
  levels first merged into one task. `reference_overall` is the Video-R1 evaluation code's
  (mean_acc + mean_mra) / 2. Every other benchmark's `overall` is its accuracy.
- Temporal reliance = score with ordered frames − score with shuffled frames, on the items answered
  in both runs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from videor1.data.records import Record
from videor1.eval.benchmarks import Benchmark
from videor1.rewards import extract_answer, get_problem_type, mean_relative_accuracy, parse_number

Metric = Literal["accuracy", "mra"]
# Official VSI-Bench merges these levels into one task before averaging the tasks.
VSI_DIRECTION_LEVELS = ("object_rel_direction_easy", "object_rel_direction_medium",
                        "object_rel_direction_hard")


def read_answer(output: str) -> str:
    """The final answer: the last `<answer>` pair's content, else the whole output, stripped."""
    answer = extract_answer(output)
    return (output if answer is None else answer).strip() if isinstance(output, str) else ""


def score_answer(answer: str, record: Record, metric: Metric, correct_at: float | None = None
                 ) -> tuple[str | float | None, float]:
    """(what the answer was read as, its score in [0, 1]) against the record's ground truth.

    Both come from the record's problem type (`rewards.PROBLEM_TYPES`): the prediction is its parser's
    reading (an option letter, a number, the text; None when nothing could be read), the score its
    reward, thresholded at `correct_at` for `threshold` types (None: the reward itself). The `mra`
    metric scores the parsed numbers by Mean Relative Accuracy, whatever the type.
    """
    kind = get_problem_type(record.problem_type)
    if metric == "mra":
        pred, gt = parse_number(answer), parse_number(record.answer)
        score = mean_relative_accuracy(pred, gt) if pred is not None and gt is not None else 0.0
        return pred, score
    score = kind.reward(answer, record.answer, record.options)
    if kind.score == "threshold" and correct_at is not None:
        score = float(score >= correct_at)
    return kind.parse(answer, record.options), score


class SampleResult(BaseModel):
    """One evaluated item: a line of the per-sample JSONL."""

    id: str
    benchmark: str
    condition: str = Field(description="ordered, shuffle-frame or shuffle-temporal_patch.")
    category: str
    groups: dict[str, str] = Field(description="Breakdown name -> value (the category among them).")
    data_type: str
    problem_type: str
    metric: Metric
    prompt: str
    output: str | None = None
    answer: str | None = Field(default=None, description="The text the answer was read from.")
    prediction: str | float | None = None
    solution: str
    score: float = 0.0
    error: str | None = Field(default=None, description="Why the sample failed (it then scores 0).")
    error_type: str | None = None
    tokens: int = 0
    permutation: list[int] | None = Field(default=None, description="Frame order shown (shuffled runs).")

    @property
    def failed(self) -> bool:
        return self.error is not None


def sample_result(record: Record, sample_id: str, bench: Benchmark, condition: str, prompt: str,
                  output: str | None = None, error: BaseException | str | None = None, tokens: int = 0,
                  permutation: list[int] | None = None) -> SampleResult:
    """The scored row of one item: from the model's `output`, or failed with `error` (score 0)."""
    metric: Metric = "mra" if bench.uses_mra(record) else "accuracy"
    groups = bench.groups(record)
    row = SampleResult(id=sample_id, benchmark=bench.name, condition=condition,
                       category=groups[bench.category], groups=groups, data_type=record.data_type,
                       problem_type=record.problem_type, metric=metric, prompt=prompt, solution=record.answer,
                       tokens=tokens, permutation=permutation)
    if error is not None:
        row.error = str(error) or type(error).__name__
        row.error_type = type(error).__name__ if isinstance(error, BaseException) else "error"
        return row
    row.output = output or ""
    row.answer = read_answer(row.output)
    row.prediction, row.score = score_answer(row.answer, record, metric, bench.correct_at)
    return row


class GroupScore(BaseModel):
    n: int
    failed: int
    score: float | None = Field(description="Mean item score (accuracy or MRA, see metric).")
    metric: str


class BenchmarkScore(BaseModel):
    benchmark: str
    condition: str
    n: int
    answered: int
    failed: int
    failures: dict[str, int] = Field(description="Failed samples per error type.")
    accuracy: float | None = Field(description="Mean over accuracy items (non-regression; VSI: its MC "
                                               "tasks).")
    n_accuracy: int
    mra: float | None = Field(description="Mean MRA over MRA items (regression; VSI: its numerical tasks).")
    n_mra: int
    overall: float | None = Field(description="VSI-Bench: mean of task scores (official); else accuracy.")
    reference_overall: float | None = Field(
        default=None, description="VSI-Bench: (accuracy + mra) / 2, the Video-R1 evaluation code's number.")
    breakdowns: dict[str, dict[str, GroupScore]]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def vsi_overall(task_scores: dict[str, float]) -> float | None:
    """Official VSI-Bench overall: the relative-direction levels merged into one task, then the mean
    over tasks."""
    scores = {t: s for t, s in task_scores.items() if t not in VSI_DIRECTION_LEVELS}
    levels = [task_scores[t] for t in VSI_DIRECTION_LEVELS if t in task_scores]
    if levels:
        scores["object_rel_direction"] = sum(levels) / len(levels)
    return _mean(list(scores.values()))


def _group(rows: list[SampleResult]) -> GroupScore:
    metrics = sorted({r.metric for r in rows})
    return GroupScore(n=len(rows), failed=sum(r.failed for r in rows), score=_mean([r.score for r in rows]),
                      metric="+".join(metrics))


def aggregate(rows: Sequence[SampleResult], bench: Benchmark, condition: str) -> BenchmarkScore:
    """The benchmark's scores over `rows` (one condition, one row per item)."""
    rows = list(rows)
    acc = [r.score for r in rows if r.metric == "accuracy"]
    mra = [r.score for r in rows if r.metric == "mra"]
    grouped: dict[str, dict[str, list[SampleResult]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for name, value in row.groups.items():
            grouped[name][value].append(row)
    breakdowns = {name: {value: _group(members) for value, members in sorted(values.items())}
                  for name, values in grouped.items()}
    accuracy, mean_mra = _mean(acc), _mean(mra)
    overall, reference = accuracy, None
    if bench.mra_tasks:  # VSI-Bench
        tasks = breakdowns.get(bench.category, {})
        overall = vsi_overall({t: g.score for t, g in tasks.items() if g.score is not None})
        reference = (accuracy + mean_mra) / 2 if accuracy is not None and mean_mra is not None else None
    failed = [r for r in rows if r.failed]
    return BenchmarkScore(
        benchmark=bench.name, condition=condition, n=len(rows), answered=len(rows) - len(failed),
        failed=len(failed), failures=dict(Counter(r.error_type or "error" for r in failed)),
        accuracy=accuracy, n_accuracy=len(acc), mra=mean_mra, n_mra=len(mra), overall=overall,
        reference_overall=reference, breakdowns=breakdowns)


class RelianceRow(BaseModel):
    n: int
    ordered: float | None
    shuffled: float | None
    gap: float | None = Field(description="ordered − shuffled.")


def _row(n: int, ordered: float | None, shuffled: float | None) -> RelianceRow:
    gap = ordered - shuffled if ordered is not None and shuffled is not None else None
    return RelianceRow(n=n, ordered=ordered, shuffled=shuffled, gap=gap)


class Reliance(BaseModel):
    """How much a benchmark's scores drop when the frames are shuffled (same items, same settings)."""

    shuffled_condition: str
    n: int = Field(description="Items answered in both runs: the items compared.")
    excluded: int = Field(description="Items failed in either run, left out of the comparison.")
    overall: RelianceRow
    accuracy: RelianceRow
    mra: RelianceRow
    breakdowns: dict[str, dict[str, RelianceRow]]


def temporal_reliance(ordered: Sequence[SampleResult], shuffled: Sequence[SampleResult], bench: Benchmark
                      ) -> Reliance:
    """Ordered − shuffled score, overall and per breakdown, on the items answered in both runs."""
    answered = {r.id for r in ordered if not r.failed} & {r.id for r in shuffled if not r.failed}
    every = {r.id for r in ordered} | {r.id for r in shuffled}
    condition = shuffled[0].condition if shuffled else "shuffled"
    a = aggregate([r for r in ordered if r.id in answered], bench, "ordered")
    b = aggregate([r for r in shuffled if r.id in answered], bench, condition)
    breakdowns = {name: {value: _row(group.n, group.score, b.breakdowns[name][value].score)
                         for value, group in groups.items()} for name, groups in a.breakdowns.items()}
    return Reliance(shuffled_condition=condition, n=len(answered), excluded=len(every - answered),
                    overall=_row(a.n, a.overall, b.overall),
                    accuracy=_row(a.n_accuracy, a.accuracy, b.accuracy), mra=_row(a.n_mra, a.mra, b.mra),
                    breakdowns=breakdowns)
