"""faultdiag.data.resample: agreement with scipy's resample_poly (float64), streaming without seams,
the documented passband/stopband on tones, approximated ratios, and Recording.resample using it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly, welch

from faultdiag.data.recording import Recording
from faultdiag.data.resample import MAX_FACTOR, Resampler, resample, resample_plan
from faultdiag.errors import ConfigError

RATES = [(48000, 12000), (51200, 12000), (48828, 12000), (44100, 12000), (25600, 12000), (12000, 48000),
         (10000, 12000)]


def _noise(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, n)).astype(np.float32)


def _tone(f_hz: float, fs_hz: float, n: int, phase: float = 0.3) -> np.ndarray:
    return np.cos(2 * np.pi * f_hz * np.arange(n) / fs_hz + phase)


@pytest.mark.parametrize("from_hz, to_hz", RATES)
def test_matches_resample_poly_in_the_passband(from_hz, to_hz):
    plan = resample_plan(from_hz, to_hz)
    assert plan.exact and plan.rate_error == 0 and plan.up / plan.down == to_hz / from_hz
    x = _noise(2 * from_hz)                                          # 2 s of white noise
    y = resample(x, from_hz, to_hz)
    ref = resample_poly(x.astype(np.float64), plan.up, plan.down, axis=1)
    assert y.dtype == np.float32 and y.shape == ref.shape == (2, plan.n_out(x.shape[1]))
    f, p_err = welch(y - ref, to_hz, nperseg=1024)
    _, p_ref = welch(ref, to_hz, nperseg=1024)
    band = f <= 0.84 * min(from_hz, to_hz) / 2
    assert 10 * np.log10(p_err[:, band] / p_ref[:, band]).max() < -60


@pytest.mark.parametrize("from_hz, to_hz", [(48000, 12000), (48828, 12000), (44100, 12000), (12000, 48000)])
def test_blocks_of_any_size_equal_the_whole_signal(from_hz, to_hz):
    x = _noise(30_011, seed=1)
    whole = resample(x, from_hz, to_hz)
    rng = np.random.default_rng(2)
    cuts = np.cumsum(rng.integers(1, 3000, size=40))
    cuts = np.concatenate([[1, 2, 3], cuts[cuts < x.shape[1]]])   # a few one-sample blocks first
    r = Resampler(resample_plan(from_hz, to_hz), 2)
    parts = [r.feed(b) for b in np.split(x, cuts, axis=1)] + [r.flush()]
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


@pytest.mark.parametrize("from_hz, to_hz", [(48000, 12000), (51200, 12000), (44100, 12000)])
def test_passband_flat_and_aliases_suppressed_as_documented(from_hz, to_hz):
    f_c, n = to_hz / 2, 4 * from_hz
    keep = slice(2000, -2000)                                       # away from the zero-padded ends
    for f in (0.05 * f_c, 0.5 * f_c, 0.85 * f_c):                   # passband: within 0.1 dB
        y = resample(_tone(f, from_hz, n)[None], from_hz, to_hz)[0, keep]
        gain_db = 20 * np.log10(np.sqrt(2) * y.std())
        assert abs(gain_db) < 0.1, (f, gain_db)
    for f in (1.16 * f_c, 1.5 * f_c, 1.9 * f_c):                    # folds to 2 f_c - f < 0.84 f_c
        y = resample(_tone(f, from_hz, n)[None], from_hz, to_hz)[0, keep]
        assert 20 * np.log10(np.sqrt(2) * y.std()) < -53, f


def test_tone_keeps_its_frequency_and_phase():
    from_hz, to_hz, f = 48828, 12000, 1234.5
    x = _tone(f, from_hz, 3 * from_hz)[None]
    y = resample(x, from_hz, to_hz)[0]
    expected = _tone(f, to_hz, y.size)
    keep = slice(1000, -1000)
    err = y[keep] - expected[keep]
    assert 20 * np.log10(err.std() / expected[keep].std()) < -60


def test_an_awkward_rate_is_approximated_and_reported():
    plan = resample_plan(48000.37, 12000)
    assert not plan.exact and max(plan.up, plan.down) <= MAX_FACTOR
    assert 0 < abs(plan.rate_error) < 1 / (MAX_FACTOR - 1)
    assert plan.out_hz == pytest.approx(12000 * (1 + plan.rate_error), rel=1e-12)
    small = resample_plan(48828, 12000, max_factor=1000)            # 1000/4069 is out of reach: approximated
    assert not small.exact and max(small.up, small.down) <= 1000 and abs(small.rate_error) < 1 / 999
    x = _tone(1000.0, 48828, 2 * 48828)[None]
    y = resample(x, 48828, 12000, max_factor=1000)[0]
    expected = _tone(1000.0, small.out_hz, y.size)                  # a tone sampled at the rate actually used
    keep = slice(1000, -1000)
    assert 20 * np.log10((y[keep] - expected[keep]).std() / expected[keep].std()) < -60


def test_bad_rates_are_refused_with_the_parameter_named():
    with pytest.raises(ConfigError, match="'from_hz'"):
        resample_plan(-1, 12000)
    with pytest.raises(ConfigError, match="'to_hz'"):
        resample_plan(12000, float("nan"))
    for from_hz, to_hz in ((1e9, 1.0), (1.0, 1e9), (20000.5, 1.0)):  # ratios beyond [1/16384, 16384]
        with pytest.raises(ConfigError, match="outside"):
            resample_plan(from_hz, to_hz)
    with pytest.raises(ConfigError, match="'block'"):
        Resampler(resample_plan(48000, 12000), 2).feed(np.zeros((3, 10), np.float32))


def test_short_signals_and_equal_rates():
    x = _noise(5, channels=1)
    np.testing.assert_array_equal(resample(x, 12000, 12000), x)
    y = resample(x, 48000, 12000)
    ref = resample_poly(x.astype(np.float64), 1, 4, axis=1)
    np.testing.assert_allclose(y, ref, atol=1e-6)
    r = Resampler(resample_plan(48000, 12000), 1)
    assert r.flush().shape == (1, 0)                                # nothing in, nothing out


def test_recording_resample_takes_any_rate():
    rec = Recording(_noise(48828, channels=1), 48828, ("DE",))
    out = rec.resample(12000)
    assert out.fs_hz == 12000 and out.n_samples == 12000 and out.meta["resampled_from_hz"] == 48828
    np.testing.assert_allclose(out.signal, resample(rec.signal, 48828, 12000), atol=0)


def test_the_resampler_keeps_no_view_of_the_callers_blocks():
    x = _noise(20_000, channels=1, seed=3)
    whole = resample(x, 48000, 12000)
    r = Resampler(resample_plan(48000, 12000), 1)
    parts, block = [], np.empty((1, 1000), np.float32)
    for a in range(0, x.shape[1], 1000):  # one buffer, overwritten for every block
        block[:] = x[:, a:a + 1000]
        parts.append(r.feed(block))
    parts.append(r.flush())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-5)
