"""The annotation report: kept and rejected records by reason, by problem type and by data type, with
examples of each reason; a JSON and a Markdown file, rebuilt from the journal at the end of every run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from videor1.annotate.decide import REASONS, Decision
from videor1.data.records import Record
from videor1.eval.report import markdown_table

OUTCOMES = ("kept", *REASONS)
EXAMPLES_PER_OUTCOME = 3


class Example(BaseModel):
    id: str
    problem_type: str
    data_type: str
    detail: str
    output: str | None = Field(description="The teacher's response, cut to 400 characters.")


class AnnotateReport(BaseModel):
    data: str
    out: str
    journal: str
    records: int = Field(description="Records annotated (the input's valid records, up to the limit).")
    invalid_records: int = Field(description="Input records that failed validation (not annotated).")
    invalid_examples: list[str]
    kept: int
    rejected: dict[str, int] = Field(description="Rejected records by reason (every reason listed).")
    by_problem_type: dict[str, dict[str, int]] = Field(description="problem type -> outcome (kept or reason) "
                                                       "-> n.")
    by_data_type: dict[str, dict[str, int]] = Field(description="data type -> outcome -> n.")
    examples: dict[str, list[Example]] = Field(description="outcome -> its first few records.")
    settings: dict
    timing: dict[str, float] = Field(description="This invocation only: not part of the results.")


def outcome(row: Decision) -> str:
    return "kept" if row.kept else str(row.reason)


def _breakdown(records: list[Record], rows: dict[str, Decision], field: str) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for record in records:
        counts.setdefault(getattr(record, field), Counter())[outcome(rows[str(record.problem_id)])] += 1
    return {key: {o: c[o] for o in OUTCOMES} for key, c in sorted(counts.items())}


def build_report(records: list[Record], rows: dict[str, Decision], invalid: list[str], data: Path, out: Path,
                 journal: Path, settings: dict, timing: dict[str, float]) -> AnnotateReport:
    """The report over `records` (input order), each decided in `rows` (by id)."""
    totals = Counter(outcome(rows[str(r.problem_id)]) for r in records)
    examples: dict[str, list[Example]] = {}
    for record in records:
        row = rows[str(record.problem_id)]
        shown = examples.setdefault(outcome(row), [])
        if len(shown) < EXAMPLES_PER_OUTCOME:
            shown.append(Example(id=row.id, problem_type=record.problem_type, data_type=record.data_type,
                                 detail=row.detail, output=None if row.output is None else row.output[:400]))
    return AnnotateReport(
        data=str(data), out=str(out), journal=str(journal), records=len(records),
        invalid_records=len(invalid), invalid_examples=invalid[:5], kept=totals["kept"],
        rejected={r: totals[r] for r in REASONS}, by_problem_type=_breakdown(records, rows, "problem_type"),
        by_data_type=_breakdown(records, rows, "data_type"),
        examples={o: examples[o] for o in OUTCOMES if o in examples}, settings=settings, timing=timing)


def report_markdown(report: AnnotateReport) -> str:
    share = lambda n: f"{n} ({n / max(report.records, 1):.0%})"  # noqa: E731
    lines = [f"# CoT annotation of {report.data}", "",
             f"{report.records} records: **{share(report.kept)} kept**, written to `{report.out}`"
             f" (journal `{report.journal}`); {report.invalid_records} invalid input records skipped.", "",
             *markdown_table(["outcome", "records"], [["kept", share(report.kept)]]
                     + [[reason, share(n)] for reason, n in report.rejected.items()])]
    for title, breakdown in (("problem type", report.by_problem_type), ("data type", report.by_data_type)):
        rows = [[key, str(sum(c.values())), *(str(c[o]) for o in OUTCOMES)] for key, c in breakdown.items()]
        lines += ["", f"## By {title}", "", *markdown_table([title, "records", *OUTCOMES], rows)]
    lines += ["", "## Examples"]
    for name, examples in report.examples.items():
        lines += ["", f"### {name}", ""]
        for ex in examples:
            output = "(no response)" if ex.output is None else " ".join(ex.output.split())
            detail = f" {ex.detail}" if ex.detail else ""
            lines.append(f"- `{ex.id}` ({ex.problem_type}, {ex.data_type}){detail}: "
                         f"{output}".replace("|", "\\|"))
    if report.invalid_examples:
        lines += ["", "## Invalid input records", "", *(f"- {e}" for e in report.invalid_examples)]
    return "\n".join(lines) + "\n"


def write_report(report: AnnotateReport, json_path: Path, markdown_path: Path) -> None:
    """Both files, each written to a temporary name and renamed (never half written)."""
    for path, text in ((json_path, report.model_dump_json(indent=1)),
                       (markdown_path, report_markdown(report))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
