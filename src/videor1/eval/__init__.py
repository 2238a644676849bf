"""Evaluation on video benchmarks (docs/benchmarks.md): adapters, scoring, the resumable runner, reports.

Scoring and reports are pure functions; transformers and the model load only when a sample is
still to be generated (torch is imported with the sampling config).
"""

from videor1.eval.benchmarks import BENCHMARKS, Benchmark, detect_benchmark, get_benchmark, sample_ids
from videor1.eval.generate import Generation, Generator, HFGenerator, eval_sampling
from videor1.eval.importers import IMPORTERS, ImportResult
from videor1.eval.infer import InferResult, infer
from videor1.eval.report import BenchmarkSummary, benchmark_markdown, load_summaries, write_report
from videor1.eval.results import ResultLog, SettingsMismatch
from videor1.eval.runner import EvalConfig, EvalResult, condition_name, run_eval, run_suite
from videor1.eval.scoring import (
    BenchmarkScore,
    GroupScore,
    Reliance,
    SampleResult,
    aggregate,
    read_answer,
    sample_result,
    score_answer,
    temporal_reliance,
    vsi_overall,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkScore",
    "BenchmarkSummary",
    "EvalConfig",
    "EvalResult",
    "Generation",
    "Generator",
    "GroupScore",
    "HFGenerator",
    "IMPORTERS",
    "ImportResult",
    "InferResult",
    "Reliance",
    "ResultLog",
    "SampleResult",
    "SettingsMismatch",
    "aggregate",
    "benchmark_markdown",
    "condition_name",
    "detect_benchmark",
    "eval_sampling",
    "get_benchmark",
    "infer",
    "load_summaries",
    "read_answer",
    "run_eval",
    "run_suite",
    "sample_ids",
    "sample_result",
    "score_answer",
    "temporal_reliance",
    "vsi_overall",
    "write_report",
]
