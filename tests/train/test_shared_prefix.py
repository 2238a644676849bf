"""An RL run with the shared-prefix forward (the default) follows the run without it: same rollouts,
losses, KL and gradient norms within float rounding, step after step."""

from __future__ import annotations

import json

import pytest
from rl_support import rl_overrides

from videor1.train.config import load_config
from videor1.train.rl import train


@pytest.mark.slow
def test_rl_with_and_without_the_shared_prefix_follows_the_same_metrics(rl_workspace, tmp_path):
    runs = {}
    for shared in (True, False):
        # pi_old (mu = 2) and the reference (beta > 0) go through the same switch as the policy
        overrides = rl_overrides(rl_workspace, tmp_path / str(shared), **{
            "model.shared_prefix": shared, "run.max_steps": 3, "algo.num_iterations": 2, "algo.beta": 0.04,
            "optim.lr": 1e-3})
        result = train(load_config(None, overrides), progress=False)
        lines = (result.output_dir / "metrics.jsonl").read_text().splitlines()
        runs[shared] = [json.loads(line) for line in lines]
    shared, whole = runs[True], runs[False]
    assert len(shared) == len(whole) == 3
    for a, b in zip(shared, whole):
        # the same sampled responses (weights equal to float rounding give the same draws)...
        assert a["reward/accuracy"] == b["reward/accuracy"] and a["response/length"] == b["response/length"]
        # ...and the same loss, KL to the reference and gradient norm
        for key in ("train/loss", "train/kl", "train/grad_norm", "train/clip_fraction"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert any(m["train/kl"] > 0 for m in shared)  # the reference term was at work
