"""The policy loss (Eq. 4) and its gradient against an independent float64 recomputation."""

import math

import pytest
import torch

from videor1.algo import kl_k3, policy_loss


def _batch(seed: int, n: int = 6, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(n, t, generator=g) * 3
    old = logps + (torch.rand(n, t, generator=g) - 0.5) * 0.8  # ratios both inside and outside 1 +- 0.2
    ref = logps + (torch.rand(n, t, generator=g) - 0.5)
    advantages = torch.randn(n, generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    return logps, old, ref, advantages, mask


def _reference(logps, old, ref, advantages, mask, beta, eps, clip, aggregation):
    """Loss and d loss / d logps, token by token in float64 with the analytic derivative."""
    n, t = len(logps), len(logps[0])
    total_tokens = sum(mask[i][j] for i in range(n) for j in range(t))
    loss, grad = 0.0, [[0.0] * t for _ in range(n)]
    for i in range(n):
        length = sum(mask[i])
        for j in range(t):
            if not mask[i][j]:
                continue
            weight = 1.0 / (length * n) if aggregation == "sequence" else 1.0 / total_tokens
            ratio = math.exp(logps[i][j] - old[i][j])
            a = advantages[i]
            unclipped, clipped = ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a
            uses_unclipped = (not clip) or unclipped <= clipped
            surrogate = unclipped if uses_unclipped else clipped
            d_surrogate = ratio * a if uses_unclipped else 0.0
            r = ref[i][j] - logps[i][j]
            kl = math.exp(r) - r - 1
            loss += weight * (-surrogate + beta * kl)
            grad[i][j] = weight * (-d_surrogate + beta * (1 - math.exp(r)))
    return loss, grad


@pytest.mark.parametrize("aggregation", ["sequence", "token"])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradient_match_float64_recomputation(aggregation, clip, seed):
    logps, old, ref, advantages, mask = _batch(seed)
    logps = logps.clone().requires_grad_(True)
    out = policy_loss(logps, old, advantages, mask, ref, beta=0.04, clip_eps=0.2, clip=clip,
                      aggregation=aggregation)
    out.loss.backward()
    as_lists = [x.double().tolist() for x in (logps.detach(), old, ref, advantages, mask)]
    expected_loss, expected_grad = _reference(*as_lists, beta=0.04, eps=0.2, clip=clip,
                                              aggregation=aggregation)
    assert out.loss.item() == pytest.approx(expected_loss, abs=1e-5)
    assert torch.allclose(logps.grad.double(), torch.tensor(expected_grad, dtype=torch.float64), atol=1e-6)


def test_single_update_ratio_is_one_but_carries_the_policy_gradient():
    logps, _, ref, advantages, mask = _batch(3)
    logps = logps.clone().requires_grad_(True)
    out = policy_loss(logps, logps.detach(), advantages, mask, ref, beta=0.0)
    lengths = mask.sum(dim=1)
    assert out.loss.item() == pytest.approx(-advantages.mean().item(), abs=1e-6)
    out.loss.backward()
    expected = -(advantages / lengths / len(lengths))[:, None] * mask
    assert torch.allclose(logps.grad, expected, atol=1e-7)
    assert out.clip_fraction.item() == 0.0


def test_k3_is_nonnegative_and_zero_at_equality():
    logps = torch.linspace(-5, 0, 11)
    assert torch.all(kl_k3(logps, logps) == 0)
    assert torch.all(kl_k3(logps, logps.flip(0)) >= 0)


@pytest.mark.parametrize("aggregation", ["sequence", "token"])
def test_accumulated_micro_batches_equal_one_batch(aggregation):
    logps, old, ref, advantages, mask = _batch(4, n=8)
    full = policy_loss(logps, old, advantages, mask, ref, aggregation=aggregation).loss
    normalizer = float(mask.sum()) if aggregation == "token" else 8.0
    halves = [
        policy_loss(logps[s], old[s], advantages[s], mask[s], ref[s], aggregation=aggregation,
                    normalizer=normalizer).loss
        for s in (slice(0, 3), slice(3, 8))
    ]
    assert (halves[0] + halves[1]).item() == pytest.approx(full.item(), abs=1e-6)


def test_beta_needs_reference_logps():
    logps, old, _, advantages, mask = _batch(5)
    with pytest.raises(ValueError, match="ref_logps"):
        policy_loss(logps, old, advantages, mask, None, beta=0.04)


def test_kl_and_clip_fraction_by_hand():
    """Two tokens: ratio e^0.5 with A > 0 (clipped), ratio e^-0.5 with A > 0 (not clipped: the
    unclipped term is the smaller); a third, masked token must not count."""
    logps = torch.tensor([[0.0, 0.0, 0.0]])
    old = torch.tensor([[-0.5, 0.5, 3.0]])
    ref = torch.tensor([[1.0, 0.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    out = policy_loss(logps, old, torch.tensor([1.0]), mask, ref, beta=0.04, clip_eps=0.2)
    assert out.clip_fraction.item() == pytest.approx(0.5)
    assert out.kl.item() == pytest.approx((math.exp(1.0) - 1.0 - 1.0 + 0.0) / 2, abs=1e-6)
    negative = policy_loss(logps, old, torch.tensor([-1.0]), mask, ref, beta=0.04, clip_eps=0.2)
    assert negative.clip_fraction.item() == pytest.approx(0.5)  # now the ratio below 1 - eps is clipped
    assert policy_loss(logps, old, torch.tensor([1.0]), mask, ref, clip=False).clip_fraction.item() == 0.0
