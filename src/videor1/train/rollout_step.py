"""One RL batch, read top to bottom: rollout → rewards → temporal reward → advantages (paper §3.2).

`collect` produces everything the update needs for one micro-batch of questions; the update itself
is in `videor1.train.rl`. The math lives in `videor1.algo` and `videor1.rewards`; this file wires
models, media and math together.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from videor1.algo import (
    group_advantages,
    is_correct,
    length_bonus,
    order_reliance,
    resolve_temporal_reward,
    response_temporal_bonus,
    shuffled_group_needed,
    temporal_bonus,
    temporal_bonus_certain,
    temporal_reward,
)
from videor1.media.shuffle import apply_permutation, embedding_permutation, sample_seed, shuffle_permutation
from videor1.models.inputs import Prompt, Question, encode
from videor1.models.logprobs import sequence_logprobs
from videor1.models.vision import encode_vision, select_items
from videor1.rewards import accuracy_rewards, format_reward
from videor1.rewards.answers import answer_span
from videor1.rollout.base import Completions, EncodedPrompts, Engine
from videor1.train.config import RLConfig
from videor1.train.parallel import Parallel


@dataclass(frozen=True)
class RolloutBatch:
    """One micro-batch of B questions and their G responses each (rows b * G + i): everything the update
    needs. Immutable: what the update computes later comes as a new value (`dataclasses.replace`).

    questions: the B questions (record + prompt).
    inputs: the processor's output for the B prompts (left-padded input_ids / attention_mask /
        mm_token_type_ids (B, L), grids, pixels), on the policy's device.
    vision: the B prompts' vision embeddings (mm_encoder_outputs), from the rollout policy (no grad).
    completions: the engine's (B*G, T) ids and mask, texts, and `logprobs` (B*G, T): the sampled tokens'
        log-probs as the engine computed them (`engine_logps`).
    advantages: (B*G,) Eq. 3, the temporal bonus included.
    old_logps: (B*G, T) pi_old, the training forward's log-probs of the policy that sampled (the first
        of the mu iterations); None until then.
    ref_logps: (B*G, T) the reference policy's log-probs (beta > 0); None until computed.
    metrics: rewards, lengths, temporal statistics and timing of this micro-batch.
    """

    questions: tuple[Question, ...]
    inputs: Mapping[str, Tensor]
    vision: dict
    completions: Completions
    advantages: Tensor
    old_logps: Tensor | None = None
    ref_logps: Tensor | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def engine_logps(self) -> Tensor | None:
        """(B*G, T) the engine's log-probs of the sampled tokens (0 on padding)."""
        return self.completions.logprobs


