"""Rollouts with Hugging Face `generate`: several prompts per call, each with its own media."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from videor1.models.logprobs import selective_log_softmax
from videor1.models.vision import MODALITIES, shallow_copy
from videor1.rollout.base import Completions, SamplingConfig


class HFEngine:
    """`model.generate` on the policy (unwrapped from DDP), vision embeddings passed in when given."""

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        self.eos_ids = _eos_ids(model, processor)
        self.pad_id = processor.tokenizer.pad_token_id
        # a response must never contain vision placeholders: the next forward would look for their media
        self.suppressed = [processor.tokenizer.convert_tokens_to_ids(t) for t in
                           ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")]
        self.suppressed = [i for i in self.suppressed if isinstance(i, int) and i != processor.tokenizer.unk_token_id]

    @torch.no_grad()
    def generate(self, batch, n: int, sampling: SamplingConfig, mm_encoder_outputs: dict | None = None,
                 seed: int | None = None, logprobs: bool = False, stop: Callable[[], bool] | None = None
                 ) -> Completions:
        """`stop`: asked after every decoding step; True ends every row there (a cancelled request)."""
        inputs = {k: v for k, v in batch.items() if k not in ("video_metadata",)}
        if mm_encoder_outputs is not None:
            for pixels, _ in MODALITIES.values():
                inputs.pop(pixels, None)
            inputs["mm_encoder_outputs"] = shallow_copy(mm_encoder_outputs)
        greedy = sampling.temperature == 0.0
        options = dict(do_sample=not greedy, max_new_tokens=sampling.max_new_tokens, num_return_sequences=n,
                       return_dict_in_generate=True, output_logits=logprobs, eos_token_id=self.eos_ids,
                       pad_token_id=self.pad_id, use_cache=True, suppress_tokens=self.suppressed)
        if not greedy:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0)
        if stop is not None:
            options["stopping_criteria"] = [_stop_criterion(stop)]
        was_training = self.model.training
        self.model.eval()
        with _own_rng(seed):
            out = self.model.generate(**inputs, **options)
        self.model.train(was_training)

        prompt_len = batch["input_ids"].shape[1]
        ids = out.sequences[:, prompt_len:]
        mask = _response_mask(ids, self.eos_ids)
        ids = ids.masked_fill(mask == 0, self.pad_id)
        token_logprobs = None
        if logprobs:  # (B*n, T, V) raw logits: kept only on request, they are large at real vocabularies
            scale = sampling.temperature if not greedy else 1.0
            token_logprobs = selective_log_softmax(torch.stack(out.logits, dim=1), ids, scale) * mask
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        finished = torch.isin(ids, torch.tensor(self.eos_ids, device=ids.device)).any(dim=1)
        return Completions(ids=ids, mask=mask, logprobs=token_logprobs, texts=texts, finished=finished)


def _stop_criterion(stop: Callable[[], bool]):
    """A transformers StoppingCriteria that ends all rows at once when `stop()` is true."""
    from transformers import StoppingCriteria

    class StopAll(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:  # (N, T) -> (N,)
            return torch.full((input_ids.shape[0],), stop(), dtype=torch.bool, device=input_ids.device)

    return StopAll()


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


@contextlib.contextmanager
def _own_rng(seed: int | None):
    """Sample from a stream of its own, so that whether this call happens leaves later draws unchanged."""
    if seed is None:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
