"""Benchmark scoring (docs/benchmarks.md) against hand-computed values."""

from __future__ import annotations

import pytest
from eval_factories import mc, num, said, scored

from videor1.data.records import EvalRecord
from videor1.eval import aggregate, get_benchmark, read_answer, score_answer, temporal_reliance, vsi_overall
from videor1.media.errors import MediaNotFound


def test_answer_is_read_from_the_last_answer_tags_else_the_whole_output():
    assert read_answer("<answer>A</answer> wait <answer> B </answer>") == "B"
    assert read_answer("  The answer is B.  ") == "The answer is B."
    assert read_answer("<answer>unclosed") == "<answer>unclosed"


@pytest.mark.parametrize(("output", "score"), [
    (said("B"), 1.0), (said("(b)"), 1.0), (said("B. right"), 1.0), (said("right"), 1.0),
    ("The answer is B", 1.0),  # no tags: the whole output is read
    (said("A"), 0.0), (said("A or B"), 0.0), ("<think>A? no, B</think>", 0.0), (said("E"), 0.0),
])
def test_multiple_choice_is_read_as_robustly_as_the_rewards(output, score):
    row = scored("mvbench", mc(1, "B"), output)
    assert row.score == score
    assert row.metric == "accuracy"


def test_prediction_is_the_parsed_reading():
    record = mc(1, "B")
    assert score_answer("(b)", record, "accuracy") == ("B", 1.0)
    assert score_answer("A or B", record, "accuracy") == (None, 0.0)
    assert score_answer("about 2.5 m", num(2, "2.0"), "mra") == (2.5, 0.6)  # error .25: θ ≤ .75 pass, 6 of 10


def vsi(pid, task, output, answer):
    extra = {"original_question_type": task, "data_source": "arkitscenes"}
    record = mc(pid, answer, **extra) if answer.isalpha() else num(pid, answer, **extra)
    return scored("vsibench", record, output)


def test_vsibench_overall_is_the_mean_of_task_scores_and_the_reference_number_is_also_reported():
    rows = [
        vsi(1, "object_counting", said("4"), "4"),  # MRA 1.0
        vsi(2, "object_counting", said("5"), "4"),  # error .25: θ ∈ {.50 … .75} pass: 0.6
        vsi(3, "object_counting", said("10"), "10"),  # 1.0
        vsi(4, "object_abs_distance", said("2.3"), "2.0"),  # error .15: θ ∈ {.50 … .85}: 0.8
        vsi(5, "object_rel_direction_easy", said("B"), "B"),  # 1
        vsi(6, "object_rel_direction_medium", said("A"), "B"),  # 0
        vsi(7, "object_rel_direction_hard", said("B"), "B"),  # 1
        vsi(8, "object_rel_direction_hard", said("C"), "B"),  # 0
        vsi(9, "route_planning", said("B"), "B"),  # 1
        vsi(10, "route_planning", said("D"), "B"),  # 0
    ]
    score = aggregate(rows, get_benchmark("vsibench"), "ordered")
    tasks = {t: g.score for t, g in score.breakdowns["task"].items()}
    assert tasks == pytest.approx({"object_counting": 2.6 / 3, "object_abs_distance": 0.8,
                                   "object_rel_direction_easy": 1.0, "object_rel_direction_medium": 0.0,
                                   "object_rel_direction_hard": 0.5, "route_planning": 0.5})
    # official: direction levels merged ((1 + 0 + .5) / 3 = .5), then the mean of 4 tasks
    assert score.overall == pytest.approx((2.6 / 3 + 0.8 + 0.5 + 0.5) / 4)
    assert score.accuracy == pytest.approx(3 / 6) and score.n_accuracy == 6
    assert score.mra == pytest.approx(3.4 / 4) and score.n_mra == 4
    assert score.reference_overall == pytest.approx((0.5 + 0.85) / 2)
    assert score.breakdowns["task"]["object_counting"].metric == "mra"


def test_vsibench_numerical_task_typed_numerical_is_still_scored_with_mra():
    row = vsi(1, "object_counting", said("5"), "4")
    assert row.metric == "mra" and row.score == pytest.approx(0.6)
    typed_numerical = scored("vsibench", num(2, "4", "numerical", original_question_type="object_counting"),
                             said("5"))
    assert typed_numerical.metric == "mra" and typed_numerical.score == pytest.approx(0.6)
    # outside VSI-Bench a numerical item is exact: 5 ≠ 4
    assert scored("synthetic", num(3, "4", "numerical", task="count_objects"), said("5")).score == 0.0


def test_vsi_overall_merges_direction_levels_present():
    assert vsi_overall({"a": 1.0, "object_rel_direction_easy": 1.0, "object_rel_direction_hard": 0.0}) == 0.75
    assert vsi_overall({}) is None


def test_videomme_splits_by_duration():
    answers = [("short", "B", "B"), ("short", "A", "B"), ("medium", "B", "B"), ("Medium", "C", "C"),
               ("medium", "D", "D"), ("long", "A", "C")]
    rows = [scored("videomme", mc(i, gt, duration=d, task_type="Counting Problem"), said(pred))
            for i, (d, pred, gt) in enumerate(answers)]
    score = aggregate(rows, get_benchmark("videomme"), "ordered")
    durations = {k: (g.n, g.score) for k, g in score.breakdowns["duration"].items()}
    assert durations == {"short": (2, 0.5), "medium": (3, 1.0), "long": (1, 0.0)}
    assert score.accuracy == pytest.approx(4 / 6) == score.overall
    assert score.reference_overall is None
    assert score.breakdowns["task_type"]["counting_problem"].n == 6


