"""The one generation interface of videor1: prompts in, n completions each out.

Every stage that generates (RL rollouts, SFT's held-out scoring, eval, infer, annotate, eval-judge,
serve) calls `Engine.generate`; no other module calls `model.generate`. Engines:

- `hf` (`videor1.rollout.hf.HFEngine`): `model.generate` in this process, on the policy itself;
- `vllm` (`videor1.rollout.vllm.VLLMEngine`): vLLM colocated in the training process, weights pushed
  after every optimizer step;
- `endpoint` (`videor1.rollout.endpoint.EndpointEngine`): any OpenAI-compatible server.

Random streams. `seed` (one int) makes a call repeatable: its prompts share one stream. `seeds`
(one per prompt) gives prompt b a stream of its own, so that its completions do not depend on which
other prompts are in the call: T-GRPO generates only the shuffled groups that can change an update
(docs/algorithm.md, "The exact skip"), all in one call, and the update must be the same
whether the others were generated or not.

T-GRPO's shuffled group is just more prompts: the question's text with its frames permuted.
Engines that take precomputed inputs (`hf`) get them through `encoded`: for `temporal_patch`
shuffling, the ordered prompt's tokens with its vision embeddings' rows permuted (exact, nothing
re-encoded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

if TYPE_CHECKING:
    from torch import nn

    from videor1.models.inputs import Prompt

EngineName = Literal["hf", "vllm", "endpoint"]


class SamplingConfig(BaseModel):
    """How responses are sampled (training rollouts, or evaluation with the paper's decoding)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=1.0, ge=0.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling.")
    top_k: int | None = Field(default=None, ge=1, description="Top-k sampling (None: off).")
    max_new_tokens: int = Field(default=768, ge=1, description="Longest response (paper: 768 tokens).")


@dataclass(frozen=True)
class Completions:
    """n completions for each of B prompts, prompt after prompt: row b * n + i is completion i of b.

    ids: (B*n, T) response token ids, padded after the end with the pad id.
    mask: (B*n, T) 1 on the response tokens (the end-of-turn token included), 0 on padding.
    logprobs: (B*n, T) float32 log-probs of the sampled tokens under the sampling temperature
        (raw logits / temperature, before top-k / top-p; 0 on padding), when asked for; else None.
    texts: B*n decoded responses (special tokens skipped).
    finished: (B*n,) bool, True where the response ended with an end token (not cut by max_new_tokens).
    """

    ids: Tensor
    mask: Tensor
    logprobs: Tensor | None
    texts: list[str]
    finished: Tensor

    @property
    def lengths(self) -> Tensor:
        """(B*n,) response lengths in tokens, the end token included."""
        return self.mask.sum(dim=1)


@dataclass(frozen=True)
class EncodedPrompts:
    """The model inputs of B prompts as the trainer already computed them.

    batch: the processor's output for the B prompts (`videor1.models.inputs.encode`: left-padded
        input_ids / attention_mask / mm_token_type_ids (B, L), grids, pixels), on the model's device.
    vision: their vision embeddings (`videor1.models.vision.encode_vision`: {"image": out, "video": out},
        one item per image / video in batch order), or None: the engine encodes `batch`'s pixels.
    """

    batch: Mapping[str, Tensor]
    vision: dict | None = None


class Engine(Protocol):
    """A generation engine (see the module docstring for the engines and their random streams)."""

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, *,
                 seed: int | None = None, seeds: Sequence[int] | None = None, logprobs: bool = False,
                 encoded: EncodedPrompts | None = None, stop: Callable[[], bool] | None = None,
                 settled: Callable[[Tensor, Tensor], Tensor] | None = None) -> Completions:
        """n completions per prompt (rows b * n + i).

        prompts: B `videor1.models.inputs.Prompt` (text plus a decoded image or video clip with its frames,
            sampled fps and frame indices).
        seed: one stream for the whole call (repeatable); seeds: B seeds, prompt b samples from its own
            stream whatever else is in the call; neither: the global random state. Not both.
        logprobs: also return the sampled tokens' log-probs (rollout-trainer parity, serve's logprobs).
        encoded: the prompts' processor batch and vision embeddings, already computed (engines that cannot
            use them ignore them: they generate from `prompts`).
        stop: polled while generating; when it returns True the engine stops early and returns what it has
            (a server's cancelled request). Engines that cannot stop early ignore it.
        settled: called after each new token with the (B*n, t) tokens generated so far and which rows have
            produced their end token (bool (B*n,)); returns which rows may stop there, their completions
            cut (bool (B*n,); the shuffled groups whose temporal reward is decided). Only saves work:
            engines that cannot stop rows early ignore it.
        """
        ...

    def load_weights(self, model: nn.Module) -> None:
        """Make the engine sample from `model`'s current weights, after an optimizer step. `hf`: nothing
        to do (it samples from the policy itself); `vllm`: push the state dict; `endpoint`: an error."""
        ...


def check_seeds(prompts: Sequence, seed: int | None, seeds: Sequence[int] | None) -> None:
    """ValueError when both a call seed and per-prompt seeds are given, or seeds do not match the prompts."""
    if seed is not None and seeds is not None:
        raise ValueError("give either seed (one stream for the call) or seeds (one per prompt), not both")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")


class VLLMOptions(BaseModel):
    """The colocated vLLM engine (`rollout.engine: vllm`; `videor1.rollout.vllm`). On a GPU it shares the
    device with training: `gpu_memory_utilization` is the share it takes for its weights and KV cache."""

    model_config = ConfigDict(extra="forbid")

    gpu_memory_utilization: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="GPU: the share of the device's memory vLLM takes (weights "
        "+ KV cache); training gets the rest. Ignored on a CPU (VLLM_CPU_KVCACHE_SPACE, GiB, sizes its "
        "cache).")
    max_model_len: int | None = Field(default=None, ge=16, description="Longest prompt + response in tokens "
                                      "(None: the checkpoint's max_position_embeddings).")
    sleep: bool = Field(default=False, description="GPU: between rollouts, offload vLLM's weights to host "
                        "memory and drop its KV cache (sleep mode level 1), giving training the memory; "
                        "costs a wake-up per step.")


class RolloutConfig(BaseModel):
    """Which engine generates the RL rollouts, and the rollout-trainer parity check and correction."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName = Field(default="hf", description="Generation engine: hf (transformers generate, in "
                               "process), vllm (colocated vLLM; pip install 'videor1[vllm]') or endpoint "
                               "(an OpenAI-compatible server; not for RL: it cannot take the new weights).")
    parity_warn_kl: float = Field(default=0.01, ge=0.0, description="Warn (once) when the k3 KL between the "
                                  "engine's sampled-token log-probs and the training forward's exceeds this: "
                                  "the engine is not sampling from the policy being trained.")
    importance_cap: float | None = Field(
        default=None, gt=0.0, description="Truncated importance sampling: weight each token's "
        "policy-gradient term by min(pi_old / pi_engine, cap), correcting for engine-trainer mismatch "
        "(e.g. 2.0). None: off.")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="The vllm engine's options.")
