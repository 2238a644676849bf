"""The RL trainer: log-prob consistency, token budget, exact shuffled-rollout skip, vision reuse, CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from rl_support import rl_overrides
from typer.testing import CliRunner

from videor1.algo.importance import rollout_parity
from videor1.cli import app
from videor1.data import load_records
from videor1.media import read_image, read_video
from videor1.media.loader import SkipLog
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.logprobs import sequence_logprobs
from videor1.models.tiny import build_tiny_from_records
from videor1.models.vision import encode_vision
from videor1.rollout import EncodedPrompts, HFEngine, RolloutConfig, SamplingConfig
from videor1.train.config import load_config
from videor1.train.data import QuestionSource
from videor1.train.rl import train

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    files = [EXAMPLES / "train.json", EXAMPLES / "cot.json"]
    return {arch: build_tiny_from_records(root / arch, files, arch, "tiny", 0) for arch in ("qwen2_5_vl",
                                                                                            "qwen3_vl")}


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_generation_logprobs_equal_the_training_forward(tiny_dirs, arch):
    """Same inputs (media, timing, mm_token_type_ids), same log-probs: sampling and training agree."""
    torch.manual_seed(0)
    processor = load_processor(tiny_dirs[arch])
    model = load_model(ModelOptions(path=tiny_dirs[arch], dtype="float32"))
    factor = 32 if arch == "qwen3_vl" else 28
    from videor1.media import FrameSampling

    sampling = FrameSampling(nframes=8, min_pixels=4 * factor**2, max_pixels=9 * factor**2, factor=factor)
    clip = read_video(EXAMPLES / "videos" / "right_red.mp4", sampling)
    short = read_video(EXAMPLES / "videos" / "up_green.mp4", FrameSampling(
        nframes=4, min_pixels=4 * factor**2, max_pixels=9 * factor**2, factor=factor))
    image = read_image(EXAMPLES / "images" / "three_circles.png", 4 * factor**2, 9 * factor**2, factor)
    prompts = [Prompt("Which way does it move?", video=clip), Prompt("How many circles?", image=image),
               Prompt("Which way?", video=short)]
    batch = encode(processor, prompts)
    with torch.no_grad():
        vision = encode_vision(model, batch)
        out = HFEngine(model, processor).generate(prompts, 3,
                                                  SamplingConfig(temperature=0.7, max_new_tokens=12), seed=1,
                                                  logprobs=True, encoded=EncodedPrompts(batch, vision))
        logps = sequence_logprobs(model, batch, out.ids, out.mask, 3, 0.7, vision)
        # an engine that lost the media (the bug verl PR #7802 fixed): same tokens, scored without them
        blind = HFEngine(model, processor).generate([Prompt(p.text) for p in prompts], 3,
                                                    SamplingConfig(temperature=0.7, max_new_tokens=12),
                                                    seed=1, logprobs=True)
        blind_logps = sequence_logprobs(model, batch, blind.ids, blind.mask, 3, 0.7, vision)
    assert out.mask.sum() > 9  # something was generated
    parity = rollout_parity(out.logprobs, logps, out.mask)
    assert parity.max_abs < 1e-5 and abs(parity.kl) < 1e-9, parity
    wrong = rollout_parity(blind.logprobs, blind_logps, blind.mask)
    assert wrong.kl > RolloutConfig().parity_warn_kl and wrong.mean_abs > 0.05, wrong


def test_prompts_over_budget_get_fewer_frames_then_are_skipped(tiny_dirs, caplog):
    model_dir = tiny_dirs["qwen2_5_vl"]
    processor = load_processor(model_dir)
    loaded = load_records(EXAMPLES / "train.json")
    video = next(r for r in loaded.records if r.data_type == "video")

    def source(budget: int) -> QuestionSource:
        config = load_config(None, [f"model.path={model_dir}", f"data.train_file={EXAMPLES / 'train.json'}",
                                    f"data.max_prompt_tokens={budget}", "media.nframes=8",
                                    "media.video_min_pixels=3136", "media.video_max_pixels=7056"])
        return QuestionSource(loaded, config, processor, SkipLog(), 0, 1)

    full = source(100_000).prepare(video)
    tokens = encode(processor, [full.prompt])["input_ids"].shape[1]
    assert len(full.prompt.video.frames) == 8
    fewer = source(tokens - 1).prepare(video)  # one token over: half the frames fit
    assert len(fewer.prompt.video.frames) == 4
    assert encode(processor, [fewer.prompt])["input_ids"].shape[1] <= tokens - 1
    tiny_budget = source(20)
    with caplog.at_level(logging.WARNING):
        assert tiny_budget.prepare(video) is None
        assert tiny_budget.prepare(video) is None
    assert sum("over data.max_prompt_tokens=20" in m for m in caplog.messages) == 1  # logged once


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_skipping_shuffled_rollouts_changes_nothing(rl_workspace, tmp_path):
    runs = {}
    for skip in (True, False):
        # bonus on the advantage: it then matters whenever a correct response gets it (on the reward,
        # group-std normalisation cancels it in most groups of this task, see README)
        config = load_config(None, rl_overrides(rl_workspace, tmp_path / str(skip), **{
            "algo.skip_shuffled": skip, "algo.bonus_placement": "advantage", "run.max_steps": 4,
            "optim.lr": 1e-3}))
        result = train(config, progress=False)
        lines = (result.output_dir / "metrics.jsonl").read_text().splitlines()
        metrics = [json.loads(line) for line in lines]
        runs[skip] = (_weights(result.model), metrics)
    (skipping, skip_metrics), (always, always_metrics) = runs[True], runs[False]
    assert all(torch.equal(skipping[k], always[k]) for k in skipping)
    assert max(m["temporal/shuffled_skipped"] for m in skip_metrics) > 0  # it did skip some
    assert all(m["temporal/shuffled_skipped"] == 0 for m in always_metrics)
    assert sum(m["temporal/changed_advantages"] for m in skip_metrics) > 0  # and the bonus was at work
    for a, b in zip(skip_metrics, always_metrics):
        assert a["reward/accuracy"] == b["reward/accuracy"] and a["train/loss"] == b["train/loss"]
    initial = _weights(load_model(ModelOptions(path=rl_workspace / "formatted", dtype="float32")))
    assert any(not torch.equal(initial[k], skipping[k]) for k in initial)  # training changed the policy


def _count_vision(monkeypatch) -> list[int]:
    """Media items (rows of grid_thw) passed through the vision tower, call by call."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    calls: list[int] = []
    original = qwen.Qwen2_5_VisionTransformerPretrainedModel.forward

    def counting(self, hidden_states, grid_thw, **kwargs):
        calls.append(int(grid_thw.shape[0]))
        return original(self, hidden_states, grid_thw, **kwargs)

    monkeypatch.setattr(qwen.Qwen2_5_VisionTransformerPretrainedModel, "forward", counting)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "per_step"), [
    # frozen vision: encoded once per question for the rollout; policy and reference reuse it
    ({"model.freeze_vision": True, "model.train_merger": False}, 4),
    # trainable vision: once for the rollout, once for the policy forward, once for the reference
    ({"model.freeze_vision": False}, 12),
    # the reference code's way: frame shuffling re-encodes each video question's shuffled frames once more
    ({"model.freeze_vision": True, "model.train_merger": False, "media.shuffle": "frame",
      "algo.skip_shuffled": False}, "4 + video questions"),
])
def test_each_question_is_encoded_once_per_pass_not_per_response(rl_workspace, tmp_path, monkeypatch, extra,
                                                                 per_step):
    calls = _count_vision(monkeypatch)
    overrides = rl_overrides(rl_workspace, tmp_path / "run",
                             **{"run.max_steps": 1, "run.prompts_per_device": 4,
                                                                 "algo.num_generations": 4, **extra})
    result = train(load_config(None, overrides), progress=False)
    metrics = json.loads((result.output_dir / "metrics.jsonl").read_text().splitlines()[0])
    if per_step == "4 + video questions":
        assert metrics["temporal/shuffled_skipped"] == 0 and metrics["temporal/video_groups"] > 0
        per_step = 4 + metrics["temporal/video_groups"]
    # temporal_patch shuffling reuses the ordered embeddings: no extra encoding for shuffled groups
    assert sum(calls) == per_step, (calls, metrics["temporal/shuffled_skipped"])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["tgrpo", "grpo"])
