"""Generation engines behind one interface (`videor1.rollout.base.Engine`): every stage generates
through `engine.generate`."""

from __future__ import annotations

from videor1.rollout.base import Completions, EncodedPrompts, Engine, RolloutConfig, SamplingConfig
from videor1.rollout.hf import HFEngine


def make_engine(config: RolloutConfig, model, processor) -> Engine:
    """The engine RL rolls out with (`rollout.engine`), sampling from `model`, the policy (unwrapped).
    vLLM's engine is imported only when asked for (`pip install 'videor1[vllm]'`)."""
    if config.engine == "hf":
        return HFEngine(model, processor)
    if config.engine == "vllm":
        from videor1.rollout.vllm import VLLMEngine

        return VLLMEngine(model, processor, config)
    raise ValueError(f"rollout.engine={config.engine!r} cannot roll out for training: its weights cannot "
                     "follow the policy's; use hf or vllm")


__all__ = ["Completions", "EncodedPrompts", "Engine", "HFEngine", "RolloutConfig", "SamplingConfig",
           "make_engine"]
