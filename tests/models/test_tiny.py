"""Tiny models built from record files load back like real checkpoints and generate on real videos."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from videor1.data import Record, read_raw
from videor1.media import FrameSampling, read_video
from videor1.models import (
    FAMILIES,
    REASONING_TOKENS,
    ModelOptions,
    Prompt,
    build_tiny_from_records,
    build_tokenizer,
    corpus_from_records,
    encode,
    load_model,
    load_processor,
)
from videor1.prompts import PRESETS, build_question
from videor1.rewards import PROBLEM_TYPES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
DATA_FILES = sorted(EXAMPLES.glob("*.json"))
VIDEO = EXAMPLES / "videos" / "right_red.mp4"  # 8 frames at 2 fps, 64 x 64


def _sampling(arch: str) -> FrameSampling:
    factor = 32 if arch == "qwen3_vl" else 28
    return FrameSampling(nframes=8, factor=factor, min_pixels=4 * factor**2, max_pixels=9 * factor**2)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def checkpoint(request, tmp_path_factory) -> tuple[str, Path]:
    arch = request.param
    factor = 32 if arch == "qwen3_vl" else 28
    path = build_tiny_from_records(tmp_path_factory.mktemp(arch), DATA_FILES, arch, seed=1,
                                   min_pixels=4 * factor**2, max_pixels=9 * factor**2)
    return arch, path


def test_corpus_holds_every_record_text_and_every_preset():
    corpus = corpus_from_records(DATA_FILES)
    text = "\n".join(corpus)
    for path in DATA_FILES:
        for raw in read_raw(path):
            assert raw["problem"] in text
            for option in raw["options"]:
                assert option in text
            for field in ("solution", "process"):
                for piece in re.split("|".join(map(re.escape, REASONING_TOKENS)), raw.get(field, "")):
                    assert piece in text
    for template in PRESETS.values():
        assert template.body.split("{question}")[1].split("<think>")[0] in text
        for problem_type in PROBLEM_TYPES:
            assert template.instruction(problem_type).split("<answer>")[0] in text
    # The reasoning tags are added tokens, never trained into BPE merges.
    assert not any(tag in piece for piece in corpus for tag in REASONING_TOKENS)
    assert "0 1 2 3" in text and "3.14" in text


def test_corpus_without_files_is_the_presets_only():
    corpus = corpus_from_records([])
    assert "Which direction does the square move?" not in "\n".join(corpus)
    assert any(piece.startswith("\nPlease think about this question") for piece in corpus)


def test_synthetic_questions_take_few_tokens():
    tokenizer = build_tokenizer(corpus_from_records(DATA_FILES), 1024)
    untrained = build_tokenizer(["a b c"], 1024)  # bytes only: about one token per character
    record = Record.model_validate(read_raw(EXAMPLES / "train.json")[0])
    question = build_question(record, "video-r1")
    tokens = len(tokenizer(question)["input_ids"])
    assert tokens * 3 < len(question)
    assert tokens * 3 < len(untrained(question)["input_ids"])


def test_reasoning_tags_are_single_tokens_that_survive_decoding(checkpoint):
    _, path = checkpoint
    tokenizer = load_processor(path).tokenizer
    for tag in REASONING_TOKENS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    answer = "<think>It moves to the right.</think><answer>B</answer>"
    ids = tokenizer(answer + tokenizer.eos_token)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == answer


def test_tiny_from_records_loads_and_generates_on_a_video(checkpoint):
    arch, path = checkpoint
    model = load_model(ModelOptions(path=path, dtype="float32")).eval()
    processor = load_processor(path)
    assert type(model) is FAMILIES[arch]
    clip = read_video(VIDEO, _sampling(arch))
    batch = encode(processor, [Prompt("Which direction does the square move?", video=clip)])
    t, h, w = batch["video_grid_thw"][0].tolist()
    # 8 frames in 2-frame patches; 64 px resized to 56 (Qwen3-VL: 64) = 4 patches of 14 (16)
    assert (t, h, w) == (4, 4, 4)
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == t * h * w // 4
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=6, do_sample=True, temperature=1.0)
    new = out[0, batch["input_ids"].shape[1]:]
    assert len(new) in range(1, 7)
    assert isinstance(processor.tokenizer.decode(new, skip_special_tokens=True), str)
