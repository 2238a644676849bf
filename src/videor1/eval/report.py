"""Evaluation reports: a summary JSON and a Markdown table per benchmark, and both over all benchmarks
of an output directory (`summary.json`, `report.md`), rebuilt after every benchmark run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from videor1.eval.scoring import BenchmarkScore, Reliance, RelianceRow

log = logging.getLogger(__name__)

SUMMARY_SUFFIX = ".summary.json"
JUDGE_MARKDOWN = "judge.md"  # the judge analysis' section (videor1.eval.judge), appended to report.md


class BenchmarkSummary(BaseModel):
    """Everything one benchmark run produced, except the per-sample rows (in the JSONL)."""

    benchmark: str
    title: str
    data: str
    items: int
    invalid_records: int = Field(description="Records of the file that failed validation (not evaluated).")
    invalid_examples: list[str]
    conditions: dict[str, BenchmarkScore]
    temporal_reliance: Reliance | None = None
    settings: dict
    timing: dict[str, float] = Field(description="This invocation only: not part of the results.")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _gap(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table (every report of videor1 writes its tables with this)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _score_rows(summary: BenchmarkSummary) -> list[list[str]]:
    return [[summary.title, name, str(s.n), str(s.failed), _pct(s.accuracy), _pct(s.mra), _pct(s.overall),
             _pct(s.reference_overall)] for name, s in summary.conditions.items()]


SCORE_HEADER = ["benchmark", "condition", "items", "failed", "accuracy", "MRA", "overall",
                "(acc+MRA)/2 (reference code)"]


def _reliance_rows(reliance: Reliance) -> list[list[str]]:
    def row(name: str, r: RelianceRow) -> list[str]:
        return [name, str(r.n), _pct(r.ordered), _pct(r.shuffled), _gap(r.gap)]

    rows = [row("overall", reliance.overall)]
    rows += [row(name, r) for name, r in (("accuracy", reliance.accuracy), ("MRA", reliance.mra)) if r.n]
    for breakdown, groups in reliance.breakdowns.items():
        rows += [row(f"{breakdown}: {value}", r) for value, r in groups.items()]
    return rows


def benchmark_markdown(summary: BenchmarkSummary, level: int = 1) -> str:
    h = "#" * level
    lines = [f"{h} {summary.title} (`{summary.benchmark}`)", "",
             f"{summary.items} items from `{summary.data}`"
             + (f"; {summary.invalid_records} invalid records not "
                "evaluated" if summary.invalid_records else "")
             + ". Scores in %; failed samples score 0.", ""]
    lines += markdown_table(SCORE_HEADER, _score_rows(summary))
    failures = [f"{c}: " + ", ".join(f"{k} {v}" for k, v in s.failures.items())
                for c, s in summary.conditions.items() if s.failures]
    if failures:
        lines += ["", "Failures — " + "; ".join(failures) + " (reasons in the JSONL `error` field)."]
    first = next(iter(summary.conditions.values()))
    names = list(summary.conditions)
    for breakdown, groups in first.breakdowns.items():
        lines += ["", f"{h}# By {breakdown}", ""]
        rows = []
        for value, group in groups.items():
            cells = [summary.conditions[c].breakdowns.get(breakdown, {}).get(value) for c in names]
            rows.append([value, group.metric, str(group.n), *(_pct(g.score if g else None) for g in cells)])
        lines += markdown_table([breakdown, "metric", "n", *names], rows)
    if summary.temporal_reliance is not None:
        r = summary.temporal_reliance
        lines += ["", f"{h}# Temporal reliance (ordered − {r.shuffled_condition})", "",
                  f"On the {r.n} items answered in both runs ({r.excluded} failed in either, left out).", ""]
        lines += markdown_table(["scope", "n", "ordered", "shuffled", "gap"], _reliance_rows(r))
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_benchmark_report(summary: BenchmarkSummary, out_dir: Path) -> tuple[Path, Path]:
    """{bench}.summary.json and {bench}.md in out_dir."""
    json_path = out_dir / f"{summary.benchmark}{SUMMARY_SUFFIX}"
    md_path = out_dir / f"{summary.benchmark}.md"
    write_atomic(json_path, summary.model_dump_json(indent=1))
    write_atomic(md_path, benchmark_markdown(summary))
    return json_path, md_path


def load_summaries(out_dir: Path) -> list[BenchmarkSummary]:
    summaries = []
    for path in sorted(Path(out_dir).glob(f"*{SUMMARY_SUFFIX}")):
        try:
            summaries.append(BenchmarkSummary.model_validate_json(path.read_text(encoding="utf-8")))
        except (ValidationError, OSError) as error:
            log.warning("%s: not a benchmark summary, left out of the report (%s)", path, error)
    return summaries


def write_report(out_dir: Path) -> tuple[Path, Path]:
    """summary.json and report.md over every benchmark summarised in out_dir."""
    out_dir = Path(out_dir)
    summaries = load_summaries(out_dir)
    json_path, md_path = out_dir / "summary.json", out_dir / "report.md"
    write_atomic(json_path, json.dumps({s.benchmark: s.model_dump(mode="json") for s in summaries}, indent=1))
    lines = ["# Evaluation", "", "Scores in %; failed samples score 0.", ""]
    lines += markdown_table(SCORE_HEADER, [row for s in summaries for row in _score_rows(s)])
    reliant = [s for s in summaries if s.temporal_reliance is not None]
    if reliant:
        lines += ["", "## Temporal reliance", ""]
        lines += markdown_table(["benchmark", "shuffled", "n", "ordered", "shuffled score", "gap"], [
            [s.title, s.temporal_reliance.shuffled_condition, str(s.temporal_reliance.n),
             _pct(s.temporal_reliance.overall.ordered), _pct(s.temporal_reliance.overall.shuffled),
             _gap(s.temporal_reliance.overall.gap)] for s in reliant])
    for summary in summaries:
        lines += ["", benchmark_markdown(summary, level=2).rstrip()]
    if (judged := out_dir / JUDGE_MARKDOWN).exists():
        lines += ["", judged.read_text(encoding="utf-8").rstrip()]
    write_atomic(md_path, "\n".join(lines) + "\n")
    return json_path, md_path
