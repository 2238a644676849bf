"""Generation engines behind one interface: the trainer and evaluation call `engine.generate`."""

from videor1.rollout.base import Completions, RolloutEngine, SamplingConfig
from videor1.rollout.hf import HFEngine

__all__ = ["Completions", "HFEngine", "RolloutEngine", "SamplingConfig"]
