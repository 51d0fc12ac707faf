import math

import numpy as np
import pytest
import torch

from faultdiag.data.noise import NOISE_KINDS, AddNoise, add_image_noise, add_noise, measure_snr_db
from faultdiag.errors import ConfigError, DataError

torch.set_num_threads(1)


def _signal(shape=(8, 2, 2048), seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(shape[-1], dtype=torch.float32)
    amp = 0.1 + torch.rand(shape[:-1] + (1,), generator=g) * 3  # every window a different power
    return amp * torch.sin(2 * math.pi * 0.013 * t) + 0.2 * amp * torch.randn(shape, generator=g)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0])
def test_snr_per_window_is_exact(kind, snr_db):
    x = _signal()
    y = add_noise(x, snr_db, kind=kind, generator=torch.Generator().manual_seed(1))
    got = measure_snr_db(x, y)
    assert got.shape == x.shape[:-1]
    assert torch.all((got - snr_db).abs() < 0.1), got


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_snr_per_recording_is_exact_over_whole_array(kind):
    x = _signal((4, 1, 2048)).numpy()
    y = add_noise(x, 3.0, kind=kind, per="recording", generator=0)
    got = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(got - 3.0) < 0.1
    per_window = measure_snr_db(x, y).ravel()
    assert per_window.std() > 1.0  # windows of unequal power get unequal SNRs


