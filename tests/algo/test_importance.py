"""Rollout-trainer parity and truncated importance sampling, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from videor1.algo import policy_loss
from videor1.algo.importance import rollout_parity, truncated_importance_weights


def test_parity_counts_response_tokens_only():
    engine = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    old = torch.tensor([[-1.5, -2.0, 9.0], [-0.5, 0.0, 7.0]])  # padding holds anything
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    parity = rollout_parity(engine, old, mask)
    assert parity.tokens == 3 and parity.max_abs == pytest.approx(0.5)
    assert parity.mean_abs == pytest.approx(0.5 / 3)
    # k3 of KL(engine || old) with r = old - engine per token: exp(r) - r - 1, averaged
    expected = (math.exp(-0.5) + 0.5 - 1) / 3
    assert parity.kl == pytest.approx(expected)
    assert rollout_parity(old, old, mask).kl == 0.0


def test_truncated_weights_are_capped_ratios_and_one_on_padding():
    old = torch.tensor([[math.log(0.4), math.log(0.9), 50.0]])
    engine = torch.tensor([[math.log(0.5), math.log(0.3), 0.0]])
    weights = truncated_importance_weights(old, engine, torch.tensor([[1, 1, 0]]), cap=2.0)
    assert torch.allclose(weights, torch.tensor([[0.8, 2.0, 1.0]]))  # 0.9/0.3 = 3 capped at 2
    with pytest.raises(ValueError, match="> 0"):
        truncated_importance_weights(old, engine, torch.tensor([[1, 1, 0]]), cap=0.0)


def test_weights_scale_the_policy_gradient_term_not_the_kl_term():
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    advantages, mask, ref = torch.tensor([1.0]), torch.ones(1, 2), torch.tensor([[-1.2, -1.9]])
    weights = torch.tensor([[0.5, 2.0]])
    out = policy_loss(logps, logps.detach(), advantages, mask, ref, beta=0.0, weights=weights)
    out.loss.backward()
    # ratio 1 in value, d ratio / d logp = 1: the gradient of -mean(w * A) over the response's tokens
    assert torch.allclose(logps.grad, -weights * advantages / 2)
    with_kl = policy_loss(logps, logps.detach(), advantages, mask, ref, beta=0.1, weights=weights).loss
    without = policy_loss(logps, logps.detach(), advantages, mask, ref, beta=0.1).loss
    kl_term = with_kl - out.loss.detach()
    assert torch.allclose(kl_term, without - policy_loss(logps, logps.detach(), advantages, mask, ref,
                                                         beta=0.0).loss)
