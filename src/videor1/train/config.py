"""The RL configuration: every hyperparameter of T-GRPO / GRPO in one typed place, paper values by
default (paper §3.2–3.3, Appendix D), every variant of the reference code a switch (docs/algorithm.md).

YAML recipes in configs/ set what differs; `key=value` overrides on the command line win over
the file (`algo.alpha=0.5 run.max_steps=10`). The resolved config is saved with each checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor

from videor1.media.loader import MediaConfig
from videor1.models.loading import ModelOptions
from videor1.rollout.base import RolloutConfig, SamplingConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    train_file: Path = Field(description="RL training records (Video-R1-260k format: .json, .jsonl or "
                                         "datasets dir).")
    media_root: Path | None = Field(default=None, description="Root of the records' media paths (default: "
                                    "the file's dir).")
    allow_outside_media_root: bool = Field(
        default=False, description="Accept records whose media path leads outside the media root (by default "
        "such a record is bad and skipped).")
    template: str = Field(default="video-r1",
                          description="Prompt template: a preset name or a template file.")
    max_prompt_tokens: int = Field(default=16384, ge=16, description="Token budget of a prompt; a record "
                                   "over it gets fewer frames, then fewer pixels, or is skipped — never "
                                   "truncated.")
    shuffle: bool = Field(default=True, description="Shuffle the records every epoch (seeded by run.seed).")


class AlgoConfig(_Section):
    name: Literal["tgrpo", "grpo"] = Field(default="tgrpo",
                                           description="T-GRPO (temporal contrast on videos) or GRPO.")
    num_generations: int = Field(default=8, ge=2, description="G: ordered responses per question (paper: 8).")
    num_shuffled: int = Field(default=4, ge=1, description="G~: responses with shuffled frames (paper: G/2).")
    alpha: float = Field(default=0.3, ge=0.0, description="Temporal reward r_t (Eq. 1).")
    temporal_ratio: float = Field(default=1.0, gt=0.0, description="Eq. 1 condition p >= ratio * p~ "
                                  "(reference code: 0.8).")
    temporal_condition: Literal["paper", "strict", "margin"] = Field(
        default="paper",
        description="Eq. 1's inequality: p >= ratio * p~ (paper), p > ratio * p~ (strict: no r_t "
        "for a group as right without the order), p >= ratio * p~ + temporal_margin (docs/demo.md).")
    temporal_margin: float = Field(default=0.0, ge=0.0, le=1.0, description="The margin condition's m.")
    temporal_credit: Literal["group", "response"] = Field(
        default="group", description="r_t per group from a shuffled group (paper, Eq. 1-2), or per response: "
        "alpha for a correct response by its order reliance log pi(o|ordered) - log pi(o|shuffled), one "
        "teacher-forced forward with shuffled frames, no shuffled generation (algo.response_temporal_bonus).")
    credit_threshold: float = Field(default=0.0, description="Order reliance (nats) below which no credit is "
                                    "given.")
    credit_scale: float = Field(default=1.0, ge=0.0, description="Nats above the threshold for the full "
                                "alpha (linear in between); 0: a step at the threshold.")
    credit_span: Literal["response", "answer"] = Field(
        default="response", description="The tokens whose order reliance the credit sums: the whole "
        "response, or the content of its final <answer> tag only (docs/demo.md, round N).")
    bonus_placement: Literal["reward", "advantage"] = Field(
        default="reward",
        description="Add r_t to the rewards (paper, Eq. 2) or to the normalised advantages.")
    scale: Literal["group", "batch", "none"] = Field(
        default="group",
        description="Advantage normalisation: group std (paper), batch std, none (Dr. GRPO).")
    correct_rule: Literal["paper", "reference"] = Field(
        default="paper",
        description="Correct when accuracy >= correct_threshold (paper) or > 0.1 (reference code).")
    correct_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Threshold for continuous "
                                     "rewards.")
    l_min: int = Field(default=320, ge=0, description="Shortest response (tokens) that earns the length "
                                                      "bonus.")
    l_max: int = Field(default=512, ge=0, description="Longest response (tokens) that earns the length "
                                                      "bonus.")
    length_min_correct: int = Field(default=1, ge=1, description="Bonus only in groups with this many "
                                    "correct responses (reference code: 2, 'more than one').")
    beta: float = Field(default=0.04, ge=0.0, description="KL coefficient (k3 estimator) to the frozen "
                                                          "reference.")
    clip_eps: float = Field(default=0.2, gt=0.0, description="Ratio clipping epsilon (Eq. 4).")
    clip: bool = Field(default=True, description="Clip the ratio (the reference code does not: single "
                                                 "update).")
    num_iterations: int = Field(default=1, ge=1, description="mu: policy updates per batch of rollouts.")
    aggregation: Literal["sequence", "token"] = Field(
        default="sequence",
        description="Loss mean over each response then responses (Eq. 4), or over all tokens.")
    eps: float = Field(default=1e-4, gt=0.0, description="Added to the std in Eq. 3.")
    skip_shuffled: bool = Field(default=True, description="Skip shuffled rollouts that cannot change any "
                                "advantage (exact: the update is bit-identical).")

    @model_validator(mode="after")
    def _check(self) -> AlgoConfig:
        if self.l_min > self.l_max:
            raise ValueError(f"algo.l_min ({self.l_min}) must not exceed algo.l_max ({self.l_max})")
        return self


class RewardConfig(_Section):
    """r_i = sum of weight * term over the named reward terms, each in [0, 1] per response
    (docs/rewards.md). The temporal reward r_t (Eq. 1-2) is added to this by `algo`."""

    accuracy: float = Field(default=1.0, ge=0.0, description="Weight of the accuracy reward (by problem "
                            "type).")
    format: float = Field(default=1.0, ge=0.0, description="Weight of the format reward (think then answer "
                                                           "tags).")
    length: float = Field(default=0.2, ge=0.0, description="omega of Eq. 5: weight of the length term, 1 for "
                          "a correct response of algo.l_min..l_max tokens (paper: 0.2; 0 switches it off).")

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        """The weighted sum of `terms` (name -> (B*G,)), one term per field of this section."""
        weights = self.model_dump()
        if set(terms) != set(weights):
            raise ValueError(f"reward terms {sorted(terms)} do not match the configured {sorted(weights)}")
        return sum(weight * terms[name] for name, weight in weights.items())


class OptimConfig(_Section):
    lr: float = Field(default=1e-6, gt=0.0, description="Learning rate (paper: 1e-6).")
    weight_decay: float = Field(default=0.01, ge=0.0, description="AdamW weight decay (paper: 0.01).")
    max_grad_norm: float = Field(default=5.0, gt=0.0, description="Gradient-norm clipping (paper: 5).")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW betas.")
    adam_eps: float = Field(default=1e-8, gt=0.0, description="AdamW epsilon.")
    schedule: Literal["cosine", "constant", "linear"] = Field(default="cosine",
                                                              description="LR schedule after warm-up.")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    vision_lr: float | None = Field(default=None, gt=0.0, description="Learning rate of the trainable vision "
                                    "weights (the merger when model.freeze_vision); None: optim.lr.")


class RunConfig(_Section):
    output_dir: Path = Field(default=Path("runs/rl"), description="Checkpoints, metrics, resolved config.")
    max_steps: int = Field(default=1000, ge=1, description="Optimizer steps (paper: 1k).")
    prompts_per_device: int = Field(default=2, ge=1, description="Questions per process per micro-step.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-steps per optimizer step.")
    seed: int = Field(default=0, description="Seeds data order, sampling, shuffles.")
    save_every: int = Field(default=100, ge=1, description="Checkpoint every this many steps (and at the "
                                                           "end).")
    keep_checkpoints: int = Field(default=2, ge=1, description="Checkpoints kept on disk.")
    log_every: int = Field(default=1, ge=1, description="Print a metrics line every this many steps.")
    tensorboard: bool = Field(default=True, description="Also write metrics to TensorBoard (W&B when "
                                                        "report_to).")
    report_to: list[str] = Field(default_factory=list, description="Extra accelerate trackers, e.g. [wandb].")
    sharding: Literal["auto", "none", "fsdp"] = Field(
        default="auto",
        description="Parameters sharded with FSDP2 (fsdp) or replicated (none: DDP); auto: fsdp "
        "when launched with an FSDP accelerate config. DeepSpeed ZeRO-3 shards through accelerate.")


class StageConfig(_Section):
    """A training stage's whole config; saved next to every checkpoint."""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


class RLConfig(StageConfig):
    model: ModelOptions
    data: DataConfig
    media: MediaConfig = Field(default_factory=MediaConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _engine_can_train(self) -> RLConfig:
        if self.rollout.engine == "endpoint":
            raise ValueError("rollout.engine=endpoint cannot roll out for training (a server cannot take the "
                             "policy's new weights): use hf or vllm")
        if self.algo.temporal_credit == "response" and self.media.shuffle != "temporal_patch":
            raise ValueError("algo.temporal_credit=response needs media.shuffle=temporal_patch (its shuffled "
                             "forward permutes the ordered video's embeddings)")
        return self


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`a.b=value` pairs applied to a nested dict; values parsed as YAML (numbers, booleans, lists)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value (e.g. algo.alpha=0.5)")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None, overrides: list[str] = (), schema: type[BaseModel] = RLConfig):
    """A stage's config (`schema`: RLConfig, SFTConfig) from a YAML recipe plus overrides; every
    error reported at once, with its field.

    Paths are relative to the working directory, as on any command line.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data = apply_overrides(data, list(overrides))
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors()]
        raise ValueError(f"{path or 'config'}: {len(lines)} problem(s):\n" + "\n".join(lines)) from None
