"""Answers for a batch of prompts: the evaluation's one call into a model.

`HFGenerator` processes the prompts with the checkpoint's processor (`videor1.models.inputs.encode`)
and samples one response each through the same `HFEngine` that training rolls out with. The runner
sees only `Generator`: a list of prompts and a seed in, one `Generation` per prompt out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from videor1.models.inputs import Prompt
from videor1.rollout.base import SamplingConfig

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


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


def pick_device(device: str | None = None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class HFGenerator:
    """A local checkpoint (real Qwen-VL or tiny) generating with `HFEngine`."""

    def __init__(self, model_dir: str | Path, sampling: SamplingConfig, dtype: Dtype = "auto",
                 device: str | None = None):
        from videor1.models.loading import ModelOptions, load_model, load_processor
        from videor1.rollout.hf import HFEngine

        self.device = pick_device(device)
        if dtype == "auto":  # bfloat16 is the paper's dtype; on a CPU it is slow and gains nothing
            dtype = "float32" if self.device == "cpu" else "bfloat16"
        self.processor = load_processor(model_dir)
        model = load_model(ModelOptions(path=Path(model_dir), dtype=dtype), self.device)
        self.engine = HFEngine(model.eval(), self.processor)
        self.sampling = sampling

    def __call__(self, prompts: list[Prompt], seed: int) -> list[Generation]:
        from videor1.models.inputs import encode

        batch = encode(self.processor, prompts).to(self.device)
        out = self.engine.generate(batch, 1, self.sampling, seed=seed)
        return [Generation(text, int(n)) for text, n in zip(out.texts, out.lengths.tolist(), strict=True)]


def vision_factor(model_dir: str | Path | None) -> int:
    """Frame side multiple of the checkpoint: 32 for Qwen3-VL, 28 for Qwen2/2.5-VL (and no model)."""
    if model_dir is None:
        return 28
    from videor1.models.loading import model_family

    return 32 if model_family(model_dir) == "qwen3_vl" else 28
