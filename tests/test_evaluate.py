"""Metrics against scikit-learn, AdaBN's invariants, batched logits, repeatable noise seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faultdiag.errors import ConfigError, DataError
from faultdiag.evaluate import adabn, compute_metrics, noise_seed, predict_logits

torch.set_num_threads(1)


def _tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(1, 4, 5, padding=2), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3),
    ).eval()


def test_metrics_match_hand_example():
    # 3 classes; class 2 never predicted, class "c" recall 0
    y_true = [0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 1, 0, 1]
    m = compute_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 8)
    # recall a=2/3, b=1, c=0 → balanced accuracy 5/9
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # precision a=2/3, b=2/5, c=0; F1 a=2/3, b=4/7, c=0
    assert m["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 5)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 7 + 0) / 3)
    assert m["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 2, 0]]
    assert m["n"] == 8


def test_metrics_match_sklearn_and_absent_classes():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = compute_metrics(y_true, y_pred, list("wxyzv"))  # class 4 absent everywhere
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0))
    assert np.array_equal(m["confusion"], skm.confusion_matrix(y_true, y_pred, labels=range(5)))
    assert m["per_class"]["v"]["support"] == 0


@pytest.mark.parametrize("y_pred", [[0, 5], [0]])
def test_metrics_reject_bad_input(y_pred):
    with pytest.raises(DataError, match="y_"):
        compute_metrics([0, 1], y_pred, ["a", "b"])


def test_predict_logits_batch_consistent():
    model = _tiny_net()
    X = torch.randn(37, 1, 32)
    full = predict_logits(model, X, batch_size=64)
    assert full.shape == (37, 3)
    assert torch.allclose(predict_logits(model, X, batch_size=5), full, atol=1e-6)
    with pytest.raises(ConfigError, match="batch_size"):
        predict_logits(model, X, batch_size=0)


def test_adabn_changes_only_batchnorm_statistics():
    model = _tiny_net()
    X = 3.0 + 2.0 * torch.randn(50, 1, 32)  # shifted domain
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adabn(model, X, batch_size=16)
    # the original model is untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    bn_stats = {n + "." + s for n, m in adapted.named_modules() if isinstance(m, nn.BatchNorm1d)
                for s in ("running_mean", "running_var", "num_batches_tracked")}
    after = adapted.state_dict()
    assert set(after) == set(before)
    for name, p in adapted.named_parameters():
        assert torch.equal(p, before[name]), f"parameter {name} changed"
    for k in after:
        if k not in bn_stats:
            assert torch.equal(after[k], before[k]), f"non-BN entry {k} changed"
    assert not torch.allclose(after["1.running_mean"], before["1.running_mean"])
    assert not torch.allclose(after["1.running_var"], before["1.running_var"])
    # momentum restored, eval mode, momentum of the original untouched
    assert all(m.momentum == 0.1 for m in adapted.modules() if isinstance(m, nn.BatchNorm1d))
    assert not adapted.training and not any(m.training for m in adapted.modules())


def test_adabn_estimates_the_data_statistics():
    bn = nn.BatchNorm1d(2).eval()
    X = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0], [7.0, 70.0]])
    out = adabn(nn.Sequential(bn), X, batch_size=4)[0]
    assert torch.allclose(out.running_mean, X.mean(0))
    assert torch.allclose(out.running_var, X.var(0, unbiased=True))
    with pytest.raises(DataError, match="at least 2"):
        adabn(nn.Sequential(bn), X[:1])


def test_adabn_variance_is_the_population_variance_for_windows_sorted_by_recording():
    # Test windows come grouped by recording: batches of consecutive windows would each see one
    # recording only and average within-recording variances (here 1) instead of the total (~26).
    torch.manual_seed(0)
    X = torch.cat([torch.randn(256, 1) - 5.0, torch.randn(256, 1) + 5.0])  # sorted by "recording"
    out = adabn(nn.Sequential(nn.BatchNorm1d(1)), X, batch_size=64)[0]
    assert float(out.running_mean) == pytest.approx(float(X.mean()), abs=0.3)
    assert float(out.running_var) == pytest.approx(float(X.var()), rel=0.1)


def test_adabn_is_deterministic_and_handles_remainder_of_one():
    model = _tiny_net()
    X = torch.randn(33, 1, 32)  # 33 = 2*16 + 1: no batch of one may reach BatchNorm
    a, b = adabn(model, X, batch_size=16), adabn(model, X, batch_size=16)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_noise_seed_depends_on_condition_only():
    assert noise_seed(0, "gaussian", -4) == noise_seed(0, "gaussian", -4.0)
    seeds = {noise_seed(s, k, snr) for s in (0, 1) for k in ("gaussian", "pink") for snr in (-4, 0, 4)}
    assert len(seeds) == 12
    assert 0 <= noise_seed(3, "pink", 2.5) < 2**63


def test_adabn_trunk_only_keeps_the_threshold_estimators_statistics():
    from benchmarks.adabn_scope import adabn_trunk_only
    from faultdiag.models.networks import build_model
    from faultdiag.models.shrinkage import ThresholdEstimator

    model = build_model("drsn-cw", preset="paper", seed=0).eval()
    X = 3.0 + 2.0 * torch.randn(40, 1, 256, generator=torch.Generator().manual_seed(0))
    full, trunk = adabn(model, X, batch_size=16), adabn_trunk_only(model, X, batch_size=16)
    before, f_sd, t_sd = model.state_dict(), full.state_dict(), trunk.state_dict()
    est = {n for n, m in model.named_modules() if isinstance(m, ThresholdEstimator)}
    assert est
    for k in before:
        if not k.endswith("running_mean"):
            continue
        inside = any(k.startswith(n + ".bn.") for n in est)
        assert torch.equal(t_sd[k], before[k] if inside else f_sd[k]), k
        assert inside or not torch.equal(t_sd[k], before[k]), k
