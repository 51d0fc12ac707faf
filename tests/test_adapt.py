import math

import pytest
import torch

from faultdiag.adapt import (ADAPTATION_LOSSES, DomainDiscriminator, GradientReversal, coral_loss, dann_lambda,
                             dann_loss, grad_reverse, mk_mmd_loss)
from faultdiag.errors import ConfigError, DataError


def _batch(n, d=8, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift)


def test_coral_zero_for_identical_batches_and_matches_formula():
    s = _batch(32)
    assert coral_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-15)
    t = _batch(20, seed=1, scale=2.0)
    c_s, c_t = torch.cov(s.T), torch.cov(t.T)
    expected = ((c_s - c_t) ** 2).sum() / (4 * 8 ** 2)
    assert coral_loss(s, t).item() == pytest.approx(expected.item(), rel=1e-12)


def test_coral_grows_with_covariance_shift_and_ignores_mean_shift():
    s = _batch(256)
    losses = [coral_loss(s, _batch(256, seed=1, scale=a)).item() for a in (1.0, 1.5, 2.0, 3.0)]
    assert losses == sorted(losses) and losses[-1] > 20 * losses[0]
    assert coral_loss(s, s + 5.0).item() == pytest.approx(0.0, abs=1e-12)


def test_mmd_zero_for_identical_batches_and_grows_with_mean_shift():
    s = _batch(64)
    assert mk_mmd_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-12)
    losses = [mk_mmd_loss(s, _batch(64, seed=1, shift=m)).item() for m in (0.0, 0.5, 1.0, 2.0)]
    assert losses == sorted(losses) and losses[0] < losses[1] / 2


def test_unbiased_mmd_centres_on_zero_for_equal_distributions():
    same = [mk_mmd_loss(_batch(32, seed=2 * i), _batch(32, seed=2 * i + 1), unbiased=True).item() for i in range(20)]
    shifted = mk_mmd_loss(_batch(32, seed=100), _batch(32, seed=101, shift=1.0), unbiased=True).item()
    mean = sum(same) / len(same)
    assert min(same) < 0 < max(same)          # it can be negative
    assert abs(mean) < 0.1 * shifted


@pytest.mark.parametrize("name", ["coral", "mmd"])
def test_gradients_flow_to_both_inputs(name):
    s = _batch(16).requires_grad_()
    t = _batch(12, seed=1, scale=1.5, shift=0.5).requires_grad_()
    ADAPTATION_LOSSES[name](s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad.abs().sum() > 0
    assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()


def test_gradient_reversal_flips_sign_times_lambda():
    x = _batch(5).requires_grad_()
    w = _batch(5, seed=3)
    (grad_reverse(x, 0.3) * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)
    y = GradientReversal.apply(x.detach(), 2.0)
    torch.testing.assert_close(y, x.detach())  # identity forward


def test_dann_loss_gradients_discriminator_descends_features_ascend():
    s = _batch(16, d=4).float().requires_grad_()
    t = _batch(16, d=4, seed=1, shift=1.0).float().requires_grad_()
    disc = DomainDiscriminator(4, hidden=8, seed=0)
    loss = dann_loss(disc, s, t, lambda_=0.5)
    loss.backward()
    # Reference gradient without the reversal: the features' gradients are exactly -0.5 times it.
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    disc2 = DomainDiscriminator(4, hidden=8, seed=0)
    plain = 0.5 * (torch.nn.functional.binary_cross_entropy_with_logits(disc2(s2), torch.zeros(16))
                   + torch.nn.functional.binary_cross_entropy_with_logits(disc2(t2), torch.ones(16)))
    plain.backward()
    torch.testing.assert_close(loss, plain)
    torch.testing.assert_close(s.grad, -0.5 * s2.grad)
    torch.testing.assert_close(t.grad, -0.5 * t2.grad)
    for p, p2 in zip(disc.parameters(), disc2.parameters()):
        torch.testing.assert_close(p.grad, p2.grad)  # the discriminator's own gradient is not reversed


def test_dann_loss_is_ln2_for_a_discriminator_at_chance():
    disc = DomainDiscriminator(4, seed=0)
    with torch.no_grad():
        disc.net[-1].weight.zero_()
    assert dann_loss(disc, torch.randn(3, 4), torch.randn(9, 4)).item() == pytest.approx(math.log(2))


def test_discriminator_is_seeded():
    a, b = DomainDiscriminator(6, 16, seed=1), DomainDiscriminator(6, 16, seed=1)
    x = torch.randn(5, 6)
    assert a(x).shape == (5,)
    torch.testing.assert_close(a(x), b(x))


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert 0.999 < dann_lambda(1.0) < 1.0
    with pytest.raises(ConfigError, match="'progress'"):
        dann_lambda(1.5)


def test_bad_inputs_name_the_parameter():
    with pytest.raises(DataError, match="same feature size"):
        coral_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(DataError, match="'target'.*B >= 2"):
        mk_mmd_loss(torch.randn(4, 3), torch.randn(1, 3))
    with pytest.raises(ConfigError, match="'kernel_mul'"):
        mk_mmd_loss(torch.randn(4, 3), torch.randn(4, 3), kernel_mul=1.0)
    with pytest.raises(ConfigError, match="'lambda_'"):
        grad_reverse(torch.randn(2), -1.0)
    with pytest.raises(ConfigError, match="'hidden'"):
        DomainDiscriminator(4, hidden=0)


def test_registry_names():
    assert set(ADAPTATION_LOSSES) == {"coral", "mmd", "dann"}
