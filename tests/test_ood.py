import io

import numpy as np
import pytest
import torch
from torch import nn

from faultdiag.errors import ConfigError, DataError
from faultdiag.models.networks import build_model
from faultdiag.ood import (WARNING_TEXT, FeatureDensity, auroc, energy_score, penultimate_features,
                          recording_verdict)


def _gaussian_classes(n_per_class, seed, shift=0.0, d=6, k=3):
    """K Gaussian classes in D dims with one shared, correlated covariance; ``shift`` moves every mean."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(0, 3, (k, d))
    mix = np.random.default_rng(456).normal(0, 1, (d, d)) / np.sqrt(d)
    y = np.repeat(np.arange(k), n_per_class)
    X = means[y] + rng.standard_normal((len(y), d)) @ mix + shift
    return X, y


def test_init_only_stores_parameters():
    assert vars(FeatureDensity(shrinkage=0.1, covariance="per-class")) == {"shrinkage": 0.1, "covariance": "per-class"}


def test_score_equals_hand_computed_mahalanobis():
    # Two classes in 2-D, no shrinkage: pooled within-class covariance by hand (divisor N).
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [10.0, 10.0], [12.0, 10.0], [10.0, 12.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    fd = FeatureDensity(shrinkage=0.0).fit(X, y)
    mu0, mu1 = np.array([2 / 3, 2 / 3]), np.array([10 + 2 / 3, 10 + 2 / 3])
    np.testing.assert_allclose(fd.means_, [mu0, mu1])
    r = np.concatenate([X[:3] - mu0, X[3:] - mu1])
    cov = r.T @ r / 6
    x = np.array([[1.0, 3.0], [9.0, 9.0]])
    expected = [min((xi - m) @ np.linalg.inv(cov) @ (xi - m) for m in (mu0, mu1)) for xi in x]
    np.testing.assert_allclose(fd.score(x), expected, rtol=1e-10)
    assert fd.score(mu1[None])[0] == pytest.approx(0.0, abs=1e-12)
    # Per class: each class's own covariance (divisor 3).
    pc = FeatureDensity(shrinkage=0.0, covariance="per-class").fit(X, y)
    covs = [r[:3].T @ r[:3] / 3, r[3:].T @ r[3:] / 3]
    expected = [min((xi - m) @ np.linalg.inv(c) @ (xi - m) for m, c in zip((mu0, mu1), covs)) for xi in x]
    np.testing.assert_allclose(pc.score(x), expected, rtol=1e-10)
    assert pc.precision_.shape == (2, 2, 2) and pc.shrinkage_.tolist() == [0.0, 0.0]


def test_per_class_covariance_catches_a_point_off_a_tight_class():
    # Class 0 is 100x tighter than class 1; a point 0.5 from class 0's mean is typical under the
    # tied covariance (dominated by class 1) but far outside class 0 under its own covariance
    # (and ~45 from class 1; the 99th percentile of chi2 with 2 degrees of freedom is 9.2).
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (300, 2)), rng.normal(5, 1.0, (300, 2))])
    y = np.repeat([0, 1], 300)
    probe = np.array([[0.5, 0.0]])
    tied = FeatureDensity(covariance="tied").fit(X, y)
    per_class = FeatureDensity(covariance="per-class").fit(X, y)
    assert tied.score(probe)[0] < 2.0
    assert per_class.score(probe)[0] > 20.0


def test_ledoit_wolf_shrinkage_is_recorded_and_bounded():
    X, y = _gaussian_classes(30, seed=0)
    fd = FeatureDensity(covariance="tied").fit(X, y)
    assert 0.0 <= fd.shrinkage_ <= 1.0
    assert fd.precision_.shape == (6, 6) and np.allclose(fd.precision_, fd.precision_.T)
    assert FeatureDensity(shrinkage=0.3, covariance="tied").fit(X, y).shrinkage_ == 0.3
    per_class = FeatureDensity().fit(X, y)  # the default: one covariance per class
    assert per_class.precision_.shape == (3, 6, 6) and np.all((0 <= per_class.shrinkage_) & (per_class.shrinkage_ <= 1))


@pytest.mark.parametrize("covariance", ["tied", "per-class"])
def test_calibration_gives_about_five_percent_on_fresh_samples_and_shift_is_detected(covariance):
    X, y = _gaussian_classes(500, seed=0)
    val, _ = _gaussian_classes(400, seed=1)
    fresh, _ = _gaussian_classes(2000, seed=2)
    shifted, _ = _gaussian_classes(300, seed=3, shift=2.0)
    fd = FeatureDensity(covariance=covariance).fit(X, y).calibrate(val, quantile=0.95)
    assert fd.n_calibration_ == 1200 and fd.quantile_ == 0.95
    exceed = float(np.mean(fd.score(fresh) > fd.threshold_))
    # 6000 fresh draws: binomial sd of the share ~0.003; the threshold itself varies by ~0.006.
    assert 0.03 <= exceed <= 0.07, exceed
    assert auroc(fd.score(fresh), fd.score(shifted)) > 0.95


def test_refit_drops_the_old_calibration():
    X, y = _gaussian_classes(50, seed=0)
    fd = FeatureDensity().fit(X, y).calibrate(X)
    fd.fit(X, y)
    assert not hasattr(fd, "threshold_")


@pytest.mark.parametrize("covariance", ["tied", "per-class"])
def test_round_trip_through_weights_only_checkpoint(covariance):
    X, y = _gaussian_classes(40, seed=0)
    fd = FeatureDensity(covariance=covariance).fit(X, y).calibrate(X, 0.9)
    buf = io.BytesIO()
    torch.save({"ood": fd.to_dict()}, buf)
    buf.seek(0)
    back = FeatureDensity.from_dict(torch.load(buf, weights_only=True)["ood"])
    np.testing.assert_array_equal(back.score(X), fd.score(X))
    assert (back.threshold_, back.quantile_, back.n_calibration_) == (fd.threshold_, 0.9, 120)
    np.testing.assert_array_equal(back.shrinkage_, fd.shrinkage_)
    assert list(back.classes_) == [0, 1, 2] and back.covariance == covariance


def test_uncalibrated_round_trip_keeps_threshold_unset():
    X, y = _gaussian_classes(20, seed=0)
    back = FeatureDensity.from_dict(FeatureDensity(0.2).fit(X, y).to_dict())
    assert not hasattr(back, "threshold_") and back.shrinkage == 0.2


@pytest.mark.parametrize("call", ["score", "calibrate", "to_dict"])
def test_unfitted_use_is_a_clear_error(call):
    fd = FeatureDensity()
    args = () if call == "to_dict" else (np.zeros((3, 2)),)
    with pytest.raises(ConfigError, match=f"not fitted yet; call 'fit' before '{call}'"):
        getattr(fd, call)(*args)


def test_bad_inputs_name_the_parameter():
    X, y = _gaussian_classes(20, seed=0)
    fd = FeatureDensity().fit(X, y)
    with pytest.raises(DataError, match=r"'features'.*\(N, 6\).*\(4, 5\)"):
        fd.score(np.zeros((4, 5)))
    with pytest.raises(DataError, match="'y'"):
        FeatureDensity().fit(X, y[:-1])
    with pytest.raises(ConfigError, match="'shrinkage'"):
        FeatureDensity(shrinkage="oas").fit(X, y)
    with pytest.raises(ConfigError, match="'covariance'"):
        FeatureDensity(covariance="diag").fit(X, y)
    with pytest.raises(DataError, match="at least 2 rows.*class 1"):
        FeatureDensity(covariance="per-class").fit(X[:21], y[:21])  # class 1 has one row
    with pytest.raises(ConfigError, match="'quantile'"):
        fd.calibrate(X, quantile=1.0)
    with pytest.raises(DataError, match="at least 19 validation windows"):
        fd.calibrate(X[:10], quantile=0.95)
    with pytest.raises(ConfigError, match="kind='mahalanobis'"):
        FeatureDensity.from_dict({"means": []})


def test_penultimate_features_of_a_faultdiag_model_and_hook_removed():
    model = build_model("drsn-cw", num_classes=5, seed=0)
    model.train()
    X = torch.randn(7, 1, 2048, generator=torch.Generator().manual_seed(0))
    feats, logits = penultimate_features(model, X, batch_size=3, return_logits=True)
    assert feats.shape == (7, model.build_kwargs["widths"][-1]) and logits.shape == (7, 5)
    assert len(model.fc._forward_pre_hooks) == 0 and model.training  # hook gone, mode restored
    with torch.no_grad():
        np.testing.assert_allclose(model.fc(feats), logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.eval()(X), logits, rtol=1e-5, atol=1e-6)  # eval-mode pass
    assert penultimate_features(model, X).shape == (7, 16)


def test_hook_removed_even_when_the_forward_fails():
    model = build_model("resnet", num_classes=3, seed=0)
    with pytest.raises(RuntimeError):
        penultimate_features(model, torch.randn(2, 3, 2048))  # 3 channels into a 1-channel stem
    assert len(model.fc._forward_pre_hooks) == 0


def test_penultimate_features_needs_an_fc_linear():
    with pytest.raises(ConfigError, match="'fc'"):
        penultimate_features(nn.Sequential(nn.Linear(4, 2)), torch.zeros(2, 4))


def test_energy_score_is_minus_logsumexp_and_higher_for_flat_logits():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    e = energy_score(logits, T=2.0)
    np.testing.assert_allclose(e, -2.0 * np.log(np.exp(logits.double().numpy() / 2.0).sum(axis=1)), rtol=1e-12)
    assert e[1] > e[0]


def test_recording_verdict_rule_and_warning():
    scores = np.array([1.0, 2.0, 20.0, 30.0, 40.0])
    v = recording_verdict(scores, threshold=10.0)
    assert v["n_over"] == 3 and v["share_over"] == pytest.approx(0.6) and v["median_score"] == 20.0
    assert v["unlike_training"] and v["warning"].startswith(WARNING_TEXT)
    assert "60% of 5 windows" in v["warning"] and "2.0x the threshold" in v["warning"]
    half = recording_verdict([1.0, 20.0], threshold=10.0)  # exactly half: not more than half
    assert not half["unlike_training"] and half["warning"] is None


def test_auroc_extremes_and_ties():
    assert auroc([1, 2, 3], [4, 5]) == 1.0
    assert auroc([4, 5], [1, 2, 3]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    with pytest.raises(DataError, match="'out_scores'"):
        auroc([1.0], [])


def test_chunked_scoring_matches_one_block(monkeypatch):
    from faultdiag import ood

    X, y = _gaussian_classes(30, seed=0)
    fd = FeatureDensity().fit(X, y)
    whole = fd.score(X)
    monkeypatch.setattr(ood, "_SCORE_ROWS", 7)
    np.testing.assert_allclose(fd.score(X), whole, rtol=1e-12)