def test_regression_items_are_left_out_of_accuracy_and_failures_count_as_zero():
    rows = [
        scored("synthetic", mc(1, "B", task="direction", temporal=True), said("B")),
        scored("synthetic", mc(2, "B", task="direction", temporal=True), None,
               error=MediaNotFound("x.mp4", "gone")),
        scored("synthetic", mc(3, "A", task="color", temporal=False), said("A")),
        scored("synthetic", num(4, "2", task="distance", temporal=True),
               said("3")),  # error .5: θ=.5 only: .1
    ]
    score = aggregate(rows, get_benchmark("synthetic"), "ordered")
    assert score.accuracy == pytest.approx(2 / 3) and score.n_accuracy == 3
    assert score.mra == pytest.approx(0.1) and score.n_mra == 1
    assert (score.n, score.answered, score.failed, score.failures) == (4, 3, 1, {"MediaNotFound": 1})
    assert rows[1].error == "x.mp4: gone" and rows[1].score == 0.0
    groups = score.breakdowns["temporal"]
    assert (groups["temporal"].n, groups["temporal"].score) == (3, pytest.approx(1.1 / 3))
    assert groups["static"].score == 1.0
    assert score.breakdowns["task"]["direction"].failed == 1


def test_free_form_and_ocr_scores_are_continuous_accuracies():
    record = EvalRecord.model_validate({"problem_id": 1, "problem": "q", "data_type": "image",
                                        "problem_type": "OCR", "options": [],
                                        "solution": "<answer>hello big world</answer>", "path": "a.png"})
    row = scored("generic", record, said("hello world"))
    assert row.score == pytest.approx(2 / 3)  # WER 1/3


@pytest.mark.parametrize(("problem_type", "answer", "generic", "synthetic"), [
    ("free-form", "red", 2 / 3, 1.0),  # a right one-word answer: ROUGE-1 and -L 1, ROUGE-2 0 (no bigram)
    ("free-form", "blue", 0.0, 0.0),
    ("OCR", "hello world", 2 / 3, 1.0),  # against "hello big world": 1 - WER = 2/3 >= 0.5
    ("OCR", "hello", 1 / 3, 0.0),
])
def test_the_synthetic_benchmark_counts_text_answers_correct_by_the_training_rule(problem_type, answer,
                                                                                  generic,
                                                                                   synthetic):
    truth = "red" if problem_type == "free-form" else "hello big world"
    record = EvalRecord.model_validate({"problem_id": 1, "problem": "q", "data_type": "image",
                                        "problem_type": problem_type, "options": [],
                                        "solution": f"<answer>{truth}</answer>", "path": "a.png"})
    assert scored("generic", record, said(answer)).score == pytest.approx(generic)
    assert scored("synthetic", record, said(answer)).score == synthetic


@pytest.mark.parametrize(("bench", "extra", "path", "category"), [
    ("tempcompass", {"dim": "speed"}, "v.mp4", "speed"),
    ("mvbench", {"task": "Action Sequence"}, "v.mp4", "action_sequence"),
    ("mvbench", {"data_source": "mvbench"}, "v.mp4", "unknown"),  # the benchmark's own name is no category
    ("mvbench", {"data_source": "object_shuffle"}, "v.mp4", "object_shuffle"),
    ("videommmu", {"data_source": "VideoMMMU"}, "VideoMMMU/Adaptation/x.mp4", "adaptation"),
    ("videommmu", {"track": "Perception"}, "x.mp4", "perception"),
    ("vsibench", {"data_source": "scannet"}, "x.mp4", "unknown"),  # the scene source is no task
])
def test_category_fields(bench, extra, path, category):
    record = mc(1, "B", **extra).model_copy(update={"path": path})
    assert get_benchmark(bench).category_of(record) == category


def test_temporal_reliance_compares_the_items_answered_in_both_runs():
    def rows(condition, outputs):
        records = [mc(1, "B", task="direction", temporal=True), mc(2, "B", task="direction", temporal=True),
                   mc(3, "A", task="color", temporal=False), mc(4, "C", task="direction", temporal=True)]
        return [scored("synthetic", r, o, condition, error=RuntimeError("oom") if o is None else None)
                for r, o in zip(records, outputs)]

    ordered = rows("ordered", [said("B"), said("B"), said("A"), said("C")])
    shuffled = rows("shuffle-frame", [said("B"), said("D"), said("A"), None])  # item 4 failed shuffled
    reliance = temporal_reliance(ordered, shuffled, get_benchmark("synthetic"))
    assert (reliance.n, reliance.excluded, reliance.shuffled_condition) == (3, 1, "shuffle-frame")
    assert (reliance.overall.ordered, reliance.overall.shuffled) == (1.0, pytest.approx(2 / 3))
    assert reliance.overall.gap == pytest.approx(1 / 3)
    temporal, static = reliance.breakdowns["temporal"]["temporal"], reliance.breakdowns["temporal"]["static"]
    assert (temporal.n, temporal.ordered, temporal.shuffled, temporal.gap) == (2, 1.0, 0.5, 0.5)
    assert (static.n, static.gap) == (1, 0.0)
    assert reliance.mra.n == 0 and reliance.mra.gap is None
