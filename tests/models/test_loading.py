"""Loading checkpoints: family from config.json, dtype, what trains (full, frozen vision, LoRA), reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from videor1.media import FrameSampling, read_video
from videor1.models import (
    LANGUAGE_LINEARS,
    SIZES,
    LoraOptions,
    ModelOptions,
    Prompt,
    build_tiny,
    build_tokenizer,
    chat_template,
    encode,
    load_model,
    load_processor,
    load_reference,
    model_family,
    reference_context,
    tiny_config,
    trainable_summary,
    vision_module,
)
from videor1.models.compat import is_activation_checkpointing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mini"
VIDEO = EXAMPLES / "videos" / "right_red.mp4"
TEXTS = ["Which direction does the square move? left right up down <think> </think> <answer> </answer>"] * 20


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {arch: build_tiny(root / arch, TEXTS, arch, min_pixels=4 * factor**2, max_pixels=9 * factor**2)
            for arch, factor in (("qwen2_5_vl", 28), ("qwen3_vl", 32))}


def _video_batch(path: Path, arch: str):
    factor = 32 if arch == "qwen3_vl" else 28
    clip = read_video(VIDEO, FrameSampling(nframes=4, factor=factor, min_pixels=4 * factor**2,
                                           max_pixels=9 * factor**2))
    processor = load_processor(path)
    batch = encode(processor, [Prompt("Which direction?", video=clip)], targets=["<answer>right</answer>"])
    batch["labels"] = batch["input_ids"].clone()
    return batch


def _lora_names(model) -> list[str]:
    from peft.tuners.lora import LoraLayer

    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


# -- family and errors ---------------------------------------------------------------------------------------

def test_family_comes_from_the_config_not_the_path(checkpoints, tmp_path):
    misleading = shutil.copytree(checkpoints["qwen2_5_vl"], tmp_path / "Qwen3-VL-8B-Instruct")
    assert model_family(misleading) == "qwen2_5_vl"
    assert model_family(misleading / "config.json") == "qwen2_5_vl"
    assert model_family(checkpoints["qwen3_vl"]) == "qwen3_vl"
    model = load_model(ModelOptions(path=misleading, dtype="float32"))
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model_family(model.config) == "qwen2_5_vl"


def test_unknown_model_type_is_a_clear_error(checkpoints, tmp_path):
    llama = shutil.copytree(checkpoints["qwen2_5_vl"], tmp_path / "llama")
    config = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(ValueError, match=r"model_type 'llama' is not supported.*qwen2_vl, qwen2_5_vl, qwen3"):
        load_model(ModelOptions(path=llama))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        model_family(tmp_path / "nowhere")


def test_missing_processor_is_a_clear_error(checkpoints, tmp_path):
    weights_only = tmp_path / "weights_only"
    weights_only.mkdir()
    shutil.copy(checkpoints["qwen2_5_vl"] / "config.json", weights_only)
    with pytest.raises(FileNotFoundError, match="weights_only"):
        load_processor(weights_only)
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        load_processor(tmp_path / "nowhere")


def test_options_reject_unknown_fields_and_bad_values(tmp_path):
    with pytest.raises(ValidationError, match="freeze_visual"):
        ModelOptions(path=tmp_path, freeze_visual=True)
    with pytest.raises(ValidationError, match="dtype"):
        ModelOptions(path=tmp_path, dtype="float64")
    with pytest.raises(ValidationError, match="r"):
        LoraOptions(r=0)


# -- dtype and device ----------------------------------------------------------------------------------------

def test_dtype_and_device(checkpoints):
    path = checkpoints["qwen3_vl"]
    bf16 = load_model(ModelOptions(path=path), device="cpu")  # bfloat16 is the default
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in bf16.parameters()} == {"cpu"}
    fp32 = load_model(ModelOptions(path=path, dtype="float32", attn_implementation="eager"))
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
    assert fp32.config._attn_implementation == "eager"


# -- what trains ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("train_merger", [True, False])
def test_freeze_vision_keeps_the_merger_trainable_when_asked(checkpoints, arch, train_merger):
    model = load_model(ModelOptions(path=checkpoints[arch], freeze_vision=True, train_merger=train_merger))
    summary = trainable_summary(model)
    assert summary["vision"]["trainable"] == 0 < summary["vision"]["total"]
    assert summary["merger"]["trainable"] == (summary["merger"]["total"] if train_merger else 0)
    assert summary["language_model"]["trainable"] == summary["language_model"]["total"] > 0
    parts = sum(summary[part]["total"] for part in ("vision", "merger", "language_model", "lm_head"))
    assert parts == summary["all"]["total"]  # each parameter in exactly one part (lm_head tied to embeddings)
    visual = vision_module(model)
    assert not visual.patch_embed.proj.weight.requires_grad
    if arch == "qwen3_vl":  # the deepstack mergers feed the language model too
        assert all(p.requires_grad == train_merger for p in visual.deepstack_merger_list.parameters())


def test_full_fine_tuning_trains_everything(checkpoints):
    summary = trainable_summary(load_model(ModelOptions(path=checkpoints["qwen2_5_vl"])))
    assert all(part["trainable"] == part["total"] for part in summary.values())


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_lora_adapts_only_the_language_model_linears(checkpoints, arch):
    model = load_model(ModelOptions(path=checkpoints[arch], dtype="float32", lora=LoraOptions(r=4)))
    names = _lora_names(model)
    assert len(names) == SIZES["tiny"].layers * len(LANGUAGE_LINEARS)
    assert all(".language_model.layers." in name for name in names)
    assert {name.rsplit(".", 1)[1] for name in names} == set(LANGUAGE_LINEARS)
    assert not _lora_names(vision_module(model))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    summary = trainable_summary(model)
    assert summary["all"]["trainable"] == summary["language_model"]["trainable"] > 0
    assert summary["vision"]["trainable"] == summary["merger"]["trainable"] == 0

    # A training step moves the adapters and nothing else.
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    model(**_video_batch(checkpoints[arch], arch)).loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and changed <= set(trainable)


def test_lora_layer_names_stay_inside_the_language_model(checkpoints):
    # Qwen2.5-VL's vision blocks also have gate/up/down_proj: a name list must not reach them.
    path = checkpoints["qwen2_5_vl"]
    model = load_model(ModelOptions(path=path, lora=LoraOptions(target_modules=["gate_proj"])))
    names = _lora_names(model)
    assert len(names) == SIZES["tiny"].layers
    assert all(".language_model." in name and name.endswith("gate_proj") for name in names)
    with pytest.raises(ValueError, match="vision tower"):
        load_model(ModelOptions(path=path, lora=LoraOptions(target_modules=r".*mlp\.up_proj")))


# -- reference policy ----------------------------------------------------------------------------------------

def test_reference_is_the_frozen_base_and_matches_a_lora_policy_with_adapters_off(checkpoints):
    path = checkpoints["qwen2_5_vl"]
    options = ModelOptions(path=path, dtype="float32", lora=LoraOptions(r=4))
    policy = load_model(options)
    reference = load_reference(options)
    assert not reference.training
    assert not any(p.requires_grad for p in reference.parameters())
    assert not _lora_names(reference)
    assert reference_context(reference) is None

    batch = _video_batch(path, "qwen2_5_vl")
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=1.0)
    policy(**batch).loss.backward()
    optimizer.step()
    policy.eval()
    with torch.no_grad():
        ref_logits = reference(**batch).logits
        trained_logits = policy(**batch).logits
        with reference_context(policy):
            off_logits = policy(**batch).logits
    assert not torch.allclose(trained_logits, ref_logits)
    torch.testing.assert_close(off_logits, ref_logits)


# -- gradient checkpointing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_gradient_checkpointing_gives_the_same_gradients_and_still_generates(checkpoints, arch):
    path = checkpoints[arch]
    batch = _video_batch(path, arch)
    grads = []
    for checkpointing in (False, True):
        options = ModelOptions(path=path, dtype="float32", gradient_checkpointing=checkpointing)
        model = load_model(options).train()
        model(**batch).loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert is_activation_checkpointing(model) and model.config.use_cache is False
    assert all(grad is not None for grad in grads[1].values())
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)

    # Checkpointing acts in train mode only: generation in eval mode keeps its KV cache.
    model.eval()
    prompt = {k: v for k, v in _video_batch(path, arch).items() if k != "labels"}
    out = model.generate(**prompt, max_new_tokens=3, do_sample=False, use_cache=True,
                         return_dict_in_generate=True)
    assert out.past_key_values is not None and out.past_key_values.get_seq_length() > 0
    assert out.sequences.shape[1] > prompt["input_ids"].shape[1]


# -- Qwen2-VL ------------------------------------------------------------------------------------------------

def test_a_qwen2_vl_checkpoint_is_recognised_and_loaded(checkpoints, tmp_path):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    from videor1.models.tiny import build_processor

    tokenizer = build_tokenizer(TEXTS, 1024)
    text = tiny_config("qwen2_5_vl", tokenizer).text_config.to_dict()
    text.pop("model_type")
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in [
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    vision = dict(depth=2, embed_dim=64, hidden_size=text["hidden_size"], num_heads=2, mlp_ratio=2,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    path = tmp_path / "not-named-like-qwen2"
    Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    base = build_processor("qwen2_5_vl", tokenizer, 4 * 28**2, 9 * 28**2)
    Qwen2VLProcessor(base.image_processor, tokenizer, base.video_processor,
                     chat_template=chat_template("qwen2_5_vl")).save_pretrained(path)

    assert model_family(path) == "qwen2_vl"
    model = load_model(ModelOptions(path=path, dtype="float32", freeze_vision=True))
    assert type(model) is Qwen2VLForConditionalGeneration
    summary = trainable_summary(model)
    assert summary["vision"]["trainable"] == 0
    assert summary["merger"]["trainable"] == summary["merger"]["total"] > 0
    batch = {k: v for k, v in _video_batch(path, "qwen2_vl").items() if k != "labels"}
    out = model.eval().generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]
