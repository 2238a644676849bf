"""Benchmark adapters: names, file detection, unique sample ids; and single-question inference."""

from __future__ import annotations

import pytest
from eval_factories import mc, write_video

from videor1.eval import Generation, detect_benchmark, get_benchmark, sample_ids
from videor1.eval.infer import infer, split_output


@pytest.mark.parametrize(("name", "bench"), [
    ("eval_vsibench.json", "vsibench"), ("VSI-Bench.jsonl", "vsibench"), ("eval_videomme.json", "videomme"),
    ("Video-MME.json", "videomme"), ("eval_mmvu.json", "mmvu"), ("mvbench_eval.json", "mvbench"),
    ("eval_tempcompass.json", "tempcompass"), ("eval_videommmu.json", "videommmu"),
    ("synthetic.json", "synthetic"),
])
def test_benchmark_files_are_recognised_by_name(name, bench):
    assert detect_benchmark(f"/data/{name}").name == bench


def test_unknown_names():
    assert detect_benchmark("eval.json") is None and detect_benchmark("rl_train.json") is None
    with pytest.raises(ValueError, match="unknown benchmark 'nope': use one of vsibench"):
        get_benchmark("nope")
    assert get_benchmark("VSI_Bench").name == "vsibench"


def test_repeated_problem_ids_get_distinct_sample_ids():
    assert sample_ids([mc(1), mc(2), mc(1), mc(1)]) == ["1", "2", "1#1", "1#2"]
    # a repeat's "#k" never takes another record's id, whatever the order
    assert sample_ids([mc("q"), mc("q"), mc("q#1")]) == ["q", "q#2", "q#1"]
    assert sample_ids([mc("q#1"), mc("q"), mc("q"), mc("q#2")]) == ["q#1", "q", "q#3", "q#2"]


def test_split_output():
    assert split_output("<think> a </think><think>b</think><answer> C </answer>") == ("b", "C")
    assert split_output("just text") == (None, None)


def test_infer_builds_the_question_with_options_and_splits_the_answer(tmp_path):
    seen = []

    def generator(prompts, seed):
        seen.extend(prompts)
        return [Generation("<think>it moves right</think><answer>B</answer>", 9)]

    video = write_video(tmp_path / "v.mp4")
    result = infer(None, "Where does it "
                         "go?", video=video, problem_type="multiple choice", options=["left", "right"],
                   frames=4, max_pixels=3136, generator=generator)
    assert (result.reasoning, result.answer) == ("it moves right", "B")
    assert result.prompt.startswith("Where does it go?Options:\nA. left\nB. right\n")
    assert seen[0].video.frames.shape[0] == 4 and seen[0].image is None
    with pytest.raises(ValueError, match="exactly one"):
        infer(None, "q", generator=generator)
