import io
import json

import numpy as np
import pytest
import torch

from faultdiag.data import normalize
from faultdiag.data.normalize import Standardizer
from faultdiag.errors import ConfigError, DataError


def _windows(n=40, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3, 128)).astype(np.float32)
    return X * np.array([1.0, 5.0, 0.1], np.float32)[:, None] + np.array([0.0, 10.0, -2.0], np.float32)[:, None] + shift


def test_init_only_stores_parameters():
    s = Standardizer(per_channel=False, eps=1e-3)
    assert vars(s) == {"per_channel": False, "eps": 1e-3}


def test_per_channel_stats_and_result():
    X = _windows()
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.mean_, X.astype(np.float64).mean(axis=(0, 2)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s.std_, X.astype(np.float64).std(axis=(0, 2)), rtol=1e-10)
    Z = s.transform(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2)), 1, atol=1e-5)


def test_global_stats_differ_from_per_channel():
    X = _windows()
    g = Standardizer(per_channel=False).fit(X)
    assert g.mean_.shape == g.std_.shape == (1,)
    np.testing.assert_allclose(g.mean_[0], X.astype(np.float64).mean(), rtol=1e-10)
    np.testing.assert_allclose(g.std_[0], X.astype(np.float64).std(), rtol=1e-10)
    Z = g.transform(X)
    assert abs(Z.mean()) < 1e-4 and abs(Z.std() - 1) < 1e-4
    assert Z.std(axis=(0, 2))[1] > 3 * Z.std(axis=(0, 2))[2]  # channel scales kept relative


def test_chunked_fit_matches_numpy(monkeypatch):
    monkeypatch.setattr(normalize, "_CHUNK_ELEMENTS", 1000)  # forces many chunks
    X = _windows(n=37)
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.std_, X.astype(np.float64).std(axis=(0, 2)), rtol=1e-10)


def test_val_is_transformed_with_train_stats():
    train, val = _windows(seed=0), _windows(seed=1, shift=3.0)
    s = Standardizer().fit(train)
    Zv = s.transform(val)
    np.testing.assert_allclose(Zv, (val - s.mean_[:, None]) / s.std_[:, None], rtol=1e-5, atol=1e-5)
    assert np.all(Zv.mean(axis=(0, 2)) > 0.25)  # the val shift is visible, not normalised away


@pytest.mark.parametrize("per_channel", [True, False])
def test_round_trip_numpy_and_torch(per_channel):
    X = _windows()
    s = Standardizer(per_channel=per_channel).fit(X)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X, rtol=1e-5, atol=1e-4)
    Xt = torch.from_numpy(X).double()
    Zt = s.transform(Xt)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float64
    np.testing.assert_allclose(Zt.numpy(), s.transform(X), rtol=1e-5, atol=1e-5)
    assert torch.allclose(s.inverse_transform(Zt), Xt, atol=1e-9)


def test_fit_on_torch_equals_fit_on_numpy():
    X = _windows()
    a, b = Standardizer().fit(X), Standardizer().fit(torch.from_numpy(X))
    np.testing.assert_array_equal(a.mean_, b.mean_)
    np.testing.assert_array_equal(a.std_, b.std_)


def test_to_dict_from_dict_json_round_trip():
    X = _windows()
    s = Standardizer().fit(X)
    d = json.loads(json.dumps(s.to_dict()))
    assert all(type(v) is float for v in d["mean"] + d["std"])
    r = Standardizer.from_dict(d)
    np.testing.assert_array_equal(r.transform(X), s.transform(X))
    buf = io.BytesIO()
    torch.save(s.to_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == s.to_dict()


def test_flat_channel_is_not_blown_up():
    X = _windows()
    X[:, 2] = 4.0
    Z = Standardizer(eps=1e-6).fit_transform(X)
    assert np.isfinite(Z).all() and np.all(Z[:, 2] == 0)


def test_errors():
    X = _windows()
    with pytest.raises(ConfigError, match="not fitted yet; call 'fit' before 'transform'"):
        Standardizer().transform(X)
    with pytest.raises(ConfigError, match="before 'inverse_transform'"):
        Standardizer().inverse_transform(X)
    with pytest.raises(ConfigError, match="before 'to_dict'"):
        Standardizer().to_dict()
    s = Standardizer().fit(X)
    with pytest.raises(DataError, match=r"expects X of shape \(\.\.\., 3, L\).*\(4, 2, 8\)"):
        s.transform(np.zeros((4, 2, 8), np.float32))
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or Inf"):
        Standardizer().fit(bad)
    with pytest.raises(ConfigError, match="'eps'"):
        Standardizer(eps=0).fit(X)
    with pytest.raises(ConfigError, match="missing \\['std'\\]"):
        Standardizer.from_dict({"per_channel": True, "eps": 1e-8, "mean": [0.0]})
    with pytest.raises(ConfigError, match="equal-length"):
        Standardizer.from_dict({"per_channel": True, "eps": 1e-8, "mean": [0.0], "std": [1.0, 2.0]})
