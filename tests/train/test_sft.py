"""The SFT cold start: labels on the assistant's tokens only, accumulation equal to one big batch,
config errors, exact resume; slow: SFT on the synthetic chains of thought lowers the held-out loss
and teaches the answer format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from rl_support import MEDIA, media_config

from videor1.data import CotRecord, load_records
from videor1.data.synth import synthesize
from videor1.media.loader import MediaConfig, SkipLog, load_media
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import ModelOptions, load_model, load_processor
from videor1.models.tiny import build_tiny_from_records
from videor1.prompts import build_question
from videor1.train.sft import SupervisedPolicy, accumulate_gradients, load_sft_config, train
from videor1.train.sft_data import IGNORE, ExampleSource, load_splits, target_ids, with_targets

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """16 synthetic CoT records (videos and images) and a tiny Qwen2.5-VL whose tokenizer knows them."""
    root = tmp_path_factory.mktemp("sft")
    synthesize(root / "synth", n=16, seed=0)
    build_tiny_from_records(root / "tiny", [root / "synth" / "cot_train.json"], "qwen2_5_vl", "tiny", 0)
    return root


def _examples(root: Path, n: int, config: MediaConfig | None = None) -> tuple[list[Prompt], list[str]]:
    loaded = load_records(root / "synth" / "cot_train.json", kind=CotRecord)
    prompts, targets = [], []
    for record in loaded.records[:n]:
        media = load_media(record, loaded.media_root, config or media_config())
        kind = "video" if record.data_type == "video" else "image"
        prompts.append(Prompt(build_question(record), **{kind: media}))
        targets.append(record.target)
    return prompts, targets


def _overrides(root: Path, out: Path, **extra) -> list[str]:
    base = {"model.path": root / "tiny", "model.dtype": "float32", "model.freeze_vision": True,
            "data.train_file": root / "synth" / "cot_train.json", "data.max_prompt_tokens": 2048,
            "run.output_dir": out, "run.tensorboard": False, "optim.lr": 1e-3}
    base.update(extra)
    return MEDIA + [f"{k}={v}" for k, v in base.items()]


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_labels_are_the_assistant_tokens_only(workspace, arch):
    if arch == "qwen2_5_vl":
        processor, media = load_processor(workspace / "tiny"), media_config()
    else:  # Qwen3-VL writes timestamps and vision start / end around every temporal patch
        model_dir = build_tiny_from_records(workspace / arch, [workspace / "synth" / "cot_train.json"], arch)
        processor, media = load_processor(model_dir), MediaConfig(nframes=8, factor=32,
                                                                  video_min_pixels=9 * 1024,
                                                                   video_max_pixels=9 * 1024,
                                                                   image_min_pixels=4 * 1024,
                                                                   image_max_pixels=9 * 1024)
    prompts, targets = _examples(workspace, 6, media)
    assert {p.video is None for p in prompts} == {True, False}  # images and videos in one batch
    batch = with_targets(processor, encode(processor, prompts), targets)
    tokenizer = processor.tokenizer
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths.min() < lengths.max()  # rows of different lengths: left padding is at work
    never = {tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>",
                                                          "<|vision_pad|>",
                                                           "<|image_pad|>", "<|video_pad|>", "<|im_start|>")}
    never.add(tokenizer.pad_token_id)
    for row, target in enumerate(targets):
        labelled = batch["labels"][row] != IGNORE
        ids = batch["input_ids"][row]
        assert torch.equal(batch["labels"][row][labelled], ids[labelled])
        positions = labelled.nonzero().flatten().tolist()
        assert positions == list(range(len(ids) - len(positions), len(ids)))  # one run, ending the row
        assert tokenizer.decode(ids[labelled]) == target + tokenizer.eos_token
        assert not any(int(i) in never for i in ids[labelled])
        assert batch["mm_token_type_ids"][row][labelled].eq(0).all()
        # what precedes the labels is the whole chat prompt (system and user turns, media, generation prompt)
        prompt_text = tokenizer.decode(ids[(batch["attention_mask"][row] == 1) & ~labelled])
        assert prompt_text.startswith("<|im_start|>system")
        assert prompt_text.endswith("<|im_start|>assistant\n")
        # vision tokens, unlabelled
        assert prompt_text.count("<|video_pad|>") + prompt_text.count("<|image_pad|>") > 8
    # the model sees the very tokens of the chat template with the answer written in
    joint = encode(processor, prompts, targets)
    assert torch.equal(joint["input_ids"], batch["input_ids"])
    assert torch.equal(joint["mm_token_type_ids"], batch["mm_token_type_ids"])


def test_two_accumulated_micro_batches_of_four_equal_one_batch_of_eight(workspace):
    from accelerate import Accelerator

    processor = load_processor(workspace / "tiny")
    prompts, targets = _examples(workspace, 8)
    halves = [with_targets(processor, encode(processor, prompts[s]), targets[s]) for s in (slice(0, 4),
                                                                                           slice(4, 8))]
    tokens = [int((h["labels"] != IGNORE).sum()) for h in halves]
    assert tokens[0] != tokens[1]  # a mean of per-micro-batch means would weigh tokens unequally
    accelerator = Accelerator(cpu=True)
    grads, losses = [], []
    for batches in ([with_targets(processor, encode(processor, prompts), targets)], halves):
        torch.manual_seed(0)
        model = load_model(ModelOptions(path=workspace / "tiny", dtype="float32", freeze_vision=True))
        policy = SupervisedPolicy(model)
        loss, counted = accumulate_gradients(policy, batches, accelerator)
        assert counted == sum(tokens)
        losses.append(loss)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].keys() == grads[1].keys() and any("merger" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-7, msg=name)


def test_config_errors_are_reported_together_with_their_fields(tmp_path):
    with pytest.raises(ValueError) as error:
        load_sft_config(None,
                        ["model.path=m", "optim.lr=-1", "run.prompts_per_device=0",
                         "data.max_target_tokens=0",
                               "run.epochs=0"])
    message = str(error.value)
    assert "5 problem(s)" in message
    for field in ("data.train_file", "optim.lr", "run.prompts_per_device", "data.max_target_tokens",
                  "run.epochs"):
        assert f"  {field}:" in message
    with pytest.raises(ValueError, match="eval.every=10 needs held-out records"):
        load_sft_config(None, ["model.path=m", "data.train_file=t.json", "eval.every=10"])
    with pytest.raises(ValueError, match="not both"):
        load_sft_config(None, ["model.path=m", "data.train_file=t.json", "data.eval_file=e.json",
                               "data.eval_fraction=0.1"])
    with pytest.raises(ValueError, match="run.batch_size: Extra inputs"):
        load_sft_config(None, ["model.path=m", "data.train_file=t.json", "run.batch_size=4"])
    with pytest.raises(ValueError, match="not key=value"):
        load_sft_config(None, ["model.path"])


def test_recipes_load_and_the_paper_recipe_has_the_paper_values():
    paper = load_sft_config(CONFIGS / "paper_7b_sft.yaml")
    assert (paper.optim.lr, paper.run.epochs, paper.run.max_steps, paper.optim.max_grad_norm) == (1e-6, 1,
                                                                                                  None, 5)
    assert (paper.optim.weight_decay, paper.model.dtype, paper.model.freeze_vision) == (0.01, "bfloat16",
                                                                                        False)
    assert (paper.media.nframes, paper.media.video_max_pixels) == (16, 128 * 28 * 28)
    cpu = load_sft_config(CONFIGS / "cpu_sft.yaml")
    assert (cpu.optim.lr, cpu.optim.warmup_steps, cpu.optim.max_grad_norm, cpu.run.prompts_per_device) == (
        1e-3, 50, 1.0, 16)
    assert cpu.model.freeze_vision and cpu.model.train_merger


def test_held_out_split_and_target_budget(workspace, caplog):
    config = load_sft_config(None, _overrides(workspace, workspace / "unused", **{
        "data.eval_fraction": 0.25, "data.max_target_tokens": 40}))
    train_set, held_out = load_splits(config.data, config.run.seed)
    ids = [{r.problem_id for r in part.records} for part in (train_set, held_out)]
    assert (len(ids[0]), len(ids[1])) == (12, 4) and not ids[0] & ids[1]
    assert ids[1] == {r.problem_id for r in load_splits(config.data, config.run.seed)[1].records}  # seeded
    assert ids[1] != {r.problem_id for r in load_splits(config.data, config.run.seed + 1)[1].records}
    processor = load_processor(workspace / "tiny")
    source = ExampleSource(train_set, config, processor, SkipLog(), 0, 1)
    lengths = {r.problem_id: len(target_ids(processor, [r.target])[0]) for r in train_set.records}
    long = next(r for r in train_set.records if lengths[r.problem_id] > 40)
    short = next(r for r in train_set.records if lengths[r.problem_id] <= 40)
    with caplog.at_level(logging.WARNING):
        assert source.prepare(long) is None and source.prepare(long) is None
    assert sum("over data.max_target_tokens=40" in m for m in caplog.messages) == 1  # reported once
    assert source.over_budget == {long.label} and source.prepare(short).record is short


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _metrics(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in lines]


def test_two_steps_then_resume_equals_four_steps(workspace, tmp_path):
    def config(out: Path):
        return load_sft_config(None, _overrides(workspace, out, **{
            "run.max_steps": 4, "run.prompts_per_device": 3, "run.grad_accum": 2, "run.save_every": 2,
            "optim.warmup_steps": 1, "data.eval_fraction": 0.2, "eval.every": 2, "eval.samples": 2,
            "eval.max_new_tokens": 8}))

    whole = train(config(tmp_path / "whole"), progress=False)
    stopped = train(config(tmp_path / "parts"), progress=False, stop_after=2)
    assert (tmp_path / "parts" / "latest").read_text() == "checkpoint-2"
    assert any(not torch.equal(a, b) for a,
               b in zip(_weights(whole.model).values(), _weights(stopped.model).values()))
    resumed = train(config(tmp_path / "parts"), resume=True, progress=False)
    final, again = _weights(whole.model), _weights(resumed.model)
    assert all(torch.equal(final[k], again[k]) for k in final)
    metrics = _metrics(tmp_path / "whole")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]
    assert all("eval/loss" in metrics[i] for i in (0, 2, 4)) and "eval/loss" not in metrics[3]
    assert metrics == _metrics(tmp_path / "parts")
    saved = load_sft_config(tmp_path / "parts" / "checkpoint-4" / "config.yaml")
    assert saved.run.max_steps == 4 and saved.data.eval_fraction == 0.2


@pytest.mark.slow
def test_sft_lowers_held_out_loss_and_teaches_the_format(tmp_path):
    """~1 minute on one thread: 200 steps of 8 examples at lr 2e-3 (calibrated: held-out loss
    6.92 -> 0.71, greedy format reward 0.00 -> 1.00, accuracy 0.00 -> 0.28; format >= 0.9 from
    ~100 steps on)."""
    synthesize(tmp_path / "synth", n=300, seed=0)
    build_tiny_from_records(tmp_path / "tiny", [tmp_path / "synth" / "cot_train.json"], "qwen2_5_vl", "tiny",
                            0)
    out = tmp_path / "run"
    config = load_sft_config(CONFIGS / "cpu_sft.yaml", _overrides(tmp_path, out, **{
        "run.max_steps": 200, "run.prompts_per_device": 8, "run.save_every": 200, "optim.lr": 2e-3,
        "optim.vision_lr": 2e-4, "optim.warmup_steps": 20, "data.eval_fraction": 0.1, "eval.every": 0,
        "eval.samples": 30, "eval.batch_size": 15, "media.cache_dir": tmp_path / "frames"}))
    train(config, progress=False)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    before, after = metrics[0], metrics[-1]
    print(f"held-out loss {before['eval/loss']:.3f} -> {after['eval/loss']:.3f}, format "
          f"{before['eval/format']:.2f} -> {after['eval/format']:.2f}, accuracy "
          f"{before['eval/accuracy']:.2f} -> {after['eval/accuracy']:.2f}")
    assert (before["step"], after["step"]) == (0, 200) and after["eval/samples"] == 30
    assert after["eval/loss"] < 0.3 * before["eval/loss"]
    assert before["eval/format"] < 0.5 and after["eval/format"] >= 0.9
    assert after["eval/accuracy"] > before["eval/accuracy"] + 0.1  # some answers are right, beyond the format
    assert after["train/loss"] < metrics[1]["train/loss"]


def test_sft_command_checks_and_prints_its_config(tmp_path):
    from typer.testing import CliRunner

    from videor1.cli import app

    recipe = Path(__file__).resolve().parents[2] / "configs" / "cpu_sft.yaml"
    shown = CliRunner().invoke(app, ["sft", "--config", str(recipe), "--check", "optim.lr=0.002"])
    assert shown.exit_code == 0, shown.output
    assert "lr: 0.002" in shown.output
    bad = CliRunner().invoke(app, ["sft", "--config", str(recipe), "--check", "optim.lr=-1", "run.nope=1"])
    assert bad.exit_code == 2 and "optim.lr" in bad.output and "run.nope" in bad.output