def test_rl_from_the_cli_with_mixed_batches(rl_workspace, tmp_path, algo):
    out = tmp_path / algo
    overrides = rl_overrides(rl_workspace, out, **{"algo.name": algo, "run.max_steps": 2, "run.save_every": 1,
                                                   "run.prompts_per_device": 6, "run.tensorboard": True})
    result = CliRunner().invoke(app, ["rl", "--config",
                                      str(Path(__file__).parents[2] / "configs" / "cpu_tgrpo.yaml"),
                                      *overrides])
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    videos = sum(m["temporal/video_groups"] for m in metrics)
    if algo == "tgrpo":
        assert 0 < videos < 12  # images and videos in the same batches, six questions per step
    assert all(m["train/grad_norm"] is not None and m["reward/format"] is not None for m in metrics)
    assert list(out.glob("rl/events.out.tfevents.*"))  # TensorBoard, through accelerate's tracker
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "config.yaml").is_file() and (out / "latest").read_text() == "checkpoint-2"
    saved = load_config(checkpoint / "config.yaml")
    assert saved.algo.name == algo and saved.run.max_steps == 2
    exported = load_model(ModelOptions(path=checkpoint / "hf", dtype="float32"))  # loads like a checkpoint
    assert sum(p.numel() for p in exported.parameters()) > 0


