"""The evaluation runner with a scripted generator: failure isolation, resume, shuffling, reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from eval_factories import said, write_image, write_video

from videor1.eval import EvalConfig, Generation, SettingsMismatch, run_eval, run_suite
from videor1.eval.runner import EndpointUnavailable, condition_name


class Oracle:
    """Answers from a table keyed by the id in the question; wrong when a video's frames were reordered;
    raises for any batch holding a poisoned id. Records the ids of every call."""

    def __init__(self, answers: dict[str, str], poison=(), stop_after: int | None = None):
        self.answers, self.poison, self.stop_after = answers, set(poison), stop_after
        self.calls: list[list[str]] = []
        self.first_frames: dict[str, np.ndarray] = {}

    def __call__(self, prompts, seed):
        ids = [re.match(r"\[(\w+)\]", p.text).group(1) for p in prompts]
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt  # stands in for a kill between two batches
        self.calls.append(ids)
        if self.poison & set(ids):
            raise RuntimeError("generation exploded")
        out = []
        for sample_id, prompt in zip(ids, prompts):
            ordered = True
            if prompt.video is not None:
                first = self.first_frames.setdefault(sample_id, prompt.video.frames)
                ordered = np.array_equal(first, prompt.video.frames)
            text = said(self.answers[sample_id] if ordered else "no idea")
            out.append(Generation(text, tokens=len(text.split())))
        return out


def record(pid, data_type, problem_type, answer, path, options=(), source="src-a"):
    return {"problem_id": pid, "problem": f"[{pid}] What is shown?", "data_type": data_type,
            "problem_type": problem_type, "options": list(options), "solution": f"<answer>{answer}</answer>",
            "path": path, "data_source": source}


OPTIONS = ["A. left", "B. right"]
ANSWERS = {"1": "B", "2": "A", "3": "3", "5": "B", "6": "2.5", "7": "A"}


@pytest.fixture
def bench_file(tmp_path):
    write_video(tmp_path / "videos" / "v.mp4")
    write_image(tmp_path / "images" / "i.png")
    records = [
        record(1, "video", "multiple choice", "B", "videos/v.mp4", OPTIONS),
        record(2, "video", "multiple choice", "B", "videos/v.mp4", OPTIONS),  # answered wrong
        record(3, "image", "numerical", "3", "images/i.png", source="src-b"),
        record(4, "video", "multiple choice", "B", "videos/missing.mp4", OPTIONS),  # media fail
        record(5, "video", "multiple choice", "B", "videos/v.mp4", OPTIONS),  # generation fails
        record(6, "video", "regression", "2.0", "videos/v.mp4"),  # MRA .6
        record(7, "image", "multiple choice", "A", "images/i.png", OPTIONS, source="src-b"),
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(records))
    return path


def config(bench_file, out, **overrides) -> EvalConfig:
    values = dict(bench="generic", data=bench_file, out_dir=out, frames=8, min_pixels=3136, max_pixels=3136,
                  batch_size=3)
    return EvalConfig(**{**values, **overrides})


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failures_stay_with_their_sample_and_are_counted(bench_file, tmp_path):
    oracle = Oracle(ANSWERS, poison={"5"})
    result = run_eval(config(bench_file, tmp_path / "out"), oracle, show_progress=False)
    # batches are fixed slices [1 2 3] [4 5 6] [7]; 4's media failed, so [5 6] ran, failed, and was retried
    assert oracle.calls == [["1", "2", "3"], ["5", "6"], ["5"], ["6"], ["7"]]
    rows = {r["id"]: r for r in rows_of(result.samples["ordered"])}
    assert rows["4"]["error_type"] == "MediaNotFound" and "missing.mp4" in rows["4"]["error"]
    assert rows["5"]["error_type"] == "RuntimeError" and rows["5"]["error"] == "generation exploded"
    assert rows["6"]["score"] == pytest.approx(0.6) and rows["6"]["error"] is None
    assert {k: rows[k]["score"] for k in "1237"} == {"1": 1.0, "2": 0.0, "3": 1.0, "7": 1.0}
    assert rows["1"]["prediction"] == "B" and rows["1"]["prompt"].startswith("[1] What is shown?")
    score = result.summary.conditions["ordered"]
    assert (score.n, score.answered, score.failed) == (7, 5, 2)
    assert score.failures == {"MediaNotFound": 1, "RuntimeError": 1}
    assert score.accuracy == pytest.approx(3 / 6) and score.mra == pytest.approx(0.6)
    assert score.breakdowns["source"]["src-b"].score == 1.0
    assert json.loads(result.summary_path.read_text())["conditions"]["ordered"]["accuracy"] == 0.5
    assert "| Generic | ordered | 7 | 2 | 50.0 | 60.0 | 50.0 | – |" in result.markdown_path.read_text()


def test_every_item_gets_its_own_row_whatever_its_id(tmp_path):
    write_image(tmp_path / "images" / "i.png")
    items = [record(pid, "image", "multiple choice", answer, "images/i.png", OPTIONS) for pid, answer in
             (("q", "A"), ("q", "B"), ("q#1", "A"))]
    for item, tag in zip(items, "abc"):
        item["problem"] = f"[{tag}] What is shown?"
    (tmp_path / "dup.json").write_text(json.dumps(items))
    result = run_eval(config(tmp_path / "dup.json", tmp_path / "out"), Oracle({"a": "A", "b": "B", "c": "B"}),
                      show_progress=False)
    rows = rows_of(result.samples["ordered"])
    assert [(r["id"], r["prompt"][:3], r["score"]) for r in rows] == [
        ("q", "[a]", 1.0), ("q#2", "[b]", 1.0), ("q#1", "[c]", 0.0)]  # the third scored with its own answer
    assert result.summary.conditions["ordered"].n == 3


@pytest.mark.parametrize("content", ["[]", "[1, 2, 3]", '[{"problem_id": 1}]'])
def test_a_benchmark_file_without_one_valid_item_is_an_error(tmp_path, content):
    from videor1.data import DataFileError

    (tmp_path / "bench.json").write_text(content)
    with pytest.raises(DataFileError, match=r"bench\.json: no (valid items|records)"):
        run_eval(config(tmp_path / "bench.json", tmp_path / "out"), Oracle({}), show_progress=False)
    assert not (tmp_path / "out" / "summary.json").exists()


class Outage(Oracle):
    """An endpoint that does not answer for the poisoned ids (HTTP 503, or a client error when `status`
    is 4xx), until `healed`."""

    def __init__(self, answers, poison, status: int):
        super().__init__(answers, poison)
        self.status, self.healed = status, False

    def __call__(self, prompts, seed):
        from videor1.rollout.chat import EndpointError

        if not self.healed and self.poison & {re.match(r"\[(\w+)\]", p.text).group(1) for p in prompts}:
            raise EndpointError("server says no", self.status)
        return Oracle(self.answers)(prompts, seed)


def test_an_endpoint_outage_leaves_samples_to_resume_not_failed(bench_file, tmp_path):
    full = run_eval(config(bench_file, tmp_path / "full"), Oracle(ANSWERS), show_progress=False)
    down = Outage(ANSWERS, poison={"5"}, status=503)
    with pytest.raises(EndpointUnavailable, match="1 sample"):
        run_eval(config(bench_file, tmp_path / "out"), down, show_progress=False)
    assert "5" not in {r["id"] for r in rows_of(tmp_path / "out" / "generic.ordered.jsonl")}
    down.healed = True  # the server is back: a rerun evaluates what the outage left
    resumed = run_eval(config(bench_file, tmp_path / "out"), down, show_progress=False)
    assert resumed.summary.conditions == full.summary.conditions

    refused = run_eval(config(bench_file, tmp_path / "refused"), Outage(ANSWERS, poison={"5"}, status=400),
                       show_progress=False)  # a request the server rejects is the sample's failure
    rows = {r["id"]: r for r in rows_of(refused.samples["ordered"])}
    assert rows["5"]["error_type"] == "EndpointError" and refused.summary.conditions["ordered"].failed == 2


def test_a_stopped_run_resumes_to_the_uninterrupted_result(bench_file, tmp_path):
    full = run_eval(config(bench_file, tmp_path / "full"), Oracle(ANSWERS, poison={"5"}), show_progress=False)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_eval(config(bench_file, out), Oracle(ANSWERS, poison={"5"}, stop_after=1), show_progress=False)
    jsonl = out / "generic.ordered.jsonl"
    assert [r["id"] for r in rows_of(jsonl)] == ["1", "2", "3"]  # stopped before the second batch
    resumed_oracle = Oracle(ANSWERS, poison={"5"})
    resumed = run_eval(config(bench_file, out), resumed_oracle, show_progress=False)
    assert resumed_oracle.calls == [["5", "6"], ["5"], ["6"], ["7"]]
    assert [r["id"] for r in rows_of(jsonl)] == ["1", "2", "3", "4", "5", "6", "7"]
    assert resumed.summary.conditions == full.summary.conditions
    by_id = lambda path: sorted(rows_of(path), key=lambda r: r["id"])  # noqa: E731
    assert by_id(jsonl) == by_id(full.samples["ordered"])


def test_a_torn_last_line_is_cut_and_its_batch_generated_again_whole(bench_file, tmp_path):
    out = tmp_path / "out"
    full = run_eval(config(bench_file, out), Oracle(ANSWERS, poison={"5"}), show_progress=False)
    jsonl = full.samples["ordered"]
    lines = jsonl.read_text().splitlines(keepends=True)
    assert [json.loads(x)["id"] for x in lines[-2:]] == ["6", "7"]
    jsonl.write_text("".join(lines[:-2]) + lines[-2][:40])  # killed while writing 6; 7 never written
    oracle = Oracle(ANSWERS, poison={"5"})
    resumed = run_eval(config(bench_file, out), oracle, show_progress=False)
    assert oracle.calls == [["5", "6"], ["5"], ["6"], ["7"]]  # 5 was done: rerun only to keep 6's batch
    assert jsonl.read_text() == "".join(lines)
    assert resumed.summary.conditions == full.summary.conditions


def test_other_settings_refuse_to_append_to_existing_results(bench_file, tmp_path):
    run_eval(config(bench_file, tmp_path / "out"), Oracle(ANSWERS), show_progress=False)
    with pytest.raises(SettingsMismatch, match="frames: 8 -> 4"):
        run_eval(config(bench_file, tmp_path / "out", frames=4), Oracle(ANSWERS), show_progress=False)


def test_temporal_reliance_runs_ordered_and_shuffled_on_the_same_items(bench_file, tmp_path):
    oracle = Oracle(ANSWERS, poison={"5"})
    result = run_eval(config(bench_file, tmp_path / "out", temporal_reliance=True), oracle,
                      show_progress=False)
    assert set(result.samples) == {"ordered", "shuffle-frame"}
    shuffled = {r["id"]: r for r in rows_of(result.samples["shuffle-frame"])}
    assert shuffled["1"]["permutation"] is not None and sorted(shuffled["1"]["permutation"]) == list(range(8))
    assert shuffled["3"]["permutation"] is None  # images are left as they are
    assert shuffled["1"]["score"] == 0.0 and shuffled["7"]["score"] == 1.0
    reliance = result.summary.temporal_reliance
    assert (reliance.n, reliance.excluded) == (5, 2)  # items 4 and 5 failed in both runs
    assert (reliance.accuracy.ordered, reliance.accuracy.shuffled) == (0.75, 0.5)
    assert (reliance.mra.ordered, reliance.mra.shuffled) == (pytest.approx(0.6), 0.0)
    assert reliance.breakdowns["source"]["src-b"].gap == 0.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Temporal reliance" in report and "+25.0" in report


def test_shuffles_are_seeded_per_item_and_differ_between_seeds(bench_file, tmp_path):
    def permutations(out, seed):
        result = run_eval(config(bench_file, out, shuffle="temporal_patch", seed=seed), Oracle(ANSWERS),
                          show_progress=False)
        return {r["id"]: r["permutation"] for r in rows_of(result.samples[condition_name("temporal_patch")])}

    a, again, other = (permutations(tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert a == again and a != other
    assert all(p[0] % 2 == 0 and p[1] == p[0] + 1 for p in (a["1"], a["6"]))  # 2-frame groups stay whole


def test_suite_runs_every_benchmark_file_of_a_directory(bench_file, tmp_path):
    data = bench_file.parent
    rows = json.loads(bench_file.read_text())
    (data / "eval_mvbench.json").write_text(json.dumps([{**r, "task": "action_sequence"} for r in rows[:3]]))
    (data / "eval_videomme.json").write_text(json.dumps([{**r, "duration": "short"} for r in rows[:2]]))
    results = run_suite(config(bench_file, tmp_path / "out", bench="all", data=data), Oracle(ANSWERS),
                        show_progress=False)
    assert [r.summary.benchmark for r in results] == ["mvbench", "videomme"]  # bench.json names none
    assert results[0].summary.conditions["ordered"].breakdowns["task"]["action_sequence"].n == 3
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(summary) == ["mvbench", "videomme"]
    assert summary["videomme"]["conditions"]["ordered"]["breakdowns"]["duration"]["short"]["score"] == 0.5
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| MVBench | ordered | 3 |" in report and "| Video-MME | ordered | 2 |" in report


def test_an_endpoint_that_is_no_http_url_is_a_config_error(tmp_path):
    # made lazily, a bad client failed every sample of the run for good (and resume skips failed samples)
    with pytest.raises(ValueError, match="http"):
        config(tmp_path / "bench.json", tmp_path / "out", endpoint="localhost:8000")
    assert config(tmp_path / "bench.json", tmp_path / "out", endpoint="http://127.0.0.1:8000").endpoint
