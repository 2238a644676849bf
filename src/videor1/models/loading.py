"""Loading a policy and its frozen reference from a local checkpoint directory.

The model class comes from the checkpoint's config.json (`model_type`), never from its path, so a
real Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint and a tiny one built by `videor1.models.tiny` go
through the same code. What trains is set here, once: the whole model (the paper), the language
model with the vision tower frozen (its merger optionally kept trainable), or LoRA adapters on the
language model's linear layers only.

torch, transformers and peft are imported inside the functions: configs import `ModelOptions`
without paying for them.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from videor1.models.compat import enable_activation_checkpointing

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, ProcessorMixin

log = logging.getLogger(__name__)

# model_type in config.json -> transformers class name. FAMILIES (the classes) is built on first use.
_FAMILY_CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
# The language model's linear layers in all three families (attention and MLP projections).
LANGUAGE_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def __getattr__(name: str) -> Any:
    # `FAMILIES` imports transformers' model classes (seconds): only when somebody asks for it.
    if name == "FAMILIES":
        import transformers

        families = {family: getattr(transformers, cls) for family, cls in _FAMILY_CLASSES.items()}
        globals()["FAMILIES"] = families
        return families
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LoraOptions(BaseModel):
    """LoRA adapters on the language model's linear layers (never on the vision tower)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, description="Rank of each adapter.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: list[str] | str = Field(
        default="all-linear",
        description="'all-linear' (every attention and MLP projection of the language model), a list of "
                    "layer names (e.g. [q_proj, v_proj]; matched inside the language model only), or a "
                    "regex matched by peft against full module names (must not reach the vision tower).")


class ModelOptions(BaseModel):
    """Which checkpoint to load, how, and which of its parts train."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="Local checkpoint directory (a real Qwen-VL checkpoint or a tiny one).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="bfloat16", description="Parameter dtype (the paper trains in bfloat16).")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        default="sdpa", description="Attention kernel (flash_attention_2: GPU and flash-attn package).")
    freeze_vision: bool = Field(
        default=False, description="Freeze the vision tower (patch embedding and blocks). Full fine-tuning "
                                   "only: with lora the whole base is frozen.")
    train_merger: bool = Field(
        default=True, description="With freeze_vision, keep the vision merger (projector into the language "
                                  "model; Qwen3-VL: also the deepstack mergers) trainable. Full fine-tuning "
                                  "only.")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory, ~30% slower.")
    shared_prefix: bool = Field(
        default=True, description="RL log-prob forwards (policy, pi_old, reference) run each prompt once for "
                                  "its G responses and repeat its key/value cache (exact; models/prefix.py); "
                                  "whole sequences, with one warning, where unsupported (flash_attention_2).")
    lora: LoraOptions | None = Field(
        default=None, description="Train LoRA adapters on the language model instead of the full model; "
                                  "every base weight, the vision tower and merger included, stays frozen.")


def _config_dict(path: Path) -> dict:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no config.json; expected a local checkpoint directory "
                                f"({', '.join(_FAMILY_CLASSES)}, or a tiny one from videor1.models.tiny)")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid JSON ({error})") from None


def model_family(path_or_config: str | Path | PretrainedConfig | dict) -> str:
    """The checkpoint's family ("qwen2_vl", "qwen2_5_vl" or "qwen3_vl") from config.json's model_type.

    Accepts a checkpoint directory, its config.json, a transformers config or a config dict.
    """
    if isinstance(path_or_config, (str, Path)):
        config = _config_dict(Path(path_or_config))
        source = str(path_or_config)
    else:
        config = path_or_config if isinstance(path_or_config, dict) else path_or_config.to_dict()
        source = "config"
    model_type = config.get("model_type")
    if model_type not in _FAMILY_CLASSES:
        raise ValueError(f"{source}: model_type {model_type!r} is not supported; "
                         f"videor1 loads {', '.join(_FAMILY_CLASSES)} checkpoints")
    return model_type


def load_model(options: ModelOptions, device: str | torch.device | None = None) -> PreTrainedModel:
    """The policy: the checkpoint's model class, dtype and attention set, its trainable parts chosen.

    device=None loads on the CPU (accelerate moves it later); a device loads the weights there directly.
    With `options.lora` the result is a peft model wrapping the base. With gradient checkpointing,
    generate in eval mode: in train mode transformers turns the KV cache off (slow, same tokens).
    """
    import torch
    import transformers

    family = model_family(options.path)
    model_class = getattr(transformers, _FAMILY_CLASSES[family])
    kwargs = {} if device is None else {"device_map": torch.device(device)}
    model = model_class.from_pretrained(options.path, dtype=getattr(torch, options.dtype),
                                        attn_implementation=options.attn_implementation, **kwargs)
    if options.freeze_vision:
        vision_module(model).requires_grad_(False)
        if options.train_merger:
            for merger in _mergers(vision_module(model)):
                merger.requires_grad_(True)
    if options.gradient_checkpointing:
        # Only active in train mode; generation (eval mode) still uses its KV cache when asked for it.
        enable_activation_checkpointing(model, use_reentrant=False)
        model.config.use_cache = False
    if options.lora is not None:
        model = _add_lora(model, options.lora)
    return model


def _lora_targets(target_modules: list[str] | str) -> str:
    """A peft regex (full-name match) for the language model's linear layers named in `target_modules`."""
    if isinstance(target_modules, str) and target_modules != "all-linear":
        return target_modules
    names = LANGUAGE_LINEARS if target_modules == "all-linear" else target_modules
    return r".*\blanguage_model\..*\.(" + "|".join(re.escape(name) for name in names) + r")"


