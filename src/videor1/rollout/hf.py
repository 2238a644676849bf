"""The `hf` engine: Hugging Face `generate` in this process, several prompts per call, each with its media.

Vision embeddings are computed once per prompt and shared by its n responses (or taken from
`encoded`, where the trainer already computed them, and where a shuffled group gets them permuted).

Random streams. With `seed`, one torch.Generator seeded with it samples every row of the call, without
touching the global random state. With `seeds`, the n rows of prompt b draw from a generator of their
own, so prompt b's completions do not depend on the other prompts of the call. Both run as the only
logits processor of `generate` (which inspects every processor's signature every token): it sets the
vision tokens to -inf, applies the sampling warpers (temperature, top-k, top-p: transformers' own
classes, in transformers' order), draws each row's token from its stream by inverse transform (one
uniform per row against the row's cumulative distribution, in float64) and returns scores that put
all the probability on that token, which `generate` then picks greedily. `torch.multinomial` draws the
same distribution but with one exponential variate per vocabulary entry: at a 1k vocabulary and 32
rows it took 1.1 ms a token against 0.05 ms, twice a token when transformers sampled again from the
one-hot scores (bench/rl_vs_trl.py's profile). Rows that have ended keep drawing (transformers pads
them); the draws after a row's end token do not change its completion.
Without `seed` or `seeds`, transformers samples from the global random state as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from videor1.models.inputs import Prompt, encode
from videor1.models.logprobs import selective_log_softmax
from videor1.models.prefix import prefilled_inputs
from videor1.models.vision import MODALITIES, encode_vision, shallow_copy
from videor1.rollout.base import Completions, EncodedPrompts, SamplingConfig, check_seeds

Dtype = Literal["auto", "float32", "bfloat16", "float16"]

# A response must never contain vision placeholders: the next forward would look for their media.
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


class HFEngine:
    """`model.generate` on `model` (the policy itself, unwrapped from DDP / FSDP wrappers)."""

    prefill_once = True  # False: generate prefills each of the n copies of a prompt itself

    def __init__(self, model: nn.Module, processor):
        self.model = model
        self.processor = processor
        tokenizer = processor.tokenizer
        self.eos_ids = _eos_ids(model, processor)
        self.pad_id = tokenizer.pad_token_id
        suppressed = [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
        self.suppressed = [i for i in suppressed if isinstance(i, int) and i != tokenizer.unk_token_id]

    @classmethod
    def from_checkpoint(cls, model_dir: str | Path, dtype: Dtype = "auto",
                        device: str | None = None) -> HFEngine:
        """A checkpoint (real Qwen-VL or tiny) in eval mode on `device` (default: cuda if there is one)."""
        from videor1.models.loading import ModelOptions, load_model, load_processor

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":  # bfloat16 is the paper's dtype; on a CPU it is slow and gains nothing
            dtype = "float32" if device == "cpu" else "bfloat16"
        model = load_model(ModelOptions(path=Path(model_dir), dtype=dtype), device)
        return cls(model.eval(), load_processor(model_dir))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def load_weights(self, model: nn.Module) -> None:
        """Nothing to copy: the engine samples from the policy module itself."""
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, *,
                 seed: int | None = None, seeds: Sequence[int] | None = None, logprobs: bool = False,
                 encoded: EncodedPrompts | None = None, stop: Callable[[], bool] | None = None,
                 settled: Callable[[Tensor, Tensor], Tensor] | None = None) -> Completions:
        """n completions per prompt (rows b * n + i); see `videor1.rollout.base.Engine.generate`."""
        check_seeds(prompts, seed, seeds)
        was_training = self.model.training
        self.model.eval()
        try:
            if encoded is None:
                encoded = EncodedPrompts(encode(self.processor, list(prompts)).to(self.device))
            batch = encoded.batch
            if batch["input_ids"].shape[0] != len(prompts):
                raise ValueError(f"encoded holds {batch['input_ids'].shape[0]} prompts, not {len(prompts)}")
            vision = encoded.vision if encoded.vision is not None else encode_vision(self.model, batch)
            # each prompt prefilled once, its cache repeated to its n rows (models/prefix.py), where exact
            inputs = (prefilled_inputs(self.model, batch, vision, n, sampling.max_new_tokens)
                      if self.prefill_once and n > 1 else None)
            # prefilled: the n rows of each prompt are already there
            options = self._options(sampling, n if inputs is None else 1, n, seed, seeds, logprobs, stop)
            if settled is not None:
                prompt_length = batch["input_ids"].shape[1]
                options["stopping_criteria"].append(_Settled(settled, prompt_length, self.eos_ids))
            if inputs is None:
                inputs = {k: v for k, v in batch.items() if k != "video_metadata" and k not in _PIXELS}
                inputs["mm_encoder_outputs"] = shallow_copy(vision)  # generate expands it in place
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                out = self.model.generate(**inputs, **options)
        finally:
            self.model.train(was_training)

        ids = out.sequences[:, batch["input_ids"].shape[1]:]
        mask = _response_mask(ids, self.eos_ids)
        ids = ids.masked_fill(mask == 0, self.pad_id)
        finished = (torch.isin(ids, torch.tensor(self.eos_ids, device=ids.device)) & (mask == 1)).any(dim=1)
        token_logprobs = None
        if logprobs:  # (B*n, T, V) raw logits: kept only on request, they are large at real vocabularies
            temperature = sampling.temperature if sampling.temperature > 0 else 1.0
            token_logprobs = selective_log_softmax(torch.stack(out.logits, dim=1), ids, temperature) * mask
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return Completions(ids=ids, mask=mask, logprobs=token_logprobs, texts=texts, finished=finished)

    def _options(self, sampling: SamplingConfig, copies: int, n: int, seed: int | None,
                 seeds: Sequence[int] | None, logprobs: bool, stop: Callable[[], bool] | None) -> dict:
        """`generate`'s options; `copies`: the rows generate makes of each of its input rows (n, or 1
        where they are already there)."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        options = dict(max_new_tokens=sampling.max_new_tokens, num_return_sequences=copies,
                       return_dict_in_generate=True, output_logits=logprobs, eos_token_id=self.eos_ids,
                       pad_token_id=self.pad_id, use_cache=True, do_sample=False)
        options["stopping_criteria"] = StoppingCriteriaList([_StopWhen(stop)] if stop is not None else [])
        if sampling.temperature == 0.0:
            return {**options, "suppress_tokens": self.suppressed}
        if seed is None and seeds is None:  # the global random state, as transformers samples
            return {**options, "suppress_tokens": self.suppressed, "do_sample": True,
                    "temperature": sampling.temperature, "top_p": sampling.top_p,
                    "top_k": sampling.top_k or 0}
        streams = [_generator(s, self.device) for s in ([seed] if seeds is None else seeds)]
        rows = None if seeds is None else n  # one stream: all rows; per prompt: its n rows
        # the only processor: generate inspects each processor's signature every token (~0.2 ms each)
        processors = LogitsProcessorList([_RowStreams(sampling, streams, rows, self.suppressed)])
        if copies == 1:  # greedy on the processor's one-hot scores: the drawn token
            return {**options, "logits_processor": processors}
        # greedy refuses copies > 1: transformers samples from the one-hot scores, with no warpers of its
        # own and a draw from the global state (forked around) that can only return the drawn token
        return {**options, "do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                "logits_processor": processors}


_PIXELS = {pixels for pixels, _ in MODALITIES.values()}


class _RowStreams:
    """The logits processor of `generate` that samples: the suppressed tokens set to -inf, warpers, then
    each block of `rows` rows (None: all rows) draws its token from its own generator; the returned
    scores are 0 at the drawn token and -inf elsewhere, so that transformers' own draw can only select
    it."""

    def __init__(self, sampling: SamplingConfig, generators: list[torch.Generator], rows: int | None,
                 suppressed: Sequence[int] = ()):
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        # transformers' own warpers under the conditions and in the order `generate(do_sample=True)` uses
        self.warpers = []
        if sampling.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_k:
            self.warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
        if sampling.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
        self.generators, self.rows, self.suppressed = generators, rows, list(suppressed)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """scores: (N, V) float32 logits -> (N, V)."""
        if self.suppressed:
            scores = scores.index_fill(1, torch.tensor(self.suppressed, device=scores.device), float("-inf"))
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        rows = scores.shape[0]
        sizes = [rows] if self.rows is None else [self.rows] * (rows // self.rows)
        if sum(sizes) != rows or len(sizes) != len(self.generators):
            raise RuntimeError(f"{rows} rows for {len(self.generators)} random streams")
        uniforms = torch.cat([torch.rand(size, 1, generator=generator, dtype=torch.float64,
                                         device=scores.device)
                              for size, generator in zip(sizes, self.generators)])
        tokens = inverse_transform(torch.softmax(scores, dim=-1), uniforms)
        return torch.full_like(scores, float("-inf")).scatter_(1, tokens, 0.0)


def inverse_transform(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """(N, 1) tokens drawn from the rows of `probs` (N, V) by their uniforms (N, 1) in [0, 1): the first
    token whose cumulative probability exceeds u times the row's total. A token of probability 0 is
    never drawn: its cumulative value equals its predecessor's, which is already <= u * total."""
    cumulative = probs.to(torch.float64).cumsum(dim=-1)
    tokens = torch.searchsorted(cumulative, uniforms * cumulative[:, -1:], right=True)
    if bool((tokens == probs.shape[-1]).any()):  # u * total rounded up to the total itself (rare)
        last = (probs > 0).cumsum(dim=-1).argmax(dim=-1, keepdim=True)  # the last positive token
        tokens = torch.minimum(tokens, last)
    return tokens


class _StopWhen:
    """Stopping criterion: every row is done as soon as `stop()` says so (a cancelled request)."""

    def __init__(self, stop: Callable[[], bool]):
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), bool(self.stop()), dtype=torch.bool, device=input_ids.device)


class _Settled:
    """Stopping criterion: the rows that `settled(generated tokens, ended rows)` says may stop (the tokens
    after the prompt's `start`); transformers pads them from then on."""

    def __init__(self, settled: Callable[[Tensor, Tensor], Tensor], start: int, eos_ids: list[int]):
        self.settled, self.start, self.eos_ids = settled, start, eos_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        generated = input_ids[:, self.start:]
        ended = torch.isin(generated, torch.tensor(self.eos_ids, device=generated.device)).any(dim=1)
        return self.settled(generated, ended).to(device=input_ids.device, dtype=torch.bool)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    # manual_seed on a fresh generator gives the stream torch.manual_seed(seed) gives the default one
    return torch.Generator(device=device).manual_seed(seed)


def _eos_ids(model, processor) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end not in ids and im_end != processor.tokenizer.unk_token_id:
        ids.append(im_end)
    if processor.tokenizer.eos_token_id is not None and processor.tokenizer.eos_token_id not in ids:
        ids.append(processor.tokenizer.eos_token_id)
    return ids


def _response_mask(ids: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """1 up to and including the first end token of each row, 0 after (B*n, T)."""
    is_end = torch.isin(ids, torch.tensor(eos_ids, device=ids.device))
    ended_before = (is_end.cumsum(dim=1) - is_end.long()) > 0
    return (~ended_before).long()
