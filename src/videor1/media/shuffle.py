"""Frame shuffling for T-GRPO's shuffled group (paper §3.2).

Two modes:
- `frame`: permute single frames, as the reference code does. Qwen's vision encoder packs frames
  in pairs (temporal patch size 2), so this changes what each patch sees and the shuffled video's
  vision embeddings must be computed again.
- `temporal_patch`: permute whole groups of `temporal_patch_size` frames. Qwen2.5-VL and Qwen3-VL
  attend within one temporal patch only, so the shuffled video's embeddings are exactly the ordered
  video's embeddings with their blocks permuted (`embedding_permutation`): no second vision pass.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal, TypeVar

ShuffleMode = Literal["frame", "temporal_patch"]
FramesT = TypeVar("FramesT")


def sample_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (global seed, problem id, step…): same parts, same seed,
    in every process and Python run (unlike `hash`)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _non_identity(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    if n < 2:
        return order
    while True:  # a uniform permutation, redrawn when it is the identity (probability 1/n! <= 1/2)
        rng.shuffle(order)
        if order != sorted(order):
            return order


def shuffle_permutation(num_frames: int, mode: ShuffleMode, seed: int,
                        temporal_patch_size: int = 2) -> list[int]:
    """The shuffled order of frames: shuffled video = [frames[i] for i in permutation].

    Never the identity when there are at least 2 units to permute (frames, or temporal patches).
    """
    rng = random.Random(seed)
    if mode == "frame":
        return _non_identity(num_frames, rng)
    if mode != "temporal_patch":
        raise ValueError(f"unknown shuffle mode {mode!r}: use 'frame' or 'temporal_patch'")
    if num_frames % temporal_patch_size:
        raise ValueError(f"{num_frames} frames do not split into temporal patches of {temporal_patch_size}")
    groups = _non_identity(num_frames // temporal_patch_size, rng)
    return [group * temporal_patch_size + k for group in groups for k in range(temporal_patch_size)]


def apply_permutation(frames: FramesT, permutation: list[int]) -> FramesT:
    """frames (T, …) as a numpy array or torch tensor, reordered: out[i] = frames[permutation[i]]."""
    return frames[list(permutation)]


def patch_permutation(permutation: list[int], temporal_patch_size: int = 2) -> list[int]:
    """The order of temporal patches in a `temporal_patch` frame permutation (raises for `frame` ones)."""
    groups = [permutation[i] // temporal_patch_size for i in range(0, len(permutation), temporal_patch_size)]
    expected = [g * temporal_patch_size + k for g in groups for k in range(temporal_patch_size)]
    if expected != list(permutation):
        raise ValueError("this permutation splits temporal patches: it is not a temporal_patch shuffle")
    return groups


def embedding_permutation(permutation: list[int], tokens_per_patch: int,
                          temporal_patch_size: int = 2) -> list[int]:
    """Row order that turns the ordered video's vision embeddings into the shuffled video's.

    The vision tower emits `tokens_per_patch` rows (merged tokens: h * w / merge**2) per temporal
    patch, patch after patch; shuffled_embeds = ordered_embeds[embedding_permutation(...)].
    """
    return [g * tokens_per_patch + k for g in patch_permutation(permutation, temporal_patch_size)
            for k in range(tokens_per_patch)]