def collect(questions: list[Question], config: RLConfig, engine: Engine, processor, policy,
            step: int, rank: int, micro: int = 0, parallel: Parallel | None = None) -> RolloutBatch:
    """Ordered rollouts, rewards, shuffled rollouts where they can matter, and advantages.

    `parallel` (train.parallel): the batch std of `algo.scale=batch` over every process's rewards;
    under sharded parameters, as many shuffled-group generations on every process (padding)."""
    algo, G = config.algo, config.algo.num_generations
    started = time.perf_counter()
    device = next(policy.parameters()).device

    # 1. Ordered group: G responses per question, vision encoded once per question.
    inputs = encode(processor, [q.prompt for q in questions]).to(device)
    with torch.no_grad():
        vision = encode_vision(policy, inputs)
    seed = sample_seed(config.run.seed, "ordered", step, micro, rank)
    completions = engine.generate([q.prompt for q in questions], G, config.sampling, seed=seed, logprobs=True,
                                  encoded=EncodedPrompts(inputs, vision))

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

    # 3. Temporal reward (Eq. 1) for video questions under T-GRPO, from shuffled frames when it can matter:
    #    the shuffled groups of every question that needs one, in one engine call.
    r_t = torch.zeros(len(questions))
    temporal = {"video_groups": 0, "shuffled_generated": 0, "granted": [], "changed": 0, "p": [],
                "p_shuffled": [], "cut": 0}
    videos = [b for b, q in enumerate(questions) if q.record.data_type == "video" and algo.name == "tgrpo"]
    kwargs = dict(alpha=algo.alpha, ratio=algo.temporal_ratio, scale=algo.scale,
                  placement=algo.bonus_placement, condition=algo.temporal_condition,
                  margin=algo.temporal_margin)
    per_response = algo.temporal_credit == "response"  # no shuffled group: a shuffled forward instead (below)
    groups = {b: slice(b * G, (b + 1) * G) for b in videos}
    needed = [b for b in videos if not per_response and (not algo.skip_shuffled
              or shuffled_group_needed(rewards[groups[b]], correct[groups[b]], **kwargs))]
    if parallel is not None and parallel.lockstep:
        # Sharded weights: every generate call gathers them, so every process makes as many calls,
        # agreed BEFORE any of them (a process already generating cannot answer). One with fewer
        # makes a padding call, whose responses are discarded (own seeded stream: nothing else
        # changes). Counted in engine calls: one for all of a micro-batch's shuffled groups.
        calls = int(bool(needed))
        for _ in range(parallel.agree_max(calls) - calls):
            padding_generation(questions, inputs, vision, config, engine, processor,
                               sample_seed(config.run.seed, "padding", step, micro, rank))
    # with the skip on, a shuffled group also stops as soon as its r_t is decided (`Settler`)
    outcome = (lambda j, p: resolve_temporal_reward(rewards[groups[needed[j]]], correct[groups[needed[j]]], p,
                                                    **kwargs)) if algo.skip_shuffled else None
    p_shuffled, temporal["cut"] = shuffled_accuracies(questions, needed, inputs, vision, config, engine,
                                                      processor, step, rank, outcome)
    p_shuffled = dict(zip(needed, p_shuffled))
    for b in [] if per_response else videos:
        group, p = groups[b], float(correct[groups[b]].float().mean())
        if b in p_shuffled:
            temporal["shuffled_generated"] += 1
            temporal["p_shuffled"].append(p_shuffled[b])
            temporal["granted"].append(temporal_reward(p, p_shuffled[b], algo.alpha, algo.temporal_ratio,
                                                       algo.temporal_condition, algo.temporal_margin) > 0)
        elif temporal_bonus_certain(p, algo.temporal_ratio, algo.temporal_condition, algo.temporal_margin):
            temporal["granted"].append(True)
        r_t[b] = resolve_temporal_reward(rewards[group], correct[group], p_shuffled.get(b), **kwargs)
        temporal["changed"] += int(r_t[b] != 0)
        temporal["video_groups"] += 1
        temporal["p"].append(p)

    # 4. Advantages (Eq. 2–3): the bonus on the correct responses, normalised per group.
    bonus = temporal_bonus(correct, r_t, G)
    if per_response:
        credited = [b for b in videos if bool(correct[groups[b]].any())]  # only correct responses earn it
        if parallel is not None and parallel.lockstep:
            # Sharded weights: the two teacher-forced forwards run on every process or on none (agreed
            # before); one without a credited group runs them on a response of its own, discarded.
            if parallel.agree_max(int(bool(credited))) and not credited:
                padding_reliance(questions, inputs, vision, completions, config, policy)
        reliance = order_reliances(questions, credited, inputs, vision, completions, config, policy, step,
                                   rank, processor.tokenizer)
        bonus = response_temporal_bonus(correct, reliance, algo.alpha, algo.credit_threshold,
                                        algo.credit_scale)
        temporal = response_credit_statistics(videos, rewards, bonus, reliance, correct, config)
    gather = parallel.gather if parallel is not None and algo.scale == "batch" else None
    advantages = group_advantages(rewards, G, algo.scale, bonus, algo.bonus_placement, algo.eps, gather)

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
        "temporal/shuffled_cut": (temporal["cut"] / (temporal["shuffled_generated"] * algo.num_shuffled)
                                  if temporal["shuffled_generated"] else None),
        "temporal/reliance": _mean(temporal.get("reliance", [])),
        **cue_statistics(records, completions.texts, config),
        "time/rollout": time.perf_counter() - started,
    }
    return RolloutBatch(tuple(questions), inputs, vision, completions, advantages.to(device), metrics=metrics)


