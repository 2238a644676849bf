"""Vision embeddings computed once and reused: by the G sequences of a group, by the policy and the
reference forwards, and (permuted) by the shuffled group.

transformers 5 accepts precomputed vision outputs as `mm_encoder_outputs` = {"image": out, "video": out}
where `out.pooler_output` holds one (tokens, hidden) tensor per image / video, in the order their
placeholders appear in the batch (Qwen3-VL adds `deepstack_features`: one such tuple per layer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

MODALITIES = {"image": ("pixel_values", "image_grid_thw"), "video": ("pixel_values_videos", "video_grid_thw")}


def encode_vision(model, batch) -> dict:
    """The batch's images and videos through the vision tower in ONE call: {"image": out, "video": out}.

    One call whatever the batch holds: under sharded parameters (FSDP, ZeRO-3) each tower call gathers
    the weights with a collective, so a process that encoded images and videos separately would call it
    twice while another calls it once, and both would wait forever (docs/training.md, lockstep). Qwen's
    towers encode each image / video on its own (attention within each item's grid), so one call over
    the concatenated patches gives each item the embeddings of a call of its own.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    present = [(modality, batch[pixels], batch[grid]) for modality, (pixels, grid) in MODALITIES.items()
               if batch.get(pixels) is not None]
    if not present:
        return {}
    # get_image_features and get_video_features run the same tower (patches of the same size)
    pixels = torch.cat([p for _, p, _ in present])
    grids = torch.cat([g for _, _, g in present])
    out = base.get_image_features(pixels, grids, return_dict=True)
    out.last_hidden_state = None  # unmerged patch states: not used downstream, free the memory
    outputs, first = {}, 0
    for modality, _, grid in present:
        items = slice(first, first + len(grid))
        fields = {"pooler_output": tuple(out.pooler_output[items])}
        if getattr(out, "deepstack_features", None) is not None:
            fields["deepstack_features"] = [tuple(layer[items]) for layer in out.deepstack_features]
        kept = {k: v for k, v in out.items() if k != "last_hidden_state"}
        outputs[modality] = type(out)(**{**kept, **fields})
        first += len(grid)
    return outputs


def select_items(outputs: dict, modality: str, indices: list[int],
                 transform: Callable[[int, Tensor], Tensor] | None = None) -> dict:
    """A new `mm_encoder_outputs` whose `modality` items are `indices` of the old ones (repeats allowed),
    each optionally transformed (e.g. rows permuted for a shuffled video): transform(old_index, rows)."""
    if modality not in outputs:
        return dict(outputs)
    old = outputs[modality]

    def pick(items):
        return tuple(transform(i, items[i]) if transform else items[i] for i in indices)

    fields = {"pooler_output": pick(old.pooler_output)}
    if getattr(old, "deepstack_features", None) is not None:
        fields["deepstack_features"] = [pick(layer) for layer in old.deepstack_features]
    new = type(old)(**{**{k: v for k, v in old.items() if k != "last_hidden_state"}, **fields})
    return {**outputs, modality: new}


def repeat_items(outputs: dict, times: int) -> dict:
    """Each image / video `times` times in a row: for the B*G sequences of B groups of G."""
    for modality in list(outputs):
        count = len(outputs[modality].pooler_output)
        outputs = select_items(outputs, modality, [i for i in range(count) for _ in range(times)])
    return outputs


def shallow_copy(outputs: dict) -> dict:
    """New output objects holding the same tensors. `generate` expands `mm_encoder_outputs` in place
    for `num_return_sequences`; a copy keeps the caller's embeddings as they were."""
    return {modality: type(out)(**out) for modality, out in outputs.items()}


def has_trainable_vision(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return any(p.requires_grad for p in base.model.visual.parameters())

