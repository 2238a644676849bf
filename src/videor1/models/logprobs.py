"""Log-probs of responses under a model: the training forward that the policy, pi_old and the reference
share, and the one log-softmax that generation and training both take of logits.

Vision embeddings are computed once per prompt (`videor1.models.vision.encode_vision`) and shared by
the G responses of its group.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videor1.models.prefix import prefix_logits, shared_prefix_supported
from videor1.models.vision import encode_vision, repeat_items


def selective_log_softmax(logits: Tensor, ids: Tensor, temperature: float = 1.0,
                          rows_per_chunk: int = 4) -> Tensor:
    """log softmax(logits / temperature) at `ids`: (N, T, V), (N, T) -> (N, T), in float32, a few rows
    at a time so that the float32 copy of a (rows, T, V) slice is all that is materialised."""
    out = [torch.log_softmax(chunk.float() / temperature, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
           for chunk, index in zip(logits.split(rows_per_chunk), ids.split(rows_per_chunk))]
    return torch.cat(out)


def sequence_logprobs(model, batch, completion_ids: Tensor, completion_mask: Tensor, group_size: int,
                      temperature: float, vision: dict, shared_prefix: bool = True) -> Tensor:
    """Per-token log-probs (B*G, T) of the completions after their prompts, under `temperature`.

    batch: the B prompts (left-padded); completion_ids / mask: (B*G, T); vision: the B prompts'
    mm_encoder_outputs, shared by the G sequences of each group. `mm_token_type_ids` goes with the
    ids: without it Qwen2.5-VL silently falls back to 1-D positions. `shared_prefix`: each prompt runs
    once for its G responses (models/prefix.py, equal within float rounding) where the model allows it.
    """
    if shared_prefix and shared_prefix_supported(model, batch):
        logits = prefix_logits(model, batch, completion_ids, completion_mask, group_size, vision)
        return selective_log_softmax(logits, completion_ids, temperature)
    G = group_size
    ids = torch.cat([batch["input_ids"].repeat_interleave(G, 0), completion_ids], dim=1)
    attention = torch.cat([batch["attention_mask"].repeat_interleave(G, 0), completion_mask], dim=1)
    types = torch.cat([batch["mm_token_type_ids"].repeat_interleave(G, 0), torch.zeros_like(completion_ids)],
                      dim=1)
    timing = {key: batch[key].repeat_interleave(G, 0) for key in ("image_grid_thw", "video_grid_thw",
                                                                   "second_per_grid_ts") if key in batch}
    length = completion_ids.shape[1]
    out = model(input_ids=ids, attention_mask=attention, mm_token_type_ids=types,
                mm_encoder_outputs=repeat_items(vision, G), logits_to_keep=length + 1, use_cache=False,
                **timing)
    return selective_log_softmax(out.logits[:, :-1], completion_ids, temperature)


class GroupedPolicy(nn.Module):
    """The policy forward over B groups of G responses, each prompt's media encoded once, inside
    `forward` so that DDP / FSDP see every parameter used (a trainable merger included)."""

    def __init__(self, model: nn.Module, shared_prefix: bool = True):
        super().__init__()
        self.model = model
        self.shared_prefix = shared_prefix

    def forward(self, batch, completion_ids: Tensor, completion_mask: Tensor, group_size: int,
                temperature: float, vision: dict | None = None) -> Tensor:
        """(B*G, T) log-probs of the completions; `vision` None: encoded here (trainable vision)."""
        if vision is None:
            vision = encode_vision(self.model, batch)
        return sequence_logprobs(self.model, batch, completion_ids, completion_mask, group_size, temperature,
                                 vision, self.shared_prefix)
