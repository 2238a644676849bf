"""`collect` on micro-batches of several video questions: all their shuffled groups in one engine call,
each question on its own seeded stream, so that generating fewer of them (the exact skip), stopping a
group once its r_t is decided, or generating each alone changes nothing. The engine-trainer parity the
RL loop logs every step."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from rl_support import rl_overrides

from videor1.data import load_records
from videor1.media.loader import SkipLog
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.vision import shallow_copy
from videor1.rollout import EncodedPrompts, HFEngine, RolloutConfig
from videor1.train import rl
from videor1.train.config import RLConfig, load_config
from videor1.train.data import QuestionSource
from videor1.train.rl import train
from videor1.train.rollout_step import collect, shuffled_accuracies


class CountingEngine:
    """The hf engine, with each call's (prompts, n, per-prompt seeds?) and texts recorded."""

    def __init__(self, engine: HFEngine):
        self.engine, self.calls, self.texts = engine, [], []

    def generate(self, prompts, n, sampling, **options):
        self.calls.append((len(prompts), n, options.get("seeds") is not None))
        out = self.engine.generate(prompts, n, sampling, **options)
        self.texts.append(out.texts)
        return out

    def load_weights(self, model) -> None:
        self.engine.load_weights(model)


def _with_skip(config: RLConfig, skip: bool) -> RLConfig:
    return config.model_copy(update={"algo": config.algo.model_copy(update={"skip_shuffled": skip})})


@pytest.mark.slow
def test_shuffled_groups_of_a_micro_batch_are_one_call_and_skipping_changes_nothing(rl_workspace, tmp_path):
    synth = rl_workspace / "synth"
    videos = [row for row in json.loads((synth / "rl_train.json").read_text()) if row["data_type"] == "video"]
    (tmp_path / "videos.json").write_text(json.dumps(videos))
    config = load_config(None, rl_overrides(rl_workspace, tmp_path / "run", **{
        "data.train_file": tmp_path / "videos.json", "data.media_root": synth, "run.prompts_per_device": 5,
        "algo.bonus_placement": "advantage"}))
    processor = load_processor(config.model.path)
    model = load_model(ModelOptions(path=Path(config.model.path), dtype="float32"))
    loaded = load_records(tmp_path / "videos.json", media_root=synth)
    source = QuestionSource(loaded, config, processor, SkipLog(), 0, 1)
    engine = CountingEngine(HFEngine(model, processor))
    skipped = changed = cut = 0
    for step in range(3):
        questions = source.questions(step, 0)
        engine.calls.clear()
        always = collect(questions, _with_skip(config, False), engine, processor, model, step, rank=0)
        # one ordered call (one stream), one call for all the shuffled groups (a stream per question)
        assert engine.calls == [(5, 4, False), (5, 2, True)]
        engine.calls.clear()
        skipping = collect(questions, _with_skip(config, True), engine, processor, model, step, rank=0)
        assert len(engine.calls) <= 2 and all(call[0] < 5 for call in engine.calls[1:])
        assert torch.equal(always.completions.ids, skipping.completions.ids)
        assert torch.equal(always.advantages, skipping.advantages)
        skipped += round(skipping.metrics["temporal/shuffled_skipped"] * 5)
        cut += skipping.metrics["temporal/shuffled_cut"] or 0
        changed += round(skipping.metrics["temporal/changed_advantages"] * 5)
        # each question's shuffled responses (and p~) are what it gets generating its shuffled group alone
        indices = list(range(5))
        engine.texts.clear()
        inputs, vision = always.inputs, always.vision
        args = (inputs, vision, config, engine, processor, step, 0)
        batched, _ = shuffled_accuracies(questions, indices, *args)
        alone = [shuffled_accuracies(questions, [b], *args)[0][0] for b in indices]
        assert batched == alone and engine.texts[0] == [text for texts in engine.texts[1:] for text in texts]
        assert len(set(engine.texts[0])) > 5  # sampled responses that differ: their equality means something
    assert skipped > 0 and changed > 0  # the skip happened, and the temporal bonus was at work
    assert cut > 0  # and some shuffled responses stopped once their group's r_t was decided