def shuffled_accuracies(questions: list[Question], indices: list[int], inputs, vision: dict, config: RLConfig,
                        engine: Engine, processor, step: int, rank: int,
                        outcome: Callable[[int, float], float] | None = None) -> tuple[list[float], int]:
    """p~ of the video questions `indices`: the fraction of their G~ responses correct when their frames
    are shuffled, and how many responses were cut (below). All their shuffled groups in one engine call,
    each question sampling from its own seeded stream, so that skipping other questions' shuffled groups
    changes nothing here.

    `outcome(j, p~)`: the temporal reward that p~ gives question indices[j]. With it, the engine may stop
    a group's responses once every p~ still possible gives the same reward (`Settler`); a stopped
    response is scored on what it had written, so p~ then lies between the fewest and the most correct
    responses the group could reach, and gives the decided reward."""
    if not indices:
        return [], 0
    prompts, encoded, seeds = shuffled_prompts(questions, indices, inputs, vision, config, step, rank)
    n = config.algo.num_shuffled
    records = [questions[b].record for b in indices for _ in range(n)]

    def correct(texts: list[str], rows: list[int]) -> Tensor:
        picked = [records[i] for i in rows]
        accuracy = accuracy_rewards(texts, [r.solution for r in picked], [r.problem_type for r in picked],
                                    [r.options for r in picked])
        return is_correct(torch.tensor(accuracy), config.algo.correct_threshold, config.algo.correct_rule)

    settled = None if outcome is None else Settler(len(indices), n, outcome, correct, processor.tokenizer)
    completions = engine.generate(prompts, n, config.sampling, seeds=seeds, encoded=encoded, settled=settled)
    counts = correct(completions.texts, list(range(len(records)))).reshape(len(indices), n).sum(dim=1)
    return [shuffled_accuracy(int(k), n) for k in counts], 0 if settled is None else settled.cut


def shuffled_accuracy(correct: int, n: int) -> float:
    """p~ from a count of correct shuffled responses: one rounding, wherever p~ is computed."""
    return correct / n


