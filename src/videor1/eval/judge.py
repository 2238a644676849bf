"""Judge analysis (paper §4.5): the share of video responses whose reasoning uses temporal information.

Every video sample of an evaluation output directory (the per-sample `<bench>.<condition>.jsonl` that
`videor1 eval` writes) that produced a response is sent, with its question, to a judge model on an
OpenAI-compatible endpoint. The judge is asked whether the reasoning uses temporal information: the
order of events, or how things change across frames over time. The verdict is read from the reply's
last "Verdict: yes|no" line (or a reply that is only yes / no, or starts with it); anything else is
`unparseable`, counted apart and never as "no". % temporal = yes / (yes + no), per benchmark and
condition (ordered / shuffled) and over all benchmarks.

Resumable: each verdict is appended (fsynced) to `judge/<bench>.<condition>.jsonl`, keyed by sample
id; a run again judges only the samples without a verdict. A request that fails (endpoint error)
writes nothing and stays `pending`, so the next run retries it. `judge/settings.json` pins the judge
model and prompt: another judge refuses to append (use another directory, or delete judge/).

Outputs, in the results directory: `judge.json` and `judge.md` (a Markdown section, which
`write_report` also appends to `report.md`). The paper used Qwen2.5-VL-72B with the prompt of its
Appendix C.2 (published only as an image); the prompt here is ours.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from videor1.eval.benchmarks import BENCHMARKS
from videor1.eval.report import JUDGE_MARKDOWN, markdown_table, write_atomic, write_report
from videor1.eval.results import ResultLog, check_settings
from videor1.eval.scoring import SampleResult

if TYPE_CHECKING:
    from videor1.rollout.chat import ChatClient

log = logging.getLogger(__name__)

Verdict = Literal["yes", "no", "unparseable"]
JUDGE_DIR = "judge"

SYSTEM = ("You evaluate the reasoning of models that answer questions about videos. You are strict and "
          "follow the requested output format.")
QUESTION = """A model was shown a video as a sequence of frames in time order, then asked the question below.

Decide whether the model's reasoning uses temporal information from the video: the order of events, what \
happens before or after something, or how objects, people, positions, states or quantities change across \
frames over time.
Answer yes if at least one step of the reasoning relies on such information. Answer no if it reasons only \
from a single moment or a static appearance, from the text of the question and options, or from general \
knowledge.

Question given to the model:
<<<
{question}
>>>

The model's response:
<<<
{response}
>>>

Explain briefly, then end with one line that is exactly "Verdict: yes" or "Verdict: no"."""
PROMPT_ID = hashlib.sha256(f"{SYSTEM}\n{QUESTION}".encode()).hexdigest()[:12]

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_VERDICT = re.compile(r"verdict\W{0,4}(?:is\s+)?\W{0,4}\b(yes|no)\b", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>\W*(yes|no)\W*</answer>", re.IGNORECASE)
_LEADING = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def judge_messages(question: str, response: str) -> list[dict]:
    """The OpenAI chat messages asking the judge about one response."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user",
             "content": QUESTION.format(question=question.strip(), response=response.strip())}]


def parse_verdict(reply: str) -> Verdict:
    """yes / no from the judge's reply; `unparseable` when it does not say one of them unambiguously.

    In order: the last line naming a verdict ("Verdict: yes", "**Verdict:** No", "the verdict is yes";
    a line naming both is unparseable), an `<answer>yes</answer>`, then a reply that starts with yes / no.
    A `<think>` block is ignored.
    """
    text = _THINK.sub("", reply if isinstance(reply, str) else "").strip()
    lines = [line for line in text.splitlines() if _VERDICT.search(line)]
    if lines:
        said = {m.group(1).lower() for m in _VERDICT.finditer(lines[-1])}
        return said.pop() if len(said) == 1 else "unparseable"  # type: ignore[return-value]
    for pattern in (_ANSWER_TAG, _LEADING):
        said = {m.group(1).lower() for m in pattern.finditer(text)}
        if len(said) == 1:
            return said.pop()  # type: ignore[return-value]
    return "unparseable"


