"""The shared-prefix forward: each prompt runs once for its G responses.

In a group the G sequences share their prompt (media and question); only the responses differ. The
full forward runs B*G sequences of prompt + response. Here the B prompts (all but their last token)
run once, with gradient when the caller needs it; their key/value states are repeated to the B*G
sequences, and a second forward runs the responses only, attending to that cache. It starts at the
prompt's last token, so that its logits are aligned with the response ids (the first response
token's logit is the last prompt token's) and no (B*G, T, V) tensor is concatenated.

The result equals the full forward's within float rounding (tests/models/test_prefix.py): the same
keys, values and M-RoPE positions reach every response token. Response tokens continue the text
positions of their prompt (the last prompt token's position + 1, + 2, ... on all three axes), as
`get_rope_index` numbers them when it sees prompt + response as one sequence.

Gradient checkpointing: transformers drops a cache under checkpointing, because replaying a layer in
the backward pass would append to it a second time. The two caches here never grow on a replay (the
prompt pass overwrites what it records, the response pass reads its prefix and stores nothing), so
the decoder layers are told to keep them for the two calls.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import Tensor
from transformers.cache_utils import Cache, DynamicLayer

from videor1.models.compat import cache_argument

log = logging.getLogger(__name__)

# Attention kernels whose masked, cached path has been checked exact against the full forward.
_EXACT_ATTENTION = ("sdpa", "eager")
_warned: set[str] = set()


class _RecordingLayer(DynamicLayer):
    """The prompt pass: keeps the layer's keys and values (B, heads, P-1, d), returns them unchanged.
    A checkpointing replay overwrites them with equal values instead of appending.

    `owner`: the decoder layer when FSDP2 shards it. FSDP gathers a layer's weights for the backward
    when the gradient reaches the layer's outputs; the response pass's gradient enters the prompt pass
    through these keys and values instead, so their first gradient gathers the weights itself."""

    def __init__(self, owner=None):
        super().__init__()
        self.owner = owner

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.owner is not None:
            for states in (key_states, value_states):
                if states.requires_grad:
                    states.register_hook(self._gather)
        self.keys, self.values = key_states, value_states
        return key_states, value_states

    def _gather(self, grad: Tensor) -> Tensor:
        self.owner.unshard()  # a no-op when already gathered
        return grad


class _PrefixLayer(DynamicLayer):
    """The response pass: the prompt's keys and values (B*G, heads, P-1, d) before the new ones; stores
    nothing, so a replay sees the same prefix."""

    def __init__(self, keys: Tensor, values: Tensor):
        super().__init__()
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


class _ReservedLayer(DynamicLayer):
    """Generation after `prefill`: the prompts' keys and values repeated to (B*n, heads, P-1, d) in a
    buffer with room for `room` more positions. Each step writes its keys and values in place and
    returns views of the filled part; DynamicLayer instead concatenates the whole cache into a new
    tensor every token (17 % of generation at bench/rl_vs_trl.py's shapes). Past the room it grows by
    doubling."""

    def __init__(self, keys: Tensor, values: Tensor, copies: int, room: int):
        """keys, values: (B, heads, P-1, d) of the B prompts, each repeated `copies` times."""
        super().__init__()
        self.device, self.is_initialized, self.length = keys.device, True, keys.shape[-2]
        self._keys, self._values = (_reserve(states, self.length + room, copies) for states in (keys, values))
        self.keys, self.values = self._keys[..., :self.length, :], self._values[..., :self.length, :]

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            self._keys, self._values = (_reserve(buffer[..., :self.length, :], 2 * end)
                                        for buffer in (self._keys, self._values))
        self._keys[..., self.length:end, :] = key_states
        self._values[..., self.length:end, :] = value_states
        self.length = end
        self.keys, self.values = self._keys[..., :end, :], self._values[..., :end, :]
        return self.keys, self.values


def _reserve(states: Tensor, capacity: int, copies: int = 1) -> Tensor:
    """A (B*copies, heads, capacity, d) buffer that starts with `states` (B, heads, L, d), each row
    repeated `copies` times in a row (written once, by broadcasting)."""
    rows, heads, length, width = states.shape
    buffer = states.new_empty(rows, copies, heads, capacity, width)
    buffer[..., :length, :] = states.unsqueeze(1)
    return buffer.view(rows * copies, heads, capacity, width)


def _sharded_layers(model, count: int) -> list:
    """Per decoder layer, the layer itself where FSDP2 shards it (None elsewhere)."""
    from torch.distributed.fsdp import FSDPModule

    layers = getattr(_base(model).model.language_model, "layers", [])
    return [layer if isinstance(layer, FSDPModule) else None for layer in layers] or [None] * count


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported_reason(model, batch) -> str | None:
    """Why the shared-prefix forward cannot be used for `model` and `batch` (None: it can)."""
    base = _base(model)
    attention = getattr(base.config, "_attn_implementation", None)
    if attention not in _EXACT_ATTENTION:
        return f"attention implementation {attention!r} is not checked exact with a prefilled cache " \
               f"(supported: {', '.join(_EXACT_ATTENTION)})"
    for module in base.modules():
        kind = type(module).__name__
        if kind == "FullyShardedDataParallel":
            return "FSDP1-wrapped model: two forwards per backward are verified under FSDP2 only"
        if getattr(module, "gradient_checkpointing", False) and module.training:
            checkpoint = getattr(module, "_gradient_checkpointing_func", None)
            if getattr(checkpoint, "keywords", {}).get("use_reentrant", False):
                return "reentrant gradient checkpointing: no gradient would reach the prompt's cache"
    if any(hasattr(p, "ds_id") for p in base.parameters()):
        return "DeepSpeed ZeRO-3 partitioned parameters: two forwards per backward are not verified"
    if batch["input_ids"].shape[1] < 2:
        return "prompts of one token"
    if (batch["mm_token_type_ids"][:, -1] != 0).any():
        return "a prompt that ends in a vision token"
    return None


def shared_prefix_supported(model, batch) -> bool:
    """Whether `prefix_logits` can run; logs why not, once per reason."""
    reason = unsupported_reason(model, batch)
    if reason is not None and reason not in _warned:
        _warned.add(reason)
        log.warning("shared-prefix forward off (each sequence runs its whole prompt): %s", reason)
    return reason is None


def prompt_positions(model, batch) -> Tensor | None:
    """The prompts' M-RoPE position ids (3, B, P), as the full forward computes them; None for a batch
    without images or videos (the model then numbers tokens 0..P-1, padding included)."""
    if batch.get("image_grid_thw") is None and batch.get("video_grid_thw") is None:
        return None
    positions, _ = _base(model).model.get_rope_index(batch["input_ids"], batch["mm_token_type_ids"],
                                                    attention_mask=batch["attention_mask"], **_timing(batch))
    return positions


def _timing(batch) -> dict:
    """The batch's grids and video timing, which M-RoPE reads."""
    return {key: batch[key] for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")
            if key in batch}


@contextlib.contextmanager
def _cache_under_checkpointing(model):
    """Let the decoder layers keep the two replay-safe caches when they checkpoint."""
    layers = [m for m in _base(model).modules() if getattr(m, "gradient_checkpointing", False)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class's False


def prefix_logits(model, batch, completion_ids: Tensor, completion_mask: Tensor, group_size: int,
                  vision: dict) -> Tensor:
    """Logits (B*G, T, V) of the completions' tokens, row b*G+i = response i of prompt b: logits[:, t]
    predicts completion_ids[:, t]. Equal to the full forward's `logits[:, P-1:-1]`.

    batch: the B prompts, left-padded (input_ids, attention_mask, mm_token_type_ids (B, P), grids);
    completion_ids / completion_mask: (B*G, T), right-padded; vision: the B prompts' `mm_encoder_outputs`
    (each image / video once, not repeated G times). Gradients flow into the prompt pass.
    """
    G, T = group_size, completion_ids.shape[1]
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"]
    layers = _base(model).config.get_text_config().num_hidden_layers
    positions = prompt_positions(model, batch)
    recorded = Cache(layers=[_RecordingLayer(owner) for owner in _sharded_layers(model, layers)])
    with _cache_under_checkpointing(model):
        # 1. The prompts without their last token, once each: only their keys and values are used.
        #    Through the whole model (one logit computed), so that FSDP gathers its embeddings.
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], mm_token_type_ids=types[:, :-1],
              mm_encoder_outputs=dict(vision), **{cache_argument(): recorded}, logits_to_keep=1,
              position_ids=None if positions is None else positions[..., :-1], use_cache=True,
              **_timing(batch))
        prefix = Cache(layers=[_PrefixLayer(r.keys.repeat_interleave(G, 0), r.values.repeat_interleave(G, 0))
                               for r in recorded.layers])
        # 2. Each sequence from the prompt's last token on: [last prompt token, response[:-1]] (B*G, T).
        tail = torch.cat([ids[:, -1:].repeat_interleave(G, 0), completion_ids[:, :-1]], dim=1)
        attention = torch.cat([mask.repeat_interleave(G, 0), completion_mask[:, :-1]], dim=1)
        P = ids.shape[1]
        if positions is None:
            start = torch.full((3, ids.shape[0], 1), P - 1, dtype=torch.long, device=ids.device)
        else:
            start = positions[..., -1:]
        tail_positions = start.repeat_interleave(G, 1) + torch.arange(T, device=ids.device)
        out = model(input_ids=tail, attention_mask=attention, mm_token_type_ids=torch.zeros_like(tail),
                    position_ids=tail_positions, **{cache_argument(): prefix}, use_cache=True)
    return out.logits


