"""`videor1 rl` T-GRPO with `rollout.engine=vllm`, end to end: rollouts (ordered and shuffled groups) from
a colocated vLLM that takes the policy's weights after every optimizer step, and the exact skip of
shuffled groups: skipping the groups that cannot change an advantage leaves the update bit-identical,
because each question samples from its own seeded stream whatever else is generated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="the vLLM engine's tests run in .venv-vllm (scripts/setup_vllm.sh), "
                    "after the main suite, in scripts/test.sh")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

from rl_support import build_rl_workspace, rl_overrides  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from videor1.cli import app  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cpu_tgrpo.yaml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The trainer tests' workspace: synthetic data, a tiny model that answers in format some of the time."""
    return build_rl_workspace(tmp_path_factory.mktemp("rl-vllm"))


def rl(workspace: Path, out: Path, **extra) -> list[dict]:
    overrides = rl_overrides(workspace, out, **{"rollout.engine": "vllm", "algo.name": "tgrpo", **extra})
    result = CliRunner().invoke(app, ["rl", "--config", str(CONFIG), *overrides])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_tgrpo_with_vllm_and_the_exact_skip_of_shuffled_groups(workspace, tmp_path):
    steps = 3
    runs = {}
    for skip in (True, False):
        out = tmp_path / f"skip-{skip}"
        # bonus on the advantage: then it matters whenever a correct response gets it
        metrics = rl(workspace, out, **{"algo.skip_shuffled": skip, "algo.bonus_placement": "advantage",
                                        "run.max_steps": steps, "run.save_every": steps, "optim.lr": 1e-3})
        weights = load_file(out / f"checkpoint-{steps}" / "hf" / "model.safetensors")
        runs[skip] = (weights, metrics)
    (skipping, skip_metrics), (always, always_metrics) = runs[True], runs[False]
    assert [m["step"] for m in always_metrics] == list(range(1, steps + 1))
    assert sum(m["temporal/video_groups"] for m in always_metrics) > 0
    assert all(m["temporal/shuffled_skipped"] in (0, None) for m in always_metrics)  # all shuffled groups
    assert max(m["temporal/shuffled_skipped"] or 0 for m in skip_metrics) > 0  # and skipped some
    for m in always_metrics:  # the engine's log-probs against the training forward's, every step
        print({k: round(v, 5) for k, v in m.items() if k.startswith("rollout/")})
        assert math.isfinite(m["rollout/logp_diff_mean"]) and math.isfinite(m["rollout/kl"])
    # exact: same weights, same rewards and losses with and without the skipped groups
    assert skipping.keys() == always.keys()
    assert all((skipping[k] == always[k]).all() for k in skipping)
    for a, b in zip(skip_metrics, always_metrics):
        assert a["reward/accuracy"] == b["reward/accuracy"] and a["train/loss"] == b["train/loss"]
    initial = load_file(workspace / "formatted" / "model.safetensors")
    assert any(not (initial[k] == skipping[k]).all() for k in initial if k in skipping)  # it trained