class VerdictRow(BaseModel):
    """One judged response: a line of judge/<bench>.<condition>.jsonl."""

    id: str = Field(description="The sample id in the evaluation's per-sample JSONL.")
    benchmark: str
    condition: str
    verdict: Verdict
    reply: str = Field(description="The judge's whole reply, for audit.")


@dataclass(frozen=True)
class JudgeItem:
    """A video response to judge."""

    benchmark: str
    condition: str
    id: str
    question: str
    response: str


def read_samples(path: Path) -> list[SampleResult]:
    """The rows of a per-sample JSONL, read only (a torn last line of a run in progress is left out)."""
    text = path.read_text(encoding="utf-8")
    rows: dict[str, SampleResult] = {}
    for number, line in enumerate(text[:text.rfind("\n") + 1].splitlines(), start=1):
        if line.strip():
            try:
                row = SampleResult.model_validate_json(line)
            except ValidationError as error:
                raise ValueError(f"{path} line {number}: not a sample result "
                                 f"({error.error_count()} errors)") from None
            rows.setdefault(row.id, row)
    return list(rows.values())


def collect_items(results_dir: Path) -> list[JudgeItem]:
    """Every video sample of the directory's per-sample logs that has a response (failed ones have none)."""
    paths = sorted(Path(results_dir).glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"{results_dir}: no per-sample results "
                                "(<bench>.<condition>.jsonl from `videor1 eval`)")
    return [JudgeItem(row.benchmark, row.condition, row.id, row.prompt, row.output)
            for path in paths for row in read_samples(path)
            if row.data_type == "video" and not row.failed and (row.output or "").strip()]


@dataclass
class JudgeConfig:
    """How the judge is asked; the verdict log is pinned to these (with the judge's model name)."""

    max_tokens: int = 1024  # room for a short explanation, or a reasoning judge's <think>
    temperature: float = 0.0
    top_p: float = 1.0
    chunk: int = 32  # requests between two appends to the verdict log


class EvalJudgeConfig(BaseModel):
    """`videor1 eval-judge`: which results, which judge, how it is asked."""

    model_config = ConfigDict(extra="forbid")

    results: Path = Field(description="An `eval` output directory (its per-sample "
                                      "<bench>.<condition>.jsonl).")
    endpoint: str = Field(description="OpenAI-compatible base URL of the judge (…/v1 or without it).")
    model: str | None = Field(default=None, description="Judge model name (default: the first the endpoint "
                              "lists).")
    concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    api_key: SecretStr | None = Field(default=None, description="Bearer key, if the endpoint wants one.")
    max_tokens: int = Field(default=1024, ge=1, description="Longest judge reply, in tokens (room for a "
                            "short explanation, or a reasoning judge's <think>).")

    def judge(self) -> JudgeConfig:
        return JudgeConfig(max_tokens=self.max_tokens, chunk=max(32, 4 * self.concurrency))


class Count(BaseModel):
    responses: int = 0
    yes: int = 0
    no: int = 0
    unparseable: int = 0
    pending: int = Field(default=0, description="No verdict yet (not judged, or the request failed).")

    @property
    def temporal_pct(self) -> float | None:
        return 100 * self.yes / (self.yes + self.no) if self.yes + self.no else None

    def add(self, verdict: Verdict | None) -> None:
        self.responses += 1
        if verdict is None:
            self.pending += 1
        else:
            setattr(self, verdict, getattr(self, verdict) + 1)

    def as_dict(self) -> dict:
        return {**self.model_dump(), "temporal_pct": self.temporal_pct}


def summarize(items: Sequence[JudgeItem], verdicts: dict[tuple[str, str, str], Verdict]) -> dict:
    """Counts per benchmark and condition, and per condition over all benchmarks (`overall`)."""
    per: dict[str, dict[str, Count]] = {}
    overall: dict[str, Count] = {}
    for item in items:
        verdict = verdicts.get((item.benchmark, item.condition, item.id))
        per.setdefault(item.benchmark, {}).setdefault(item.condition, Count()).add(verdict)
        overall.setdefault(item.condition, Count()).add(verdict)
    return {"benchmarks": {b: {c: n.as_dict() for c, n in conds.items()} for b, conds in per.items()},
            "overall": {c: n.as_dict() for c, n in overall.items()}}


