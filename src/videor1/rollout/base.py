"""The rollout interface. An engine turns a processed batch of prompts into n completions each,
with the log-probs it sampled them with; Hugging Face `generate` is the first engine, and a vLLM
engine implements the same method without the trainer changing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor


class SamplingConfig(BaseModel):
    """How responses are sampled (training rollouts, or evaluation with the paper's decoding)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=1.0, ge=0.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling.")
    top_k: int | None = Field(default=None, ge=1, description="Top-k sampling (None: off).")
    max_new_tokens: int = Field(default=768, ge=1, description="Longest response (paper: 768 tokens).")


@dataclass
class Completions:
    """n completions for each of B prompts, prompt after prompt: row b * n + i is completion i of b.

    ids: (B*n, T) token ids, padded after the end; mask: (B*n, T) 1 on the response tokens (the
    end-of-turn token included); logprobs: (B*n, T) log-probs under the sampling temperature at
    generation time (0 on padding), when asked for; texts: the decoded responses.
    """

    ids: Tensor
    mask: Tensor
    logprobs: Tensor | None
    texts: list[str]

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(dim=1)


class RolloutEngine(Protocol):
    def generate(self, batch, n: int, sampling: SamplingConfig, mm_encoder_outputs: dict | None = None,
                 seed: int | None = None, logprobs: bool = False) -> Completions:
        """n completions per prompt of `batch` (a processor output). `mm_encoder_outputs`: vision
        embeddings already computed for the batch (engines that cannot take them re-encode).
        `seed`: when given, sampling draws from its own random stream and leaves the global one as it was.
        `logprobs`: also return the sampled tokens' log-probs (for checks against the training forward)."""
        ...
