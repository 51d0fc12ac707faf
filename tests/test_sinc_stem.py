"""SincBandpass1d: shapes ('same' padding like conv_same), frequency response at init, gradients, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faultdiag.errors import ConfigError
from faultdiag.models.blocks import conv_same
from faultdiag.models.sinc_stem import SincBandpass1d

FS = 12000.0


def _response(kernels: torch.Tensor, n_fft: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """|frequency response| of FIR kernels ``(M, K)`` on the rfft grid; returns (freqs_hz, (M, F))."""
    h = np.fft.rfft(kernels.detach().double().numpy(), n=n_fft, axis=-1)
    return np.fft.rfftfreq(n_fft, 1 / FS), np.abs(h)


@pytest.mark.parametrize("kernel_size", [64, 65])
@pytest.mark.parametrize("stride", [1, 3, 8])
@pytest.mark.parametrize("length", [1000, 1024])
def test_output_shape_matches_conv_same(kernel_size, stride, length):
    stem = SincBandpass1d(8, kernel_size, FS, 2000, 4000, stride)
    x = torch.randn(3, 2, length)
    y = stem(x)
    ref = conv_same(1, 1, 8, kernel_size, stride)(x[:, :1])
    assert y.shape == (3, 2 * 8, math.ceil(length / stride)) and y.shape[-1] == ref.shape[-1]
    # channel c * out + i is input channel c through filter i
    torch.testing.assert_close(y[:, 8:], stem(x[:, 1:]), rtol=0, atol=0)


def test_init_tiles_the_band():
    stem = SincBandpass1d(6, 129, FS, 2400, 4200)
    low, high = (t.detach().numpy() for t in stem.band_edges_hz())
    np.testing.assert_allclose(low, 2400 + 300 * np.arange(6), rtol=1e-5)
    np.testing.assert_allclose(high, low + 300, rtol=1e-5)


def test_frequency_response_at_init_passes_the_band_and_stops_outside():
    k = 129
    stem = SincBandpass1d(4, k, FS, 2000, 4000)
    freqs, resp = _response(stem.filters())
    transition = 3.3 * FS / k  # Hamming-windowed sinc: main-lobe transition width
    low, high = (t.detach().numpy() for t in stem.band_edges_hz())
    for i in range(4):
        centre = np.argmin(np.abs(freqs - (low[i] + high[i]) / 2))
        assert 0.97 < resp[i, centre] < 1.03
        far = (freqs < low[i] - transition) | (freqs > high[i] + transition)
        assert resp[i, far].max() < 0.01  # Hamming sidelobes are ~ -53 dB
    bank = np.abs(np.fft.rfft(stem.filters().detach().double().sum(0).numpy(), n=16384))
    inside = (freqs > 2000 + transition) & (freqs < 4000 - transition)
    outside = (freqs < 2000 - transition) | (freqs > 4000 + transition)
    assert np.abs(bank[inside] - 1).max() < 0.02 and bank[outside].max() < 0.01


def test_filters_a_sine_by_its_frequency():
    stem = SincBandpass1d(1, 129, FS, 2500, 3500)
    t = torch.arange(4096) / FS
    inband, outband = (torch.sin(2 * math.pi * f * t)[None, None] for f in (3000.0, 1000.0))
    core = slice(200, -200)
    with torch.no_grad():
        assert stem(inband)[..., core].std() / inband[..., core].std() == pytest.approx(1.0, abs=0.02)
        assert stem(outband)[..., core].std() / outband[..., core].std() < 0.01


def test_gradients_reach_the_cutoffs():
    stem = SincBandpass1d(4, 65, FS, 1000, 5000, stride=2)
    x = torch.randn(2, 1, 512, generator=torch.Generator().manual_seed(0))
    stem(x).pow(2).mean().backward()
    for p in (stem.low_, stem.width_):
        assert p.grad is not None and torch.isfinite(p.grad).all() and (p.grad.abs() > 0).all()


def test_cutoffs_stay_positive_and_below_nyquist_whatever_the_parameters():
    stem = SincBandpass1d(4, 65, FS, 1000, 5000)
    with torch.no_grad():
        stem.low_.copy_(torch.tensor([-3.0, 0.0, 0.7, 5.0]))
        stem.width_.copy_(torch.tensor([-2.0, 0.0, 0.9, -7.0]))
    low, high = (t.detach() for t in stem.band_edges_hz())
    assert (low >= stem.min_low_hz - 1e-3).all() and (high <= FS / 2 + 1e-3).all()
    assert (high - low >= stem.min_width_hz - 1e-3).all()


def test_a_step_of_adam_moves_each_cutoff_parameter_by_about_lr_times_fs():
    stem = SincBandpass1d(2, 65, FS, 2000, 4000)
    before = [p.detach().clone() for p in (stem.low_, stem.width_)]
    opt = torch.optim.Adam(stem.parameters(), lr=1e-3)
    stem(torch.randn(2, 1, 256, generator=torch.Generator().manual_seed(1))).abs().mean().backward()
    opt.step()
    for p, p0 in zip((stem.low_, stem.width_), before):
        moved_hz = (p.detach() - p0).abs() * FS
        torch.testing.assert_close(moved_hz, torch.full_like(moved_hz, 12.0), rtol=0.01, atol=0.0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(out_channels=0), "out_channels"),
        (dict(kernel_size=2.5), "kernel_size"),
        (dict(low_hz=4000, high_hz=3000), "low_hz"),
        (dict(high_hz=7000), "fs_hz / 2"),
        (dict(out_channels=64, kernel_size=33), "narrower than min_width_hz"),
        (dict(fs_hz=float("nan")), "fs_hz"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, needle):
    args = dict(out_channels=4, kernel_size=65, fs_hz=FS, low_hz=1000, high_hz=5000)
    with pytest.raises(ConfigError, match=needle):
        SincBandpass1d(**{**args, **kwargs})
