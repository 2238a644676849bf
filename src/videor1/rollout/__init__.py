"""Generation engines behind one interface (`videor1.rollout.base.Engine`): every stage generates
through `engine.generate`."""

from videor1.rollout.base import Completions, EncodedPrompts, Engine, RolloutConfig, SamplingConfig
from videor1.rollout.hf import HFEngine

__all__ = ["Completions", "EncodedPrompts", "Engine", "HFEngine", "RolloutConfig", "SamplingConfig"]
