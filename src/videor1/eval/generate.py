"""Answers for a batch of prompts: the evaluation's one call into a model.

`EngineGenerator` asks any generation engine (`videor1.rollout`: the local checkpoint's `hf` engine,
the one training rolls out with, or an `endpoint`) for one response per prompt. The runner sees only
`Generator`: a list of prompts and a seed in, one `Generation` per prompt out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from videor1.data.records import Record
from videor1.media.cache import FrameCache
from videor1.media.loader import MediaConfig, load_media
from videor1.media.shuffle import sample_seed
from videor1.models.inputs import Prompt
from videor1.prompts import PromptTemplate, build_question
from videor1.rollout.base import Engine, SamplingConfig
from videor1.rollout.hf import Dtype, HFEngine

log = logging.getLogger(__name__)


def eval_sampling(max_new_tokens: int = 1024, greedy: bool = False) -> SamplingConfig:
    """The paper's evaluation decoding: temperature 0.01, top_p 0.001 (or greedy: temperature 0)."""
    if greedy:
        return SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens)
    return SamplingConfig(temperature=0.01, top_p=0.001, max_new_tokens=max_new_tokens)


@dataclass
class Generation:
    """One response: its text and its length in tokens."""

    text: str
    tokens: int


class Generator(Protocol):
    def __call__(self, prompts: list[Prompt], seed: int) -> list[Generation]:
        """One response per prompt, in order; `seed` makes sampling repeatable."""
        ...


def record_prompt(record: Record, template: PromptTemplate, media_root: Path | None, media: MediaConfig,
                  cache: FrameCache | None = None) -> Prompt:
    """The record's question (`build_question`) with its decoded video or image; `MediaError` when the
    media cannot be read. Shared by evaluation and CoT annotation."""
    loaded = load_media(record, media_root, media, cache)
    text = build_question(record, template)
    return Prompt(text, image=loaded) if record.data_type == "image" else Prompt(text, video=loaded)


def generate_each(generator: Generator, prompts: list[Prompt], ids: list[str], seed: int
                  ) -> list[Generation | Exception]:
    """One generation per prompt; when the batch fails, each prompt alone (a failure stays its own).

    `seed` and the batch's first id seed the batch; a prompt that fails alone is returned as its exception.
    Shared by evaluation and CoT annotation.
    """
    try:
        out = generator(prompts, sample_seed(seed, "batch", ids[0]))
        if len(out) != len(prompts):
            raise RuntimeError(f"generator returned {len(out)} responses for {len(prompts)} prompts")
        return list(out)
    except Exception as error:  # noqa: BLE001 - any failure of the batch is retried per sample
        if len(prompts) == 1:
            return [error]
        log.warning("batch of %d (first id %s) failed (%s: %s); retrying sample by sample",
                    len(prompts), ids[0], type(error).__name__, error)
    results: list[Generation | Exception] = []
    for prompt, sample_id in zip(prompts, ids, strict=True):
        results.extend(generate_each(generator, [prompt], [sample_id], seed))
    return results


class EngineGenerator:
    """The evaluation's `Generator` over a generation engine: one response per prompt, the call seeded
    (repeatable: the same batch and seed give the same answers)."""

    def __init__(self, engine: Engine, sampling: SamplingConfig):
        self.engine, self.sampling = engine, sampling

    def __call__(self, prompts: list[Prompt], seed: int) -> list[Generation]:
        out = self.engine.generate(prompts, 1, self.sampling, seed=seed)
        return [Generation(text, int(n)) for text, n in zip(out.texts, out.lengths.tolist(), strict=True)]


def endpoint_generator(endpoint: str, model: str | None, sampling: SamplingConfig, concurrency: int = 4
                       ) -> EngineGenerator:
    """An OpenAI-compatible server through the `endpoint` engine (its API key from $VIDEOR1_API_KEY, else
    $OPENAI_API_KEY; `model` None: the server's first)."""
    from videor1.rollout.chat import ChatClient, env_api_key
    from videor1.rollout.endpoint import EndpointEngine

    client = ChatClient(endpoint, model, env_api_key(), concurrency=concurrency)
    return EngineGenerator(EndpointEngine(client), sampling)


class HFGenerator(EngineGenerator):
    """A local checkpoint (real Qwen-VL or tiny) through the `hf` engine."""

    def __init__(self, model_dir: str | Path, sampling: SamplingConfig, dtype: Dtype = "auto",
                 device: str | None = None):
        super().__init__(HFEngine.from_checkpoint(model_dir, dtype, device), sampling)


def vision_factor(model_dir: str | Path | None) -> int:
    """Frame side multiple of the checkpoint, read from its processor (patch size x merge size: 28 for
    Qwen2/2.5-VL, 32 for Qwen3-VL); 28 without a local checkpoint (an endpoint serving Qwen2/2.5-VL)."""
    if model_dir is None:
        return 28
    from videor1.models.loading import load_processor
    from videor1.models.loading import vision_factor as processor_factor

    return processor_factor(load_processor(model_dir))