def judge_markdown(report: dict, level: int = 2) -> str:
    """The Markdown section of a judge report (`judge.json`)."""
    pct = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    header = ["benchmark", "condition", "responses", "temporal", "not temporal", "unparseable", "pending",
              "% temporal"]
    rows = [[BENCHMARKS[b].title if b in BENCHMARKS else b, c, str(n["responses"]), str(n["yes"]),
             str(n["no"]), str(n["unparseable"]), str(n["pending"]), pct(n["temporal_pct"])]
            for b, conds in report["benchmarks"].items() for c, n in conds.items()]
    rows += [["all", c, str(n["responses"]), str(n["yes"]), str(n["no"]), str(n["unparseable"]),
              str(n["pending"]), pct(n["temporal_pct"])] for c, n in report["overall"].items()]
    lines = [f"{'#' * level} Temporal reasoning in responses (judge: `{report['judge']['model']}`)", "",
             "Video responses whose reasoning uses temporal information (order, change over time), as a "
             "judge model says (paper §4.5). % temporal = temporal / (temporal + not temporal); unparseable "
             "verdicts are counted apart; pending = no verdict yet (run `videor1 eval-judge` again).", ""]
    return "\n".join(lines + markdown_table(header, rows)) + "\n"


def run_judge(results_dir: str | Path, client: ChatClient, config: JudgeConfig | None = None) -> dict:
    """Judge every video response of `results_dir` not judged yet; write judge.json, judge.md, report.md.

    `client`: a `videor1.rollout.chat.ChatClient` (or anything with its `model` and `chat_many`).
    Returns the report written to judge.json.
    """
    results_dir, config = Path(results_dir), config or JudgeConfig()
    items = collect_items(results_dir)
    judge = {"model": client.model, "prompt": PROMPT_ID, "max_tokens": config.max_tokens,
             "temperature": config.temperature, "top_p": config.top_p}
    check_settings(results_dir / JUDGE_DIR / "settings.json", judge)
    logs: dict[tuple[str, str], ResultLog] = {}
    for item in items:
        if (item.benchmark, item.condition) not in logs:
            path = results_dir / JUDGE_DIR / f"{item.benchmark}.{item.condition}.jsonl"
            logs[item.benchmark, item.condition] = ResultLog(path, row_type=VerdictRow)
    todo = [item for item in items if item.id not in logs[item.benchmark, item.condition]]
    log.info("%d video responses, %d already judged, %d to "
             "judge", len(items), len(items) - len(todo), len(todo))
    failures = 0
    for start in range(0, len(todo), config.chunk):
        chunk = todo[start:start + config.chunk]
        replies = client.chat_many([judge_messages(item.question, item.response) for item in chunk],
                                   max_tokens=config.max_tokens, temperature=config.temperature,
                                   top_p=config.top_p)
        for item, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception):  # left pending: the next run asks again
                failures += 1
                log.warning("%s %s %s: judge request failed: "
                            "%s", item.benchmark, item.condition, item.id, reply)
                continue
            logs[item.benchmark, item.condition].append(VerdictRow(
                id=item.id, benchmark=item.benchmark, condition=item.condition,
                verdict=parse_verdict(reply.text), reply=reply.text))
        log.info("judged %d / %d", min(start + config.chunk, len(todo)), len(todo))
    verdicts = {(row.benchmark, row.condition, row.id): row.verdict for judged in logs.values()
                for row in judged.rows.values()}
    report = {"judge": judge, **summarize(items, verdicts), "failed_requests": failures}
    write_atomic(results_dir / "judge.json", json.dumps(report, indent=1))
    write_atomic(results_dir / JUDGE_MARKDOWN, judge_markdown(report))
    write_report(results_dir)
    return report