@torch.no_grad()
def prefill(model, batch, vision: dict, n: int, room: int = 0) -> tuple[Cache, Tensor] | None:
    """Generation's prefill, once per prompt instead of once per response: the B prompts without their
    last token run once, their cache is repeated to B*n rows (row b*n+i: response i of prompt b), and the
    M-RoPE offsets (B*n, 1) to set as the model's `rope_deltas` are returned with it. `generate` on the
    B*n repeated prompts with this cache then runs their last token and decodes as after its own prefill.
    `room`: positions reserved after the prompt for the tokens to come (the last prompt token and the
    new ones), written in place as they are decoded.

    None where that would not be exact: prompts without media (generate numbers their tokens its own
    way), a prompt whose last token is not its largest position (M-RoPE's temporal positions of a long
    video ahead of a short question), or a setting `unsupported_reason` names.
    """
    if "image_grid_thw" not in batch and "video_grid_thw" not in batch:
        return None
    if unsupported_reason(model, batch) is not None:
        return None
    from transformers import DynamicCache

    from videor1.models.compat import cache_argument

    ids, mask = batch["input_ids"], batch["attention_mask"]
    inner, types = _base(model).model, batch["mm_token_type_ids"]
    positions, deltas = inner.get_rope_index(ids, types, attention_mask=mask, **_timing(batch))
    # generate places the last prompt token at its cumulative position + delta, i.e. the largest position
    if (positions[..., -1] != positions.amax(dim=(0, 2))).any():
        return None
    cache = DynamicCache(config=_base(model).config)
    model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], mm_token_type_ids=types[:, :-1],
          mm_encoder_outputs=dict(vision), position_ids=positions[..., :-1], use_cache=True,
          **{cache_argument(): cache}, logits_to_keep=1, **_timing(batch))
    cache = Cache(layers=[_ReservedLayer(layer.keys, layer.values, n, room) for layer in cache.layers])
    return cache, deltas.repeat_interleave(n, 0)


def prefilled_inputs(model, batch, vision: dict, n: int, new_tokens: int = 0) -> dict | None:
    """`generate`'s inputs for n responses per prompt from `prefill`: the prompts repeated n times
    (input_ids, attention_mask, mm_token_type_ids (B*n, P)) with the cache of their first P-1 tokens and
    room for the last one and `new_tokens` more, to generate with num_return_sequences=1; the model's
    `rope_deltas` are set to match. None where `prefill` is (generate then prefills the n copies itself)."""
    from videor1.models.compat import cache_argument

    prefilled = prefill(model, batch, vision, n, room=1 + new_tokens)
    if prefilled is None:
        return None
    cache, deltas = prefilled
    _base(model).model.rope_deltas = deltas  # generate places the uncached tokens from these offsets
    rows = {key: batch[key].repeat_interleave(n, 0)
            for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
    return {**rows, cache_argument(): cache}
