"""Chain-of-thought annotation (`videor1 annotate`): a teacher's reasoning for training records, kept
when its answer is right by our own rewards, its format is right and its reasoning length is in bounds.

The output is a Video-R1-COT-165k file (`process` + ground-truth `solution`), ready for `videor1 sft`.
"""

from videor1.annotate.decide import FAILURES, REASONS, Decision, judge
from videor1.annotate.report import AnnotateReport, report_markdown
from videor1.annotate.run import AnnotateConfig, AnnotatePaths, AnnotateResult, annotate, make_teacher

__all__ = [
    "FAILURES",
    "REASONS",
    "AnnotateConfig",
    "AnnotatePaths",
    "AnnotateReport",
    "AnnotateResult",
    "Decision",
    "annotate",
    "judge",
    "make_teacher",
    "report_markdown",
]
