"""The demo's recipe (`configs/demo/demo.yaml`): data, base model, stage recipes, RL arms, evaluation
arguments and the two budgets (full, quick). Everything the demo runs is named here or in the stage
recipes beside it; the code only chains the commands."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynthSettings(_Strict):
    seed: int = Field(0, description="Seed of `videor1 data synth`.")
    config: str = Field(description="SynthConfig YAML, relative to the recipe directory.")


class BaseSettings(_Strict):
    arch: Literal["qwen2_5_vl", "qwen3_vl"] = "qwen2_5_vl"
    size: str = "tiny"
    seed: int = 0


class Recipes(_Strict):
    perception: str = Field(description="SFT recipe of the perception stage (answer-only targets).")
    sft: str = Field(description="SFT recipe of the cold start.")
    rl: str = Field(description="RL recipe every arm starts from.")


class Arm(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Run directory name.")
    title: str
    start: Literal["sft", "perception"] = Field("sft", description="The model RL starts from.")
    videos_only: bool = Field(False, description="Train on the video records only (no image data).")
    overrides: list[str] = Field(default_factory=list, description="key=value overrides of the RL recipe.")


class Budget(_Strict):
    synth_n: int = Field(ge=8, description="RL / CoT / description records synthesised.")
    perception_steps: int = Field(ge=1)
    sft_steps: int = Field(ge=1)
    rl_steps: int = Field(ge=1)
    eval_items: int | None = Field(None, ge=1, description="First items of the evaluation split (None: all).")
    max_new_tokens: int | None = Field(None, ge=1, description="Cap on generated tokens in every stage (RL "
                                       "rollouts, SFT's held-out check, evaluation); None: the recipes' own.")


class DemoRecipe(_Strict):
    synth: SynthSettings
    base: BaseSettings = Field(default_factory=BaseSettings)
    recipes: Recipes
    arms: list[Arm] = Field(min_length=1)
    eval: list[str] = Field(description="Arguments of `videor1 eval` shared by every model.")
    train_eval: list[str] | None = Field(None, description="Arguments of `videor1 eval` on rl_eval.json (the "
                                         "RL training distribution on held-out scenes) for every model; "
                                         "None: not run.")
    budgets: dict[str, Budget]
    directory: Path = Field(Path("."), exclude=True, description="Where the recipe files are.")

    @model_validator(mode="after")
    def _check(self) -> DemoRecipe:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names) or "sft" in names:
            raise ValueError(f"arm names must be unique and not 'sft' (the SFT model's row): {names}")
        missing = {"full", "quick"} - set(self.budgets)
        if missing:
            raise ValueError(f"budgets must define {sorted(missing)}")
        return self

    def path(self, name: str) -> Path:
        return self.directory / name

    def base_key(self, budget: Budget, versions: dict[str, str]) -> str:
        """What the cached perception-pretrained base model depends on, hashed: the synthetic data
        (settings, size, seed), the tiny model's recipe, the perception recipe and its steps, and the
        library versions."""
        parts = {
            "synth": self.synth.model_dump(), "synth_config": self.path(self.synth.config).read_text(),
            "synth_n": budget.synth_n, "base": self.base.model_dump(),
            "perception": self.path(self.recipes.perception).read_text(), "steps": budget.perception_steps,
            "versions": versions,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def default_recipe_dir() -> Path:
    """`configs/demo` of the source checkout videor1 runs from (an editable install)."""
    return Path(__file__).resolve().parents[3] / "configs" / "demo"


def load_recipe(directory: Path | None = None) -> DemoRecipe:
    directory = Path(directory) if directory is not None else default_recipe_dir()
    path = directory / "demo.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the demo recipe is missing; pass --recipes DIR (a copy of the "
                                "repository's configs/demo)")
    recipe = DemoRecipe.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    recipe.directory = directory.resolve()
    for name in (recipe.synth.config, *recipe.recipes.model_dump().values()):
        if not recipe.path(name).is_file():
            raise FileNotFoundError(f"{path}: {name} not found beside it")
    return recipe
