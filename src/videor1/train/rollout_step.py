"""One RL batch, read top to bottom: rollout → rewards → temporal reward → advantages (paper §3.2).

`collect` produces everything the update needs for one micro-batch of questions; the update itself
is in `videor1.train.rl`. The math lives in `videor1.algo` and `videor1.rewards`; this file wires
models, media and math together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from videor1.algo import (
    group_advantages,
    is_correct,
    length_bonus,
    resolve_temporal_reward,
    shuffled_group_needed,
    temporal_bonus,
    temporal_bonus_certain,
    temporal_reward,
)
from videor1.media.shuffle import apply_permutation, embedding_permutation, sample_seed, shuffle_permutation
from videor1.models.inputs import Prompt, Question, encode
from videor1.models.vision import encode_vision, select_items
from videor1.rewards import accuracy_rewards, format_reward
from videor1.rollout.base import Completions, Engine
from videor1.train.config import RLConfig


@dataclass
class Rollout:
    """One micro-batch of B questions and their G responses each (rows b * G + i)."""

    questions: list[Question]
    batch: dict  # processor output for the B prompts (left-padded)
    vision: dict  # mm_encoder_outputs of the B prompts, from the rollout policy (no grad)
    completions: Completions  # (B*G, T)
    advantages: Tensor  # (B*G,)
    ref_logps: Tensor | None = None  # (B*G, T), filled by the update
    old_logps: Tensor | None = None  # (B*G, T), filled at the first of mu iterations
    metrics: dict = field(default_factory=dict)


def collect(questions: list[Question], config: RLConfig, engine: Engine, processor, policy,
            step: int, rank: int, micro: int = 0) -> Rollout:
    """Ordered rollouts, rewards, shuffled rollouts where they can matter, and advantages."""
    algo, G = config.algo, config.algo.num_generations
    started = time.perf_counter()
    device = next(policy.parameters()).device

    # 1. Ordered group: G responses per question, vision encoded once per question.
    batch = encode(processor, [q.prompt for q in questions]).to(device)
    with torch.no_grad():
        vision = encode_vision(policy, batch)
    seed = sample_seed(config.run.seed, "ordered", step, micro, rank)
    completions = engine.generate(batch, G, config.sampling, vision, seed=seed)

    # 2. Rewards r_i: the weighted sum of the named reward terms (config.reward, docs/rewards.md), each
    #    response scored by its own problem type. The length term is Eq. 5 with omega as its weight.
    records = [q.record for q in questions for _ in range(G)]
    accuracy = torch.tensor(accuracy_rewards(completions.texts, [r.solution for r in records],
                                             [r.problem_type for r in records], [r.options for r in records]))
    correct = is_correct(accuracy, algo.correct_threshold, algo.correct_rule)
    terms = {
        "accuracy": accuracy,
        "format": torch.tensor([format_reward(text) for text in completions.texts]),
        "length": length_bonus(correct, completions.lengths.cpu(), G, 1.0, algo.l_min, algo.l_max,
                               algo.length_min_correct),
    }
    rewards = config.reward.total(terms)

    # 3. Temporal reward (Eq. 1) for video questions under T-GRPO, from shuffled frames when it can matter.
    r_t = torch.zeros(len(questions))
    temporal = {"video_groups": 0, "shuffled_generated": 0, "granted": [], "changed": 0, "p": [], "p_shuffled": []}
    if algo.name == "tgrpo":
        video_index = 0
        for b, question in enumerate(questions):
            if question.record.data_type != "video":
                continue
            group = slice(b * G, (b + 1) * G)
            kwargs = dict(alpha=algo.alpha, ratio=algo.temporal_ratio, scale=algo.scale,
                          placement=algo.bonus_placement)
            p = float(correct[group].float().mean())
            p_shuffled = None
            if shuffled_group_needed(rewards[group], correct[group], **kwargs) or not algo.skip_shuffled:
                p_shuffled = shuffled_accuracy(question, b, video_index, batch, vision, config, engine, processor,
                                               step, rank)
                temporal["shuffled_generated"] += 1
                temporal["p_shuffled"].append(p_shuffled)
                temporal["granted"].append(temporal_reward(p, p_shuffled, algo.alpha, algo.temporal_ratio) > 0)
            elif temporal_bonus_certain(p, algo.temporal_ratio):
                temporal["granted"].append(True)
            r_t[b] = resolve_temporal_reward(rewards[group], correct[group], p_shuffled, **kwargs)
            temporal["changed"] += int(r_t[b] != 0)
            temporal["video_groups"] += 1
            temporal["p"].append(p)
            video_index += 1

    # 4. Advantages (Eq. 2–3): the bonus on the correct responses, normalised per group.
    bonus = temporal_bonus(correct, r_t, G)
    advantages = group_advantages(rewards, G, algo.scale, bonus, algo.bonus_placement, algo.eps)

    n_video = temporal["video_groups"]
    metrics = {
        **{f"reward/{name}": term.mean().item() for name, term in terms.items()},
        "reward/total": (rewards + bonus).mean().item(),
        "response/length": completions.lengths.float().mean().item(),
        "response/correct": correct.float().mean().item(),
        "temporal/video_groups": n_video,
        "temporal/p": _mean(temporal["p"]),
        "temporal/p_shuffled": _mean(temporal["p_shuffled"]),
        "temporal/granted": _mean(temporal["granted"]),
        "temporal/changed_advantages": temporal["changed"] / n_video if n_video else None,
        "temporal/shuffled_skipped": 1 - temporal["shuffled_generated"] / n_video if n_video else None,
        "time/rollout": time.perf_counter() - started,
    }
    return Rollout(questions, batch, vision, completions, advantages.to(device), metrics=metrics)


def shuffled_accuracy(question: Question, b: int, video_index: int, batch, vision: dict, config: RLConfig,
                      engine: Engine, processor, step: int, rank: int) -> float:
    """p~: the fraction of G~ responses correct when the question's frames are shuffled.

    `temporal_patch` shuffling reuses the ordered video's tokens and vision embeddings, rows permuted
    (exact: Qwen's vision encoders attend within one temporal patch); `frame` shuffling, the
    reference code's, processes and encodes the shuffled frames again. Each question samples from
    its own seeded stream, so skipping other questions' shuffled groups changes nothing here.
    """
    clip = question.prompt.video
    seed = sample_seed(config.run.seed, "shuffle", step, rank, question.record.problem_id)
    permutation = shuffle_permutation(len(clip.frames), config.media.shuffle, seed)
    if config.media.shuffle == "temporal_patch":
        grid = batch["video_grid_thw"][video_index]
        tokens_per_patch = int(grid[1] * grid[2]) // 4
        rows = torch.tensor(embedding_permutation(permutation, tokens_per_patch))
        shuffled_vision = select_items(vision, "video", [video_index], lambda _, x: x[rows.to(x.device)])
        shuffled_vision.pop("image", None)
        one = {key: batch[key][b:b + 1] for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
        one["video_grid_thw"] = batch["video_grid_thw"][video_index:video_index + 1]
        if "second_per_grid_ts" in batch:
            one["second_per_grid_ts"] = batch["second_per_grid_ts"][video_index:video_index + 1]
    else:
        shuffled = Prompt(question.prompt.text, video=_with_frames(clip, apply_permutation(clip.frames, permutation)))
        one = encode(processor, [shuffled]).to(batch["input_ids"].device)
        shuffled_vision = None  # encoded again by the engine: frame shuffling breaks the 2-frame patches
    completions = engine.generate(one, config.algo.num_shuffled, config.sampling, shuffled_vision,
                                  seed=sample_seed(seed, "sample"))
    record = question.record
    n = config.algo.num_shuffled
    accuracy = torch.tensor(accuracy_rewards(completions.texts, [record.solution] * n, [record.problem_type] * n,
                                             [record.options] * n))
    return float(is_correct(accuracy, config.algo.correct_threshold, config.algo.correct_rule).float().mean())


def _with_frames(clip, frames):
    return replace(clip, frames=frames)  # same timing: only the content order changes


def _mean(values: list) -> float | None:
    return sum(map(float, values)) / len(values) if values else None
