"""The reward of a response is the configured weighted sum of its named reward terms (docs/rewards.md)."""

from __future__ import annotations

import pytest
import torch

from videor1.train.config import RewardConfig, RLConfig, load_config


def test_the_default_sum_is_the_papers_reward():
    accuracy, fmt = torch.tensor([1.0, 0.0, 0.5, 1.0]), torch.tensor([1.0, 1.0, 0.0, 0.0])
    length = torch.tensor([1.0, 0.0, 0.0, 0.0])  # Eq. 5's indicator: correct and of l_min..l_max tokens
    total = RewardConfig().total({"accuracy": accuracy, "format": fmt, "length": length})
    assert torch.equal(total, accuracy + fmt + 0.2 * length)  # r_i = acc + format + omega (paper)


def test_weights_come_from_the_config_and_terms_must_match_it():
    config = load_config(None,
                         ["model.path=m", "data.train_file=t.json", "reward.format=0.5", "reward.length=0"],
                         RLConfig)
    terms = {"accuracy": torch.tensor([0.25]), "format": torch.tensor([1.0]), "length": torch.tensor([1.0])}
    assert config.reward.total(terms).item() == 0.75
    with pytest.raises(ValueError, match="do not match"):
        config.reward.total({"accuracy": torch.tensor([1.0])})
    with pytest.raises(ValueError, match="reward.fomat"):
        load_config(None, ["model.path=m", "data.train_file=t.json", "reward.fomat=1"], RLConfig)