def _add_lora(model: PreTrainedModel, lora: LoraOptions):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=_lora_targets(lora.target_modules))
    model = get_peft_model(model, config)  # freezes every base weight
    in_vision = [name for name, module in vision_module(model).named_modules()
                 if isinstance(module, LoraLayer)]
    if in_vision:
        raise ValueError(f"lora.target_modules {lora.target_modules!r} put adapters on the vision tower "
                         f"({', '.join(in_vision[:3])}, ...): target the language model only")
    adapted = sum(isinstance(module, LoraLayer) for module in model.modules())
    log.info("LoRA on %d language-model layers; every base weight is frozen", adapted)
    return model


def load_reference(options: ModelOptions, device: str | torch.device | None = None) -> PreTrainedModel:
    """The frozen reference policy of the KL term: the same checkpoint, in eval mode, no gradients.

    Always the base weights (no LoRA, no gradient checkpointing). For a LoRA policy the reference is
    the base with its adapters switched off, so `reference_context(policy)` gives the same log-probs
    without a second copy of the weights.
    """
    base = options.model_copy(update={"lora": None, "gradient_checkpointing": False})
    model = load_model(base, device)
    model.requires_grad_(False)
    return model.eval()


def reference_context(model):
    """For a peft (LoRA) policy, the context manager that turns its adapters off (the reference policy:
    `with reference_context(policy): ref_logits = policy(**batch).logits`); None for any other model."""
    from peft import PeftModel

    return model.disable_adapter() if isinstance(model, PeftModel) else None


def _base(model) -> PreTrainedModel:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def vision_module(model) -> torch.nn.Module:
    """The vision tower (`model.model.visual`), also through a peft wrapper."""
    inner = getattr(_base(model), "model", None)
    if inner is None or not hasattr(inner, "visual"):
        raise TypeError(f"{type(model).__name__} has no vision tower at .model.visual "
                        f"(expected a {', '.join(_FAMILY_CLASSES.values())})")
    return inner.visual


def _mergers(visual: torch.nn.Module) -> list[torch.nn.Module]:
    """The vision tower's projectors into the language model (Qwen3-VL adds one per deepstack layer)."""
    return [visual.merger, *getattr(visual, "deepstack_merger_list", [])]


def _count(params) -> dict[str, int]:
    params = list(params)
    return {"trainable": sum(p.numel() for p in params if p.requires_grad),
            "total": sum(p.numel() for p in params)}


def trainable_summary(model) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts per part: {"vision": {"trainable": n, "total": n}, ...}.

    vision: the tower without its merger(s); merger; language_model (LoRA adapters included); lm_head
    (0 when tied to the input embeddings, which language_model counts); all: the whole model.
    """
    base = _base(model)
    visual = vision_module(model)
    merger = [p for m in _mergers(visual) for p in m.parameters()]
    language = list(base.model.language_model.parameters())
    counted = {id(p) for p in merger + language}
    return {
        "vision": _count(p for p in visual.parameters() if id(p) not in counted),
        "merger": _count(merger),
        "language_model": _count(language),
        "lm_head": _count(p for p in base.lm_head.parameters() if id(p) not in counted),
        "all": _count(model.parameters()),
    }


def load_processor(path: str | Path) -> ProcessorMixin:
    """The checkpoint's processor (tokenizer, chat template, image and video processors)."""
    from transformers import AutoProcessor, ProcessorMixin

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    try:
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{path}: no processor could be loaded ({error}); a checkpoint directory "
                                "needs its tokenizer and processor files next to config.json") from None
    if not isinstance(processor, ProcessorMixin):
        raise FileNotFoundError(f"{path}: only a {type(processor).__name__} was found, no image / video "
                                "processor (processor_config.json or preprocessor_config.json)")
    return processor


def vision_factor(processor: ProcessorMixin) -> int:
    """The side multiple of frames and images for this processor: its patch size x merge size (28 for
    Qwen2/2.5-VL, 32 for Qwen3-VL), read from the checkpoint's processor, never assumed."""
    sizes = set()
    for part in ("image_processor", "video_processor"):
        sub = getattr(processor, part, None)
        if sub is not None and getattr(sub, "patch_size", None) and getattr(sub, "merge_size", None):
            sizes.add(int(sub.patch_size) * int(sub.merge_size))
    if len(sizes) != 1:
        raise ValueError(f"{type(processor).__name__}: cannot tell the vision side multiple (patch_size x "
                         f"merge_size of its image and video processors: {sorted(sizes) or 'none'})")
    return sizes.pop()
