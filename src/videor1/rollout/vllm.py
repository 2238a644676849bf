"""The `vllm` engine: vLLM in the training process (colocated), sampling from the policy's weights.

The engine loads the policy's checkpoint directory (config, tokenizer, processor, weights), then takes
the policy's own weights, at the start (a resumed run's policy is not the checkpoint's) and after every
optimizer step
(`load_weights`): `reload_weights` on the worker, in place, then the caches that hold what the old
weights computed (prefix KV blocks, vision encoder outputs, processed media) are dropped. The push is
a Python call into the worker, so the engine core runs in this process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`); eager mode (no CUDA graphs / compilation) keeps the start-up short
and the weights swappable.

Prompts go in as text plus media, through the checkpoint's own processor inside vLLM: the chat text of
`videor1.models.inputs.chat_text`, a video as its sampled frames with their metadata (fps, source frame
indices, `do_sample_frames=False`, no resize), an image as the resized picture. The prompt token ids are
then the HF processor's (checked in tests/vllm_engine). A shuffled T-GRPO group is the same text with the
permuted frames.

Random streams: vLLM seeds each request's sampler. A prompt's n completions are n child requests
seeded base, base + 1, ..., base + n - 1; the base of prompt b comes from `seeds[b]` (or `seed` and b)
through a SeedSequence hash, so that neighbouring seeds do not share streams. A prompt's completions
depend on its own seed only, not on the other prompts in the call (the exact skip of shuffled groups).

Log-probs are vLLM's "processed" ones: the sampled token's log-prob under the distribution it was
drawn from (temperature applied, vision tokens suppressed, top-k / top-p applied when set).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from videor1.models.inputs import Prompt, chat_text, video_metadata
from videor1.rollout.base import Completions, EncodedPrompts, RolloutConfig, SamplingConfig, check_seeds

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput

log = logging.getLogger(__name__)

# vLLM clamps logit biases to [-100, 100]: e^-100 keeps a suppressed token from ever being drawn.
_SUPPRESS = -100.0
# A response must never contain vision placeholders (the next forward would look for their media): the
# tokens the hf engine suppresses too.
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


class VLLMEngine:
    """vLLM colocated with training; `load_weights(policy)` after each optimizer step."""

    def __init__(self, model: nn.Module, processor, config: RolloutConfig | None = None):
        config = config or RolloutConfig(engine="vllm")
        base = _base(model)
        path = Path(base.name_or_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: the vllm engine needs the policy's checkpoint directory "
                                    "(config, tokenizer and processor files); the model was not loaded "
                                    "from one")
        self.processor = processor
        tokenizer = processor.tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.eos_ids = _end_ids(base, tokenizer)
        suppressed = [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
        self.logit_bias = {i: _SUPPRESS for i in suppressed
                           if isinstance(i, int) and i != tokenizer.unk_token_id}
        self.sleep = config.vllm.sleep
        self.llm = _start(path, next(base.parameters()).dtype, config)
        self.load_weights(model)

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, *,
                 seed: int | None = None, seeds: Sequence[int] | None = None, logprobs: bool = False,
                 encoded: EncodedPrompts | None = None, stop: Callable[[], bool] | None = None,
                 settled: Callable[[Tensor, Tensor], Tensor] | None = None) -> Completions:
        """n completions per prompt (rows b * n + i); see `videor1.rollout.base.Engine.generate`.
        `encoded`, `stop` and `settled` are ignored (vLLM encodes the media itself and runs a call to its
        end)."""
        check_seeds(prompts, seed, seeds)
        if not prompts:
            raise ValueError("no prompts to generate for")
        greedy = sampling.temperature == 0.0
        params = [self.sampling_params(sampling, 1 if greedy else n, stream, logprobs)
                  for stream in _streams(len(prompts), seed, seeds)]
        self._wake()
        outputs = self.llm.generate([self.request(p) for p in prompts], params, use_tqdm=False)
        self._sleep()
        rows = [c for out in outputs for c in _children(out) for _ in range(n if greedy else 1)]
        return self._completions(rows, logprobs)

    @torch.no_grad()
    def load_weights(self, model: nn.Module) -> None:
        """Copy `model`'s weights into vLLM (in place, checkpoint names; LoRA adapters merged), then drop
        what the old weights computed: the prefix cache's KV blocks, encoder outputs, processed media."""
        self._wake(tags=["weights"])
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": policy_weights(model),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        self.llm.llm_engine.reset_encoder_cache()

    def request(self, prompt: Prompt) -> dict:
        """vLLM's prompt for `prompt`: its chat text and media, with what the processor must not redo."""
        # frames and pictures arrive sampled and resized by videor1.media, as for the HF processor
        kwargs: dict = {"do_resize": False}
        media: dict = {}
        if prompt.image is not None:
            media["image"] = prompt.image
        if prompt.video is not None:
            metadata = {**dataclasses.asdict(video_metadata(prompt.video)), "do_sample_frames": False}
            media["video"] = [(prompt.video.frames, metadata)]
            kwargs["do_sample_frames"] = False
        request = {"prompt": chat_text(self.processor, prompt), "mm_processor_kwargs": kwargs}
        return {**request, "multi_modal_data": media} if media else request

    def sampling_params(self, sampling: SamplingConfig, n: int, seed: int | None, logprobs: bool):
        """vLLM's SamplingParams for n completions of one prompt seeded `seed` (None: unseeded)."""
        from vllm import SamplingParams

        return SamplingParams(n=n, seed=seed, temperature=sampling.temperature, top_p=sampling.top_p,
                              top_k=sampling.top_k or 0, max_tokens=sampling.max_new_tokens,
                              stop_token_ids=self.eos_ids, logit_bias=self.logit_bias,
                              logprobs=0 if logprobs else None, detokenize=False)

    def _completions(self, rows: list, logprobs: bool) -> Completions:
        length = max(1, max(len(c.token_ids) for c in rows))
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        token_logprobs = torch.zeros((len(rows), length), dtype=torch.float32) if logprobs else None
        for r, c in enumerate(rows):
            tokens = list(c.token_ids)
            ids[r, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[r, :len(tokens)] = 1
            if token_logprobs is not None:
                token_logprobs[r, :len(tokens)] = torch.tensor(
                    [position[token].logprob for position, token in zip(c.logprobs, tokens)])
        finished = torch.tensor([c.finish_reason == "stop" for c in rows])
        texts = self.processor.tokenizer.batch_decode(ids.masked_fill(mask == 0, self.pad_id),
                                                      skip_special_tokens=True)
        return Completions(ids=ids, mask=mask, logprobs=token_logprobs, texts=texts, finished=finished)

    def _wake(self, tags: list[str] | None = None) -> None:
        if self.sleep and self.llm.llm_engine.is_sleeping():
            self.llm.wake_up(tags)

    def _sleep(self) -> None:
        if self.sleep:
            self.llm.sleep(level=1)


def policy_weights(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """(checkpoint name, tensor) of every weight of `model`, unwrapped from peft with its active LoRA
    adapters merged (W + delta, computed, the module untouched), full tensors of sharded ones.

    `state_dict` (not `named_parameters`) so that a tied `lm_head.weight` is sent: vLLM does not derive
    it from the embeddings on reload."""
    base = _base(model)
    if any(hasattr(p, "ds_id") for p in base.parameters()):  # DeepSpeed ZeRO-3: each rank holds a shard
        raise NotImplementedError("the vllm engine needs the full weights on each process: DeepSpeed ZeRO-3 "
                                  "partitions them; use ZeRO-1/2, DDP or FSDP2")
    deltas = {}
    if base is not model:  # peft: the base's LoRA layers hold base_layer + lora_A / lora_B
        from peft.tuners.lora import LoraLayer

        for name, module in base.named_modules():
            if isinstance(module, LoraLayer) and not module.merged and module.active_adapters:
                deltas[f"{name}.weight"] = sum(module.get_delta_weight(a) for a in module.active_adapters
                                               if a in module.lora_A)
    for name, tensor in base.state_dict(keep_vars=False).items():
        if ".lora_" in name:
            continue
        name = name.replace(".base_layer.", ".")
        if hasattr(tensor, "full_tensor"):  # a DTensor of a sharded (FSDP2) model
            tensor = tensor.full_tensor()
        yield name, tensor + deltas[name].to(tensor.dtype) if name in deltas else tensor


def _start(path: Path, dtype: torch.dtype, config: RolloutConfig) -> LLM:
    """vLLM on the checkpoint at `path`, in this process. Not `load_format="dummy"`: it randomises buffers
    that no push restores (the rotary embeddings' cos / sin tables)."""
    # in-process engine core: the weight push passes tensors, not a copy through another process
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default of 4 is a lot here
    from vllm import LLM

    options = config.vllm
    kwargs = {"gpu_memory_utilization": options.gpu_memory_utilization} if torch.cuda.is_available() else {}
    if options.sleep:
        kwargs["enable_sleep_mode"] = True
    return LLM(model=str(path), dtype=str(dtype).removeprefix("torch."), enforce_eager=True,
               max_model_len=options.max_model_len, limit_mm_per_prompt={"image": 1, "video": 1},
               logprobs_mode="processed_logprobs", seed=0, **kwargs)


def _streams(count: int, seed: int | None, seeds: Sequence[int] | None) -> list[int | None]:
    """Each prompt's base seed (its n completions use base .. base + n - 1), well apart for near seeds."""
    if seeds is None and seed is None:
        return [None] * count
    keys = [[s] for s in seeds] if seeds is not None else [[seed, b] for b in range(count)]
    return [int(np.random.SeedSequence(key).generate_state(1)[0] >> 1) for key in keys]


def _children(output: RequestOutput) -> list:
    """A request's completions in child order (vLLM lists them as they finish)."""
    return sorted(output.outputs, key=lambda c: c.index)


def _end_ids(model: nn.Module, tokenizer) -> list[int]:
    """The tokens that end a response: the generation config's, <|im_end|> and the tokenizer's eos."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None) if config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    for token in ("<|im_end|>", tokenizer.eos_token):
        i = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(i, int) and i != tokenizer.unk_token_id and i not in ids:
            ids.append(i)
    return ids


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model