def test_snr_tensor_per_window_left_aligned():
    x = _signal((5, 3, 2048))
    snr = torch.tensor([-5.0, 0.0, 5.0, 10.0, 20.0])
    got = measure_snr_db(x, add_noise(x, snr, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(got, snr[:, None].expand(5, 3), atol=0.1)
    with pytest.raises(ConfigError, match="'snr_db'.*leading dims"):
        add_noise(x, torch.zeros(3))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_reproducible_with_seed_and_different_with_another(kind):
    x = _signal((2, 1, 512))
    a = add_noise(x, 0.0, kind, generator=torch.Generator().manual_seed(7))
    b = add_noise(x, 0.0, kind, generator=torch.Generator().manual_seed(7))
    c = add_noise(x, 0.0, kind, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    xn = x.numpy()
    an = add_noise(xn, 0.0, kind, generator=np.random.default_rng(3))
    bn = add_noise(xn, 0.0, kind, generator=3)
    cn = add_noise(xn, 0.0, kind, generator=4)
    assert np.array_equal(an, bn) and not np.array_equal(an, cn)


def test_pink_spectrum_slope_is_minus_one_and_zero_mean():
    x = torch.ones(256, 4096)
    noise = add_noise(x, 0.0, "pink", generator=torch.Generator().manual_seed(0)) - x
    assert noise.mean(-1).abs().max() < 1e-4
    psd = (torch.fft.rfft(noise.double(), dim=-1).abs() ** 2).mean(0)
    k = torch.arange(4, 2000)
    slope = np.polyfit(np.log(k.numpy()), np.log(psd[k].numpy()), 1)[0]
    assert abs(slope + 1) < 0.05, slope
    white = add_noise(x, 0.0, "gaussian", generator=torch.Generator().manual_seed(0)) - x
    psd_w = (torch.fft.rfft(white.double(), dim=-1).abs() ** 2).mean(0)
    assert abs(np.polyfit(np.log(k.numpy()), np.log(psd_w[k].numpy()), 1)[0]) < 0.05


def test_laplacian_kurtosis_and_gaussian_kurtosis():
    x = torch.ones(64, 4096, dtype=torch.float64)

    def excess_kurtosis(n):
        n = n - n.mean(-1, keepdim=True)
        return (n.pow(4).mean(-1) / n.pow(2).mean(-1) ** 2 - 3).mean().item()

    lap = add_noise(x, 0.0, "laplacian", generator=torch.Generator().manual_seed(0)) - x
    gau = add_noise(x, 0.0, "gaussian", generator=torch.Generator().manual_seed(0)) - x
    assert abs(excess_kurtosis(lap) - 3.0) < 0.3
    assert abs(excess_kurtosis(gau)) < 0.15
    lap_np = add_noise(x.numpy(), 0.0, "laplacian", generator=0) - x.numpy()
    assert abs(excess_kurtosis(torch.from_numpy(lap_np)) - 3.0) < 0.3


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_type_and_dtype_preserved(dtype):
    xn = _signal((2, 1, 256)).numpy().astype(dtype)
    yn = add_noise(xn, 5.0, generator=0)
    assert isinstance(yn, np.ndarray) and yn.dtype == dtype and yn.shape == xn.shape
    xt = torch.from_numpy(xn)
    yt = add_noise(xt, 5.0, "pink", generator=torch.Generator().manual_seed(0))
    assert isinstance(yt, torch.Tensor) and yt.dtype == xt.dtype and yt.shape == xt.shape
    assert isinstance(measure_snr_db(xn, yn), np.ndarray)


def test_read_only_view_input_and_1d():
    from numpy.lib.stride_tricks import sliding_window_view

    view = sliding_window_view(np.random.default_rng(0).standard_normal(4096).astype(np.float32), 512)[::256]
    y = add_noise(view, 10.0, generator=1)
    assert np.all(np.abs(measure_snr_db(view, y) - 10) < 0.1)
    assert add_noise(torch.randn(300), 0.0).shape == (300,)


def test_flat_window_is_unchanged_not_nan():
    x = torch.zeros(3, 1, 128)
    x[1] = torch.randn(1, 128)
    y = add_noise(x, 0.0, "pink", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(y).all()
    assert torch.equal(y[0], x[0]) and torch.equal(y[2], x[2])
    assert not torch.equal(y[1], x[1])


def test_a_tensor_of_snrs_on_another_device_is_not_read_back_to_check_it():
    from faultdiag.data.noise import _check_finite

    _check_finite(torch.full((3,), float("nan"), device="meta"), torch.zeros(3, device="meta"))  # reading would raise
    with pytest.raises(ConfigError, match="must be finite"):
        _check_finite(torch.tensor([float("nan")]), torch.tensor([float("nan")]))


@pytest.mark.parametrize("snr", [float("nan"), float("inf"), torch.tensor([0.0, float("-inf")])])
def test_non_finite_snr_is_config_error(snr):
    with pytest.raises(ConfigError, match="'snr_db' parameter must be finite"):
        add_noise(torch.zeros(2, 64), snr)


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"'kind'.*\['gaussian', 'laplacian', 'pink'\].*'brown'"):
        add_noise(torch.zeros(64), 0.0, kind="brown")
    with pytest.raises(ConfigError, match="'per'"):
        add_noise(torch.zeros(64), 0.0, per="channel")
    with pytest.raises(ConfigError, match="one number when per='recording'"):
        add_noise(torch.zeros(2, 64), torch.zeros(2), per="recording")
    with pytest.raises(DataError, match="floating-point"):
        add_noise(np.zeros(64, dtype=np.int16), 0.0)
    with pytest.raises(ConfigError, match="'snr_db'"):
        add_noise(torch.zeros(64), "loud")


def test_autograd_flows_through_signal():
    x = _signal((2, 1, 128)).requires_grad_()
    add_noise(x, 0.0, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_add_image_noise_matches_article_definition():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = add_image_noise(x, 0.5, generator=torch.Generator().manual_seed(1))
    d = y - x
    assert d.min() >= 0 and d.max() < 0.5 and abs(d.mean().item() - 0.25) < 0.01
    yn = add_image_noise(x.numpy(), 0.5, generator=1)
    assert isinstance(yn, np.ndarray) and yn.dtype == np.float32
    assert np.array_equal(yn, add_image_noise(x.numpy(), 0.5, generator=1))
    with pytest.raises(ConfigError, match="'scale'"):
        add_image_noise(x, -1.0)


def test_add_noise_module_range_and_fixed():
    x = _signal((16, 1, 1024))
    fixed = AddNoise(5.0, "laplacian", generator=torch.Generator().manual_seed(0))
    assert torch.all((measure_snr_db(x, fixed(x)) - 5).abs() < 0.1)
    ranged = AddNoise((-5.0, 10.0), generator=torch.Generator().manual_seed(0))
    got = measure_snr_db(x, ranged(x))[:, 0]
    assert got.min() >= -5.1 and got.max() <= 10.1 and got.std() > 1
    assert "kind='gaussian'" in repr(ranged)
    with pytest.raises(ConfigError, match="'snr_db'"):
        AddNoise((3.0, 1.0))
