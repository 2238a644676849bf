"""Keep or reject one teacher response: the CoT filter, a pure function of the record and the output.

A response is kept when, in this order (the first failed check is the one reason given):
- its format is `<think>…</think><answer>…</answer>` (`format_reward` = 1)        else bad_format
- its answer scores `accuracy_reward` ≥ threshold against the record's solution     else wrong_answer
- its reasoning has at least `min_words` words                                       else too_short
- and at most `max_words` words                                                      else too_long
Records that never got a response are media_error (their media cannot be read) or teacher_error.

Reasoning length is counted in whitespace-separated words of the `<think>` content: a teacher behind
an endpoint has its own tokenizer, and words can be recounted from the output file alone.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError

from videor1.data.records import CotRecord, Record, describe_validation_error
from videor1.eval.infer import split_output
from videor1.rewards import accuracy_reward, format_reward

Reason = Literal["media_error", "teacher_error", "bad_format", "wrong_answer", "too_short", "too_long"]
REASONS: tuple[str, ...] = get_args(Reason)
FAILURES = ("media_error", "teacher_error")  # never judged: --retry-failed tries them again


class Decision(BaseModel):
    """One record's fate: a line of the annotation journal."""

    id: str = Field(description="str(problem_id).")
    decision: Literal["kept", "rejected"]
    reason: Reason | None = Field(default=None, description="Why rejected (None when kept).")
    detail: str = Field(default="", description="The error, or the measured value that failed its check.")
    output: str | None = Field(default=None, description="The teacher's response (None: no response).")
    tokens: int | None = Field(default=None, description="Its length in tokens, as the teacher counted them.")
    score: float | None = Field(default=None, description="accuracy_reward of its answer.")
    think_words: int | None = Field(default=None, description="Words of its <think> content.")
    record: dict[str, Any] | None = Field(default=None, description="The kept CotRecord (None when "
                                          "rejected).")

    @property
    def kept(self) -> bool:
        return self.decision == "kept"

    @property
    def failed(self) -> bool:
        return self.reason in FAILURES


def failure(sample_id: str, reason: Reason, error: BaseException) -> Decision:
    """A record that got no response: its media or the teacher failed (`error` says how)."""
    detail = str(error) if reason == "media_error" else f"{type(error).__name__}: {error}"
    return Decision(id=sample_id, decision="rejected", reason=reason, detail=detail)


def judge(record: Record, output: str, tokens: int | None, threshold: float, min_words: int, max_words: int
          ) -> Decision:
    """Keep `output` as `record`'s chain of thought, or say the first check it fails (module docstring).

    A kept record is the input record (extra fields included) with `process` = "<think>reasoning</think>"
    and the ground-truth `solution` (never the teacher's answer), validated as a `CotRecord`.
    """
    seen = dict(id=str(record.problem_id), output=output, tokens=tokens)
    if format_reward(output) != 1.0:
        return Decision(**seen, decision="rejected", reason="bad_format",
                        detail="not one <think>…</think> then one <answer>…</answer>")
    reasoning, answer = split_output(output)
    score = accuracy_reward(output, record.solution, record.problem_type, record.options)
    words = len(reasoning.split())
    seen.update(score=score, think_words=words)
    if score < threshold:
        return Decision(**seen, decision="rejected", reason="wrong_answer",
                        detail=f"answer {answer!r} vs {record.answer!r}: accuracy {score:.3f} < {threshold}")
    if words < min_words:
        return Decision(**seen, decision="rejected", reason="too_short",
                        detail=f"{words} words < {min_words}")
    if words > max_words:
        return Decision(**seen, decision="rejected", reason="too_long", detail=f"{words} words > {max_words}")
    try:
        kept = CotRecord.model_validate({**record.model_dump(mode="json"),
                                         "process": f"<think>{reasoning}</think>",
                                         "solution": record.solution})
    except ValidationError as error:  # not expected after the format check; a bad record never stops the run
        return Decision(**seen, decision="rejected", reason="bad_format",
                        detail="; ".join(describe_validation_error(error)))
    return Decision(**seen, decision="kept", record=kept.model_dump(mode="json"))
