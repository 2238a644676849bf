"""The per-response temporal credit in a real RL step: no shuffled generation, a shuffled teacher-forced
forward instead, and the order reliance it measures equals the one of re-encoded shuffled frames."""

from __future__ import annotations

import json

import pytest
import torch
from rl_support import rl_overrides

from videor1.train.config import load_config
from videor1.train.rl import train


@pytest.mark.slow
def test_per_response_credit_trains_without_shuffled_generation(rl_workspace, tmp_path):
    overrides = rl_overrides(rl_workspace, tmp_path / "credit", **{
        "algo.temporal_credit": "response", "algo.credit_scale": 0.5, "run.max_steps": 2,
        "run.prompts_per_device": 6})
    result = train(load_config(None, overrides), progress=False)
    metrics = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    with_videos = [m for m in metrics if m["temporal/video_groups"]]
    assert with_videos
    for m in with_videos:
        assert m["temporal/shuffled_skipped"] == 1.0 and m["temporal/p_shuffled"] is None
        assert m["temporal/reliance"] is None or torch.isfinite(torch.tensor(m["temporal/reliance"]))


@pytest.mark.slow
def test_order_reliance_equals_teacher_forcing_on_re_encoded_shuffled_frames(rl_workspace):
    """Oracle: the shuffled frames processed and encoded from scratch, one question at a time, then the
    same completions teacher-forced; the credit's batched forward permutes the ordered embeddings'
    rows instead. Images and videos in one micro-batch; rows of image questions stay 0."""
    from dataclasses import replace
    from types import SimpleNamespace

    from videor1.data import load_records
    from videor1.media.loader import SkipLog
    from videor1.media.shuffle import apply_permutation, sample_seed, shuffle_permutation
    from videor1.models.inputs import encode
    from videor1.models.loading import ModelOptions, load_model, load_processor
    from videor1.models.logprobs import sequence_logprobs
    from videor1.models.vision import encode_vision
    from videor1.train.data import QuestionSource
    from videor1.train.rollout_step import _with_frames, order_reliances

    model_dir = rl_workspace / "formatted"
    config = load_config(None, rl_overrides(rl_workspace, rl_workspace / "unused",
                                            **{"algo.num_generations": 3}))
    processor = load_processor(model_dir)
    model = load_model(ModelOptions(path=model_dir, dtype="float32")).eval()
    # the briefly trained tiny model barely looks at its video (reliance ~1e-5 nats): louder vision
    # embeddings make the order matter, so that equal numbers mean something
    merger = [m for m in model.model.visual.merger.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        merger.weight.mul_(300.0)
        merger.bias.mul_(300.0)
    loaded = load_records(rl_workspace / "synth" / "rl_train.json")
    source = QuestionSource(loaded, config, processor, SkipLog(), 0, 1)
    records = loaded.records
    # an image question, and two video questions whose scene changes over time (on a still scene every
    # order shows the same frames)
    moving = [r for r in records if r.data_type == "video" and r.temporal]
    picked = [next(r for r in records if r.data_type == "image")] + moving[:2]
    questions = [source.prepare(r) for r in picked]
    G = 3
    inputs = encode(processor, [q.prompt for q in questions])
    with torch.no_grad():
        vision = encode_vision(model, inputs)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 200, (len(questions) * G, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[4, 5:] = 0  # a shorter completion
    completions = SimpleNamespace(ids=ids, mask=mask)

    reliance = order_reliances(questions, [1, 2], inputs, vision, completions, config, model, step=5, rank=0)
    assert torch.equal(reliance[:G], torch.zeros(G))  # the image question: no credit
    moved = []
    for b in (1, 2):
        question = questions[b]
        clip = question.prompt.video
        seed = sample_seed(config.run.seed, "shuffle", 5, 0, question.record.problem_id)
        order = shuffle_permutation(len(clip.frames), "temporal_patch", seed)
        rows = slice(b * G, (b + 1) * G)
        scores = []
        for frames in (clip.frames, apply_permutation(clip.frames, order)):
            prompt = replace(question.prompt, video=_with_frames(clip, frames))
            one = encode(processor, [prompt])
            with torch.no_grad():
                vision_one = encode_vision(model, one)
                scores.append(sequence_logprobs(model, one, ids[rows], mask[rows], G, 1.0, vision_one))
        expected = ((scores[0] - scores[1]) * mask[rows]).sum(dim=1)
        assert order != sorted(order)
        assert torch.allclose(reliance[rows], expected, rtol=1e-3, atol=3e-5), (reliance[rows], expected)
        moved.append(expected.abs().max())
    assert max(moved) > 3e-4  # the order does change these completions' likelihood


@pytest.mark.parametrize("tags_are_tokens", [True, False])
def test_answer_tokens_mark_the_content_the_reward_reads(tags_are_tokens):
    """`algo.credit_span=answer`: the marked tokens decode to text holding the final answer's content,
    and nothing before them reaches into it; no answer, no marks. With the tags as single tokens (the
    tiny tokenizer) and split into pieces that the BPE merges with the text around them."""
    from videor1.models.tiny import build_tokenizer
    from videor1.rewards.answers import answer_span, extract_answer
    from videor1.train.rollout_step import answer_tokens

    texts = ["<think>cells 3 then 5</think><answer>left</answer>",
             "<think>a draft</think><answer>draft</answer> then <answer> the right one </answer>",
             "<think>no answer here</think>", "<answer></answer>", "<answer>up ↑ é</answer>junk",
             "<answer>unclosed"]
    tokenizer = build_tokenizer(texts * 20, vocab_size=300)
    # characters cut between byte tokens in the reasoning: a prefix then decodes to a trailing U+FFFD
    texts += [f"<think>{'漢' * k}</think><answer>left</answer>" for k in range(1, 13)]
    if not tags_are_tokens:  # the same BPE without the added reasoning tokens
        from transformers import PreTrainedTokenizerFast
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer,
                                            pad_token="<|endoftext|>")
    rows = [tokenizer.encode(text) for text in texts]
    T = max(map(len, rows)) + 3
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (T - len(row)) for row in rows])
    mask = (torch.arange(T)[None, :] < torch.tensor([len(row) for row in rows])[:, None]).long()
    marked = answer_tokens(ids, mask, tokenizer)
    assert not marked[mask == 0].any()
    for row, text in zip(rows, texts):
        i = texts.index(text)
        decoded = tokenizer.decode(row, skip_special_tokens=True)
        span = answer_span(decoded)
        on = marked[i].nonzero().flatten().tolist()
        if span is None or not extract_answer(decoded):
            assert not on, text
            continue
        start, end = on[0], on[-1] + 1
        assert on == list(range(start, end))  # one run of tokens
        assert extract_answer(decoded) in tokenizer.decode(row[start:end], skip_special_tokens=True)
        assert len(tokenizer.decode(row[:start], skip_special_tokens=True)) <= span[0]
        assert len(tokenizer.decode(row[:start + 1], skip_special_tokens=True)) > span[0]
    assert "draft" not in tokenizer.decode(rows[1][marked[1].nonzero().min():], skip_special_tokens=True)
    assert all(int(marked[i].sum()) <= 3 for i in range(6, len(texts)))  # "left" alone, not the reasoning


def test_the_credit_without_temporal_patch_shuffling_is_refused_when_the_config_loads(tmp_path):
    """Refused at load (and --check), not at the first step: under sharded weights a process without a
    credited group would otherwise wait in its padding forwards while another raised."""
    with pytest.raises(ValueError, match="temporal_credit=response needs media.shuffle=temporal_patch"):
        load_config(None, [f"model.path={tmp_path}", f"data.train_file={tmp_path / 'train.json'}",
                           "algo.temporal_credit=response", "media.shuffle=frame"])
