"""Shuffling for T-GRPO: seeded, never the identity, and exact on vision embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videor1.media.shuffle import (
    apply_permutation,
    embedding_permutation,
    patch_permutation,
    sample_seed,
    shuffle_permutation,
)


@settings(max_examples=300, deadline=None)
@given(groups=st.integers(1, 32), mode=st.sampled_from(["frame", "temporal_patch"]),
       seed=st.integers(0, 2**63 - 1))
def test_permutations_are_seeded_valid_and_never_identity(groups, mode, seed):
    n = 2 * groups
    perm = shuffle_permutation(n, mode, seed)
    assert sorted(perm) == list(range(n))
    assert perm == shuffle_permutation(n, mode, seed)  # reproducible
    units = n if mode == "frame" else groups
    assert (perm != list(range(n))) == (units >= 2)
    if mode == "temporal_patch":
        assert all(perm[i + 1] == perm[i] + 1 and perm[i] % 2 == 0 for i in range(0, n, 2))


def test_seed_changes_the_permutation_and_sample_seed_is_stable():
    perms = {tuple(shuffle_permutation(16, "temporal_patch",
                                       sample_seed(0, "problem", i))) for i in range(50)}
    assert len(perms) > 40  # 8! orders: different samples get different shuffles
    assert sample_seed(3, "abc", 7) == sample_seed(3, "abc", 7) != sample_seed(3, "abc", 8)
    assert sample_seed(1, 23) == 5509610781896688359  # the same in every process and Python run


def test_errors_and_patch_views():
    with pytest.raises(ValueError, match="temporal patches of 2"):
        shuffle_permutation(7, "temporal_patch", 0)
    with pytest.raises(ValueError, match="unknown shuffle mode"):
        shuffle_permutation(8, "reverse", 0)
    assert patch_permutation([4, 5, 0, 1, 2, 3]) == [2, 0, 1]
    assert embedding_permutation([4, 5, 0, 1, 2, 3], tokens_per_patch=2) == [4, 5, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="splits temporal patches"):
        patch_permutation([1, 0, 2, 3])
    frames = np.arange(6)[:, None] * np.ones((6, 3))
    assert apply_permutation(frames, [4, 5, 0, 1, 2, 3])[:, 0].tolist() == [4, 5, 0, 1, 2, 3]
    assert apply_permutation(torch.arange(4), [1, 0, 3, 2]).tolist() == [1, 0, 3, 2]


@pytest.fixture(scope="module")
def tiny_qwen25():
    from transformers import Qwen2VLVideoProcessor
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
    from transformers.video_utils import VideoMetadata

    from videor1.models.tiny import tiny_config

    class _Tok:  # tiny_config only needs token ids and sizes from the tokenizer
        eos_token_id, pad_token_id = 1, 0

        def convert_tokens_to_ids(self, token):
            return 10

        def __len__(self):
            return 64

    torch.manual_seed(0)
    vision = Qwen2_5_VisionTransformerPretrainedModel(tiny_config("qwen2_5_vl", _Tok()).vision_config).eval()
    processor = Qwen2VLVideoProcessor(size={"shortest_edge": 16 * 28 * 28, "longest_edge": 64 * 28 * 28})

    def embed(frames: np.ndarray) -> tuple[torch.Tensor, int]:
        meta = VideoMetadata(total_num_frames=len(frames), fps=2.0, frames_indices=list(range(len(frames))))
        out = processor(videos=[frames], video_metadata=[meta], do_resize=False, return_tensors="pt")
        with torch.no_grad():
            embeds = vision(out["pixel_values_videos"], grid_thw=out["video_grid_thw"]).pooler_output
        t, h, w = out["video_grid_thw"][0].tolist()
        return embeds, h * w // 4

    return embed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temporal_patch_shuffle_permutes_vision_embeddings_exactly(tiny_qwen25, seed):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(8, 56, 84, 3), dtype=np.uint8)
    ordered, tokens_per_patch = tiny_qwen25(frames)
    perm = shuffle_permutation(8, "temporal_patch", seed)
    shuffled, _ = tiny_qwen25(apply_permutation(frames, perm))
    assert torch.equal(shuffled, ordered[embedding_permutation(perm, tokens_per_patch)])
    # frame-level shuffling splits temporal patches: the embeddings are not a permutation of the ordered ones
    frame_perm = shuffle_permutation(8, "frame", seed)
    if frame_perm[0::2] != [p - 1 for p in frame_perm[1::2]]:
        by_frame, _ = tiny_qwen25(apply_permutation(frames, frame_perm))
        rows = {tuple(row.tolist()) for row in ordered}
        assert not all(tuple(row.tolist()) in rows for row in by_frame)