class Settler:
    """The engine's `settled` callback for `groups` shuffled groups of n rows (row j*n+i: group j): each
    row that has ended is scored once; group j may stop when the fewest and the most correct responses
    it can still reach give the same `outcome(j, p~)` (Eq. 1's condition is monotone in p~, so every
    count in between gives it too). Whatever the rows not yet ended would have said, r_t is the same: a
    stopped row's text can only add 0 or 1 to the count, within that range. `cut`: the rows stopped
    before they ended."""

    def __init__(self, groups: int, n: int, outcome: Callable[[int, float], float],
                 correct: Callable[[list[str], list[int]], Tensor], tokenizer):
        self.n, self.outcome, self.correct, self.tokenizer = n, outcome, correct, tokenizer
        self.scored: dict[int, bool] = {}
        self.decided = torch.zeros(groups * n, dtype=torch.bool)
        self.cut = 0

    def __call__(self, ids: Tensor, ended: Tensor) -> Tensor:
        n, scored, decided = self.n, self.scored, self.decided
        new = [row for row in ended.nonzero().flatten().tolist() if row not in scored and not decided[row]]
        if new:
            texts = self.tokenizer.batch_decode(ids[new].cpu(), skip_special_tokens=True)
            scored.update(zip(new, self.correct(texts, new).tolist()))
            for j in {row // n for row in new}:
                known = [scored[row] for row in range(j * n, (j + 1) * n) if row in scored]
                fewest, most = (shuffled_accuracy(k, n) for k in (sum(known), sum(known) + n - len(known)))
                if self.outcome(j, fewest) == self.outcome(j, most):
                    decided[j * n:(j + 1) * n] = True
                    self.cut += n - len(known)
        return decided.clone()


def shuffled_prompts(questions: list[Question], indices: list[int], inputs, vision: dict, config: RLConfig,
                     step: int, rank: int) -> tuple[list[Prompt], EncodedPrompts | None, list[int]]:
    """The shuffled-frame prompts of the video questions `indices` (their own seeded permutations), the
    model inputs an engine may use instead of re-encoding them, and each one's sampling seed.

    `temporal_patch` shuffling: the ordered prompts' tokens with their vision embeddings' rows permuted
    (exact: Qwen's vision encoders attend within one temporal patch; the rows keep the micro-batch's
    padding, whichever questions are shuffled). `frame` shuffling, the reference code's, breaks the
    2-frame patches: the engine encodes the shuffled frames again (encoded is None).
    """
    with_video = [b for b, q in enumerate(questions) if q.prompt.video is not None]
    video_index = {b: i for i, b in enumerate(with_video)}  # question -> its video's rank in the batch
    prompts, seeds, rows = [], [], {}
    for b in indices:
        question = questions[b]
        clip = question.prompt.video
        seed = sample_seed(config.run.seed, "shuffle", step, rank, question.record.problem_id)
        permutation = shuffle_permutation(len(clip.frames), config.media.shuffle, seed)
        shuffled = _with_frames(clip, apply_permutation(clip.frames, permutation))
        prompts.append(replace(question.prompt, video=shuffled))
        seeds.append(sample_seed(seed, "sample"))
        if config.media.shuffle == "temporal_patch":
            grid = inputs["video_grid_thw"][video_index[b]]
            tokens_per_patch = int(grid[1] * grid[2]) // 4  # after the 2x2 merge
            rows[video_index[b]] = torch.tensor(embedding_permutation(permutation, tokens_per_patch))
    if config.media.shuffle != "temporal_patch":
        return prompts, None, seeds
    items = [video_index[b] for b in indices]
    shuffled_vision = select_items(vision, "video", items, lambda i, x: x[rows[i].to(x.device)])
    shuffled_vision.pop("image", None)
    batch = {key: inputs[key][indices] for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
    for key in ("video_grid_thw", "second_per_grid_ts"):
        if key in inputs:
            batch[key] = inputs[key][items]
    return prompts, EncodedPrompts(batch, shuffled_vision), seeds


def padding_generation(questions: list[Question], batch, vision: dict, config: RLConfig, engine: Engine,
                       processor, seed: int) -> None:
    """A generate call shaped like a shuffled group's (G~ responses to one prompt; its media encoded by
    the engine under `frame` shuffling, precomputed otherwise) on the micro-batch's first question,
    made only to keep sharded processes in step. Its responses are discarded."""
    encoded = EncodedPrompts(*first_prompt(questions, batch, vision)) \
        if config.media.shuffle == "temporal_patch" else None
    engine.generate([questions[0].prompt], config.algo.num_shuffled, config.sampling, seeds=[seed],
                    encoded=encoded)


def first_prompt(questions: list[Question], batch, vision: dict) -> tuple[dict, dict]:
    """The micro-batch's first question alone: its row of the model inputs and its media's embeddings
    (for the padding calls that keep sharded processes in step)."""
    first = questions[0]
    one = {key: batch[key][:1] for key in ("input_ids", "attention_mask", "mm_token_type_ids")}
    media = {"video": first.prompt.video, "image": first.prompt.image}
    modality = next((name for name, item in media.items() if item is not None), None)
    if modality is None:
        return one, {}
    grid = f"{modality}_grid_thw"  # the first row's media is the first item of its modality
    one[grid] = batch[grid][:1]
    if modality == "video" and "second_per_grid_ts" in batch:
        one["second_per_grid_ts"] = batch["second_per_grid_ts"][:1]
    return one, {modality: select_items(vision, modality, [0])[modality]}


@dataclass(frozen=True)
class TeacherForced:
    """The responses of some video questions (`rows` of the B*G) teacher-forced with ordered and with
    shuffled frames: their ids, mask and per-token log-probs under each (rows, T)."""

    rows: Tensor
    ids: Tensor
    mask: Tensor
    ordered: Tensor
    shuffled: Tensor

    def reliance(self, size: int, span: str = "response", tokenizer=None) -> Tensor:
        """(size,) log pi(o_i | ordered) - log pi(o_i | shuffled) on these rows (0 elsewhere), summed over
        the whole response or (`span="answer"`, `tokenizer` needed) over its final answer's tokens."""
        mask = self.mask
        if span == "answer":
            mask = mask * answer_tokens(self.ids, mask, tokenizer).to(mask.device)
        reliance = torch.zeros(size)
        reliance[self.rows] = order_reliance(self.ordered, self.shuffled, mask).float().cpu()
        return reliance


def order_reliances(questions: list[Question], indices: list[int], inputs, vision: dict,
                    completions: Completions, config: RLConfig, policy, step: int, rank: int,
                    tokenizer=None) -> Tensor:
    """(B*G,) order reliance of every response to the video questions `indices` (0 elsewhere), summed
    as `algo.credit_span` says (`tokenizer` needed for `answer`): see `teacher_force`."""
    size = len(questions) * config.algo.num_generations
    if not indices:
        return torch.zeros(size)
    forced = teacher_force(questions, indices, inputs, vision, completions, config, policy, step, rank)
    return forced.reliance(size, config.algo.credit_span, tokenizer)


@torch.no_grad()
def teacher_force(questions: list[Question], indices: list[int], inputs, vision: dict,
                  completions: Completions, config: RLConfig, policy, step: int, rank: int) -> TeacherForced:
    """The sampled responses to the video questions `indices` teacher-forced once with the frames in order
    and once with them shuffled as the shuffled group would see them (`shuffled_prompts`), no
    generation."""
    G = config.algo.num_generations
    _, shuffled, _ = shuffled_prompts(questions, indices, inputs, vision, config, step, rank)
    with_video = [b for b, q in enumerate(questions) if q.prompt.video is not None]
    video_index = {b: i for i, b in enumerate(with_video)}  # question -> its video's rank in the batch
    ordered_vision = select_items(vision, "video", [video_index[b] for b in indices])
    ordered_vision.pop("image", None)
    rows = torch.tensor([b * G + i for b in indices for i in range(G)])
    device_rows = rows.to(completions.ids.device)
    ids, mask = completions.ids[device_rows], completions.mask[device_rows]
    temperature = config.sampling.temperature or 1.0
    ordered = sequence_logprobs(policy, shuffled.batch, ids, mask, G, temperature, ordered_vision)
    permuted = sequence_logprobs(policy, shuffled.batch, ids, mask, G, temperature, shuffled.vision)
    return TeacherForced(rows, ids, mask, ordered, permuted)


def answer_tokens(ids: Tensor, mask: Tensor, tokenizer) -> Tensor:
    """(N, T) 1 on the tokens that hold the content of each response's final <answer> tag (what the
    accuracy reward reads, `rewards.answers.answer_span`), 0 elsewhere and where there is none. A token
    is in when any byte of the content is: the boundaries come from decoding growing prefixes."""
    marked = torch.zeros_like(mask, device="cpu")
    for row in range(ids.shape[0]):
        tokens = ids[row, :int(mask[row].sum())].tolist()
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        span = answer_span(text)
        if span is None or span[0] == span[1]:
            continue
        before, through = text[:span[0]], text[:span[1]]

        def prefix(k: int) -> str:
            return tokenizer.decode(tokens[:k], skip_special_tokens=True)

        positions = range(len(tokens) + 1)
        # the first k tokens reach into the content / have decoded all of it (both monotone in k: a
        # character cut between two byte tokens decodes to one U+FFFD, as long as the character itself)
        start = bisect.bisect_left(positions, True, key=lambda k: len(prefix(k)) > len(before)) - 1
        end = bisect.bisect_left(positions, True, key=lambda k: prefix(k).startswith(through))
        marked[row, start:end] = 1
    return marked


@torch.no_grad()
def padding_reliance(questions: list[Question], batch, vision: dict, completions: Completions,
                     config: RLConfig, policy) -> None:
    """The two forwards of `order_reliances` (ordered, shuffled; here the same media twice) on the
    micro-batch's first question and its first response, made only to keep sharded processes in step."""
    one, one_vision = first_prompt(questions, batch, vision)
    temperature = config.sampling.temperature or 1.0
    for _ in range(2):
        sequence_logprobs(policy, one, completions.ids[:1], completions.mask[:1], 1, temperature, one_vision)


def response_credit_statistics(videos: list[int], rewards: Tensor, bonus: Tensor, reliance: Tensor,
                               correct: Tensor, config: RLConfig) -> dict:
    """What the per-response credit did, in the shape of the group statistics: per video group whether any
    response was credited (granted) and whether the credit moved its advantages (changed)."""
    algo, G = config.algo, config.algo.num_generations
    stats = {"video_groups": len(videos), "shuffled_generated": 0, "granted": [], "changed": 0,
             "p": [], "p_shuffled": [], "reliance": []}
    for b in videos:
        group = slice(b * G, (b + 1) * G)
        with_credit = group_advantages(rewards[group], G, "group" if algo.scale == "batch" else algo.scale,
                                       bonus[group], algo.bonus_placement, algo.eps)
        without = group_advantages(rewards[group], G, "group" if algo.scale == "batch" else algo.scale,
                                   eps=algo.eps)
        stats["granted"].append(bool((bonus[group] > 0).any()))
        stats["changed"] += int(not torch.allclose(with_credit, without, atol=1e-6))
        stats["p"].append(float(correct[group].float().mean()))
        stats["reliance"] += reliance[group][correct[group]].tolist()
    return stats


def cue_statistics(records: list, texts: list[str], config: RLConfig) -> dict:
    """Share of the responses to cue-conflicting questions that give the static cue's answer instead of the
    true one (records carrying `cue` and `cue_solution`: the synthetic shortcut, docs/demo.md)."""
    rows = [i for i, r in enumerate(records) if getattr(r, "cue", None) == "conflicting"]
    if not rows:
        return {"shortcut/follows_cue": None, "shortcut/conflicting": 0}
    accuracy = torch.tensor(accuracy_rewards([texts[i] for i in rows],
                                             [records[i].cue_solution for i in rows],
                                             [records[i].problem_type for i in rows],
                                             [records[i].options for i in rows]))
    follows = is_correct(accuracy, config.algo.correct_threshold, config.algo.correct_rule)
    return {"shortcut/follows_cue": follows.float().mean().item(), "shortcut/conflicting": len(rows)}


def _with_frames(clip, frames):
    return replace(clip, frames=frames)  # same timing: only the content order changes


def _mean(values: list) -> float | None:
    return sum(map(float, values)) / len(values) if values else None
