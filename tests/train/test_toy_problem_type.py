"""Adding a problem type is one registry entry plus its functions (docs/rewards.md): a toy type is
validated, prompted, trained on and evaluated with no other code change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_support import rl_overrides

from videor1.data import EvalRecord, Record, load_records
from videor1.data.synth import synthesize
from videor1.eval import EvalConfig, Generation, run_eval
from videor1.prompts import build_question
from videor1.rewards import PROBLEM_TYPES, ProblemType, accuracy_reward, parse_number
from videor1.train.config import load_config
from videor1.train.rl import train

INSTRUCTION = " Please say whether the number is odd or even within the <answer> </answer> tags."


def parity(answer: str, options=None) -> str | None:
    """"odd" / "even" from the word or from a whole number; None otherwise."""
    word = answer.strip().lower() if isinstance(answer, str) else ""
    if word in ("odd", "even"):
        return word
    number = parse_number(answer)
    if number is None or number != int(number):
        return None
    return "odd" if int(number) % 2 else "even"


class ParityReward:
    """0.25 for a wrong parity, 1.0 for the right one (values no built-in reward gives), every call kept."""

    def __init__(self):
        self.values: list[float] = []

    def __call__(self, pred: str, gt: str, options=None) -> float:
        right = parity(pred) is not None and parity(pred) == parity(gt)
        self.values.append(1.0 if right else 0.25)
        return self.values[-1]


@pytest.fixture
def toy(monkeypatch) -> ParityReward:
    reward = ParityReward()
    monkeypatch.setitem(PROBLEM_TYPES, "parity", ProblemType(
        "parity", parse=parity, reward=reward, score="exact", instruction=INSTRUCTION,
        plain_instruction="\nAnswer odd or even."))
    return reward


def toy_records(source: Path) -> list[dict]:
    """The synthetic numerical questions with whole-number answers, asked as parity questions."""
    rows = []
    for row in json.loads(source.read_text()):
        if row["problem_type"] != "numerical" or parity(row["solution"][8:-9]) is None:
            continue
        rows.append({**row, "problem_type": "parity",
                     "problem": row["problem"] + " Is the answer odd or even?",
                     "solution": f"<answer>{parity(row['solution'][8:-9])}</answer>"})
    return rows


def test_a_toy_type_is_validated_and_prompted_from_its_entry(toy):
    record = Record.model_validate({"problem_id": 1, "problem": "Is 7 odd?", "data_type": "image",
                                    "problem_type": "parity", "solution": "<answer>odd</answer>",
                                    "path": "a.png", "data_source": "toy"})
    assert build_question(record, "video-r1").endswith(INSTRUCTION)
    assert build_question(record, "plain").endswith("\nAnswer odd or even.")
    assert accuracy_reward("<think>x</think><answer>13</answer>", record.solution, "parity") == 1.0
    with pytest.raises(ValueError, match="not an answer the parity reward can read"):
        Record.model_validate({**record.model_dump(), "solution": "<answer>maybe</answer>"})


def test_without_its_entry_the_type_is_refused():
    with pytest.raises(ValueError, match="unknown problem type 'parity'"):
        Record.model_validate({"problem_id": 1, "problem": "?", "data_type": "image",
                               "problem_type": "parity", "solution": "<answer>odd</answer>", "path": "a.png",
                               "data_source": "toy"})


def test_a_toy_type_is_evaluable(toy, tmp_path):
    synthesize(tmp_path / "synth", n=24, seed=0)
    rows = toy_records(tmp_path / "synth" / "rl_train.json")[:4]
    assert len(rows) == 4
    data = tmp_path / "synth" / "parity.json"  # beside the media its paths name
    data.write_text(json.dumps(rows))
    answers = ["2", "odd", "nothing", "even"]

    def scripted(prompts, seed):
        assert all(p.text.endswith(INSTRUCTION) for p in prompts)
        return [Generation(f"<think>t</think><answer>{answers.pop(0)}</answer>", tokens=4) for _ in prompts]

    config = EvalConfig(bench="generic", data=data, out_dir=tmp_path / "out",
                        frames=8, min_pixels=3136, max_pixels=7056, batch_size=4, template="video-r1")
    result = run_eval(config, scripted, show_progress=False)
    samples = [json.loads(line) for line in result.samples["ordered"].read_text().splitlines()]
    truth = [EvalRecord.model_validate(row).answer for row in rows]
    expected = [1.0 if parity(a) == t else 0.25 for a, t in zip(["2", "odd", "nothing", "even"], truth)]
    assert [s["score"] for s in samples] == expected  # the toy's reward, through the registry
    assert [s["prediction"] for s in samples] == ["even", "odd", None, "even"]  # the toy's parser
    assert result.summary.conditions["ordered"].accuracy == pytest.approx(sum(expected) / 4)


@pytest.mark.slow
def test_a_toy_type_is_trainable(toy, rl_workspace, tmp_path):
    rows = toy_records(rl_workspace / "synth" / "rl_train.json")
    data = rl_workspace / "synth" / "parity_train.json"  # beside the media its paths name
    data.write_text(json.dumps(rows))
    assert len(load_records(data, kind=Record, strict=True).records) == len(rows) >= 4
    B, G, steps = 4, 4, 3
    config = load_config(None, rl_overrides(rl_workspace, tmp_path / "run", **{
        "data.train_file": data, "algo.name": "grpo", "run.max_steps": steps, "run.prompts_per_device": B,
        "algo.num_generations": G}))
    result = train(config, progress=False)
    metrics = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    # Every accuracy reward of training came from the toy's reward (GRPO: no shuffled groups): the logged
    # means add up to its values, and responses without an answer pair (0, never scored) make up the rest.
    assert toy.values, "no response carried an answer pair"
    assert sum(m["reward/accuracy"] for m in metrics) * B * G == pytest.approx(sum(toy.values))