class BlindEngine(CountingEngine):
    """A broken engine: it samples without the videos (their embeddings zeroed), the bug of verl PR #7802."""

    def generate(self, prompts, n, sampling, encoded=None, **options):
        if encoded is not None and encoded.vision is not None and "video" in encoded.vision:
            vision = shallow_copy(encoded.vision)
            vision["video"].pooler_output = tuple(torch.zeros_like(x) for x in vision["video"].pooler_output)
            encoded = EncodedPrompts(encoded.batch, vision)
        return super().generate(prompts, n, sampling, encoded=encoded, **options)


@pytest.mark.slow
def test_parity_is_logged_every_step_and_a_blind_engine_is_warned_about_once(rl_workspace, tmp_path,
                                                                             monkeypatch, caplog):
    def run(name: str, **extra) -> list[dict]:
        overrides = rl_overrides(rl_workspace, tmp_path / name, **{"run.max_steps": 2, "algo.name": "grpo",
                                                                   **extra})
        result = train(load_config(None, overrides), progress=False)
        return [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]

    with caplog.at_level(logging.WARNING, logger="videor1.train.rl"):
        same = run("hf", **{"rollout.importance_cap": 2.0})
    assert all(m["rollout/kl"] < 1e-8 and m["rollout/logp_diff_max"] < 1e-4 for m in same)  # the same forward
    assert not [r for r in caplog.records if "rollout engine" in r.message]
    monkeypatch.setattr(rl, "make_engine", lambda _, model, tokens: BlindEngine(HFEngine(model, tokens)))
    with caplog.at_level(logging.WARNING, logger="videor1.train.rl"):
        blind = run("blind")
    assert all(m["rollout/kl"] > RolloutConfig().parity_warn_kl for m in blind)
    assert len([r for r in caplog.records if "rollout engine" in r.message]) == 1


def test_rl_refuses_an_engine_that_cannot_take_the_policys_weights(tmp_path):
    with pytest.raises(ValueError, match="rollout.engine=endpoint cannot roll out for training"):
        load_config(None, [f"model.path={tmp_path}", f"data.train_file={tmp_path / 'train.json'}",
                           "rollout.engine=endpoint"])
    config = load_config(None, [f"model.path={tmp_path}", f"data.train_file={tmp_path / 'train.json'}",
                                "rollout.engine=vllm", "rollout.importance_cap=2"])
    assert config.rollout.engine == "vllm" and config.rollout.importance_cap == 2.0


def test_a_shuffled_group_is_settled_once_every_reachable_p_gives_the_same_reward():
    """Eq. 1 (paper) at p = 0.5: r_t = alpha iff p~ <= 0.5. Two groups of two rows; a row's text is its
    token (1 right, 0 wrong); a group stops when its fewest and most reachable corrects agree."""
    from videor1.train.rollout_step import Settler

    class Tokens:
        def batch_decode(self, ids, skip_special_tokens):
            return [str(int(row[0])) for row in ids]

    scored = []

    def correct(texts, rows):
        scored.extend(rows)
        return torch.tensor([text == "1" for text in texts])

    settled = Settler(2, 2, lambda j, p: 0.3 if 0.5 >= p else 0.0, correct, Tokens())
    ids = torch.tensor([[0], [1], [1], [1]])
    none = torch.zeros(4, dtype=torch.bool)
    assert settled(ids, none).tolist() == [False] * 4
    # row 0 wrong: group 0 can reach p~ 0 or 0.5, alpha either way; row 2 right: group 1 0.5 or 1, open
    assert settled(ids, torch.tensor([True, False, True, False])).tolist() == [True, True, False, False]
    # row 3 right too: p~ = 1, decided (no bonus); rows already scored are not scored again
    assert settled(ids, torch.tensor([True, False, True, True])).tolist() == [True] * 4
    assert sorted(scored) == [0, 2, 3] and settled.cut == 1  # row 1 stopped before it ended
