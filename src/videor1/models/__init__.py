"""Models: loading checkpoints (loading.py), building tiny offline ones (tiny.py), prompts into inputs."""

from typing import Any

from videor1.models.inputs import Prompt, encode
from videor1.models.loading import (
    LANGUAGE_LINEARS,
    LoraOptions,
    ModelOptions,
    load_model,
    load_processor,
    load_reference,
    model_family,
    reference_context,
    trainable_summary,
    vision_module,
)
from videor1.models.tiny import (
    REASONING_TOKENS,
    SIZES,
    SPECIAL_TOKENS,
    Arch,
    TinySize,
    build_processor,
    build_tiny,
    build_tiny_from_records,
    build_tokenizer,
    chat_template,
    corpus_from_records,
    tiny_config,
)


def __getattr__(name: str) -> Any:
    # FAMILIES imports transformers' model classes: resolved on first use, like in loading.py.
    if name == "FAMILIES":
        from videor1.models import loading

        return loading.FAMILIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAMILIES",
    "LANGUAGE_LINEARS",
    "REASONING_TOKENS",
    "SIZES",
    "SPECIAL_TOKENS",
    "Arch",
    "LoraOptions",
    "ModelOptions",
    "Prompt",
    "TinySize",
    "build_processor",
    "build_tiny",
    "build_tiny_from_records",
    "build_tokenizer",
    "chat_template",
    "corpus_from_records",
    "encode",
    "load_model",
    "load_processor",
    "load_reference",
    "model_family",
    "reference_context",
    "tiny_config",
    "trainable_summary",
    "vision_module",
]