@pytest.mark.slow
def test_lora_policy_trains_only_adapters_against_its_base(rl_workspace, tmp_path):
    overrides = rl_overrides(rl_workspace, tmp_path / "lora", **{"run.max_steps": 2, "optim.lr": 1e-2,
                                                                  "model.lora.r": 4, "model.lora.alpha": 8})
    result = train(load_config(None, overrides), progress=False)
    metrics = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["train/kl"] == pytest.approx(0.0, abs=1e-7)  # step 1: the policy is its base
    assert metrics[1]["train/kl"] > 0  # then adapters moved it away from the base (adapters disabled)
    base = _weights(load_model(ModelOptions(path=rl_workspace / "formatted", dtype="float32")))
    trained = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in _weights(result.model).items() if "lora_" not in k}
    assert all(torch.equal(base[k], trained[k]) for k in base)  # the base weights never change


def test_a_micro_batch_of_bad_records_takes_this_ranks_next_slots(tiny_dirs, tmp_path):
    rows = json.loads((EXAMPLES / "train.json").read_text())
    for row in rows:
        row["path"] = str(EXAMPLES / row["path"])
    rows[0]["path"] = rows[1]["path"] = str(tmp_path / "missing.mp4")  # slot of step 0: both bad
    (tmp_path / "train.json").write_text(json.dumps(rows))
    loaded = load_records(tmp_path / "train.json", allow_outside_media_root=True)  # examples/mini's media
    model_dir = tiny_dirs["qwen2_5_vl"]
    config = load_config(None, [f"model.path={model_dir}", f"data.train_file={tmp_path / 'train.json'}",
                                "data.shuffle=false", "run.prompts_per_device=2", "media.nframes=4",
                                "media.video_min_pixels=3136", "media.video_max_pixels=3136"])
    skips = SkipLog()
    source = QuestionSource(loaded, config, load_processor(model_dir), skips, rank=0, world=1)
    questions = source.questions(step=0, micro=0)
    assert [q.record.problem_id for q in questions] == [3, 4]  # the next step's slot of this rank
    assert set(skips.errors) == {"problem_id=1", "problem_id=2"}
    for row in rows:
        row["path"] = str(tmp_path / "missing.mp4")
    (tmp_path / "all_bad.json").write_text(json.dumps(rows))
    hopeless = QuestionSource(load_records(tmp_path / "all_bad.json"), config, load_processor(model_dir),
                              SkipLog(), rank=0, world=1)
    with pytest.raises(RuntimeError, match="no record of 6 could be prepared"):
        hopeless.questions(step=0, micro=0)
