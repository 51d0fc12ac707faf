"""The signal-processing front end: band-pass, spectra, FrontEnd spec, band choice, plot.

Real-data tests (CWRU, HIT-SM) skip when ../shared/data is absent; each takes a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

from faultdiag.data.noise import add_noise
from faultdiag.data.simulate import SIM_CLASSES, simulated_dataset
from faultdiag.data.windows import split_windows
from faultdiag.errors import ConfigError, DataError
from faultdiag.frontend import (
    FRONT_END_KINDS, FrontEnd, analytic_bandpass, apply_front_end, bandpass, bandpass_gain, candidate_bands,
    choose_band, envelope_spectrum, magnitude_spectrum, spectrum_freqs_hz,
)
from faultdiag.frontend.band_select import band_statistics
from faultdiag.frontend.filters import pad_length

BANDS = [(12000, 2500, 4000), (12000, 500, 875), (51200, 9600, 11200), (51200, 500, 2133)]


def _noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _sos(fs, lo, hi, order=4):
    return signal.butter(order, (lo, hi), btype="bandpass", fs=fs, output="sos")


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize("fs, lo, hi", BANDS)
def test_bandpass_equals_sosfiltfilt_in_the_interior(fs, lo, hi):
    x = _noise((3, 2, 2048)) + np.cumsum(_noise((3, 2, 2048), 1), axis=-1) * 0.05  # noise + a drift
    ref = signal.sosfiltfilt(_sos(fs, lo, hi), x, axis=-1)
    y = bandpass(torch.tensor(x), fs, lo, hi)
    assert y.dtype == torch.float32 and y.shape == x.shape
    pad = pad_length(2048, fs, lo, hi)
    err = np.abs(y.double().numpy() - ref)[..., pad:-pad].max() / ref.std()
    assert err < 1e-3  # ~1e-6 for most bands; scipy's edge transient of 0.5-2.1 kHz at 51.2 kHz reaches 2e-4


@pytest.mark.parametrize("fs, lo, hi", BANDS)
def test_bandpass_equals_sosfiltfilt_with_the_same_extension_everywhere(fs, lo, hi):
    x = _noise((2, 1, 2048), 2)
    pad = pad_length(2048, fs, lo, hi)
    ref = signal.sosfiltfilt(_sos(fs, lo, hi), x, axis=-1, padlen=pad)
    assert np.abs(bandpass(torch.tensor(x), fs, lo, hi).double().numpy() - ref).max() / ref.std() < 1e-3


def test_edge_difference_to_default_sosfiltfilt_is_small_and_confined_to_the_ends():
    fs, lo, hi = 12000, 2500, 4000
    x = _noise((8, 1, 2048), 3)
    ref = signal.sosfiltfilt(_sos(fs, lo, hi), x, axis=-1)
    diff = bandpass(torch.tensor(x), fs, lo, hi).double().numpy() - ref
    pad = pad_length(2048, fs, lo, hi)
    edge_rms = np.sqrt(np.mean(diff[..., :pad] ** 2)) / ref.std()
    assert 1e-5 < edge_rms < 0.01  # scipy's short extension leaves a transient near the ends (docstring)
    assert np.abs(diff[..., pad:-pad]).max() / ref.std() < 1e-4


@pytest.mark.parametrize("fs, lo, hi", BANDS)
@pytest.mark.parametrize("order", [2, 4])
def test_gain_is_the_squared_butterworth_response(fs, lo, hi, order):
    freqs, h = signal.sosfreqz(_sos(fs, lo, hi, order), worN=4096, fs=fs)
    np.testing.assert_allclose(bandpass_gain(freqs, fs, lo, hi, order), np.abs(h) ** 2, atol=1e-9)


@pytest.mark.parametrize("order", [2, 4, 6])
def test_minus_3_db_points_and_band_edges(order):
    fs, lo, hi = 12000, 2500, 4000
    f = np.linspace(1, fs / 2 - 1, 200_001)
    g = bandpass_gain(f, fs, lo, hi, order)
    np.testing.assert_allclose(bandpass_gain(np.array([lo, hi]), fs, lo, hi, order), 0.5, rtol=1e-9)  # -6 dB
    passband = f[g >= 1 / math.sqrt(2)]  # filtfilt -3 dB points: |lam| = (sqrt 2 - 1)^(1 / 2n)
    w = lambda v: 2 * fs * np.tan(np.pi * v / fs)  # noqa: E731
    lam = lambda v: (w(v) ** 2 - w(lo) * w(hi)) / (w(v) * (w(hi) - w(lo)))  # noqa: E731
    target = (math.sqrt(2) - 1) ** (1 / (2 * order))
    assert lo < passband.min() < hi and lo < passband.max() < hi
    assert abs(abs(lam(passband.min())) - target) < 1e-3 and abs(abs(lam(passband.max())) - target) < 1e-3


def test_stop_band_attenuation_measured_on_sines():
    fs, lo, hi, n = 12000, 2500, 4000, 8192
    t = np.arange(n) / fs
    amp = {}
    for f in (500.0, 1500.0, 3200.0, 5000.0):
        y = bandpass(torch.tensor(np.sin(2 * np.pi * f * t))[None, None], fs, lo, hi).double().numpy()[0, 0]
        amp[f] = np.sqrt(2) * y[1000:-1000].std()
    assert amp[3200.0] == pytest.approx(bandpass_gain(np.array([3200.0]), fs, lo, hi)[0], rel=1e-3)
    for f in (500.0, 1500.0, 5000.0):
        assert 20 * np.log10(amp[f]) < -50
        assert amp[f] == pytest.approx(bandpass_gain(np.array([f]), fs, lo, hi)[0], rel=0.05, abs=1e-6)


def test_windows_and_channels_are_filtered_independently():
    x = torch.tensor(_noise((5, 3, 1000), 4), dtype=torch.float32)
    y = bandpass(x, 12000, 2000, 4000)
    torch.testing.assert_close(y[2:3, 1:2], bandpass(x[2:3, 1:2], 12000, 2000, 4000), rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bandpass_on_cuda_equals_cpu():
    x = torch.tensor(_noise((4, 1, 2048), 5), dtype=torch.float32)
    torch.testing.assert_close(bandpass(x.cuda(), 12000, 2500, 4000).cpu(), bandpass(x, 12000, 2500, 4000),
                               rtol=1e-4, atol=1e-5)


def test_analytic_signal_real_part_is_the_bandpass_and_its_modulus_the_envelope():
    fs, n = 12000, 4096
    t = np.arange(n) / fs
    env = 1 + 0.5 * np.cos(2 * np.pi * 40 * t)
    x = torch.tensor(env * np.cos(2 * np.pi * 3000 * t))[None, None]
    a = analytic_bandpass(x, fs, 2000, 4000)
    assert a.dtype == torch.complex64
    torch.testing.assert_close(a.real, bandpass(x, fs, 2000, 4000), rtol=0, atol=1e-5)
    core = slice(500, -500)
    np.testing.assert_allclose(a.abs()[0, 0, core].numpy(), env[core], atol=0.01)


@pytest.mark.parametrize(
    "args, needle",
    [
        ((12000, 4000, 2500), "0 < low_hz < high_hz"),
        ((12000, 0, 2500), "0 < low_hz < high_hz"),
        ((12000, 2500, 6000), "fs_hz / 2 = 6000"),
        ((-1, 2500, 4000), "fs_hz"),
        ((12000, float("nan"), 4000), "low_hz"),
    ],
)
def test_bad_band_names_the_constraint(args, needle):
    with pytest.raises(ConfigError, match=needle):
        bandpass(torch.zeros(1, 1, 64), *args)


def test_bad_windows_and_order_are_refused():
    with pytest.raises(DataError, match="torch.Tensor"):
        bandpass(np.zeros((1, 1, 64)), 12000, 2500, 4000)
    with pytest.raises(DataError, match=r"\(N, C, L\)"):
        bandpass(torch.zeros(64), 12000, 2500, 4000)
    with pytest.raises(DataError, match="floating-point"):
        bandpass(torch.zeros(1, 1, 64, dtype=torch.int64), 12000, 2500, 4000)
    with pytest.raises(ConfigError, match="'order'"):
        bandpass(torch.zeros(1, 1, 64), 12000, 2500, 4000, order=0)


# ---------------------------------------------------------------- spectra


def test_magnitude_spectrum_reads_a_sine_amplitude_at_its_bin():
    fs, n, k = 12000, 2048, 300
    t = np.arange(n) / fs
    x = torch.tensor(0.7 * np.sin(2 * np.pi * k * fs / n * t) + 0.2)[None, None]
    lin = magnitude_spectrum(x, scale="linear")
    assert lin.shape == (1, 1, n // 2) and lin.dtype == torch.float32
    assert int(lin.argmax()) == k - 1 and float(lin.max()) == pytest.approx(0.7, rel=1e-3)
    assert spectrum_freqs_hz(n, fs)[k - 1] == pytest.approx(k * fs / n)
    db = magnitude_spectrum(x)
    assert float(db[0, 0, k - 1]) == pytest.approx(20 * math.log10(0.7), abs=0.01)


def test_db_spectrum_of_silence_is_finite():
    assert torch.isfinite(magnitude_spectrum(torch.zeros(2, 1, 256))).all()


def test_envelope_spectrum_shows_the_impact_rate():
    fs, n, k = 12000, 4096, 37  # impacts every n / k samples: a line at bin k (108.4 Hz)
    t = np.arange(n) / fs
    phase = (np.arange(n) % (n / k)) / fs
    x = np.exp(-800 * phase) * np.sin(2 * np.pi * 3200 * t) + 0.05 * _noise(n, 6)
    es = envelope_spectrum(torch.tensor(x)[None, None], fs, 2500, 4000, scale="linear")
    assert es.shape == (1, 1, n // 2)
    assert int(es[0, 0, : 3 * k].argmax()) == k - 1  # the fundamental of the impact rate, not DC


# ---------------------------------------------------------------- FrontEnd spec


def test_front_end_round_trips_through_json_and_shapes_match_output_length():
    x = torch.randn(3, 2, 1000)
    for kind in FRONT_END_KINDS:
        band = dict(low_hz=2500.0, high_hz=4000.0) if kind in ("bandpass", "envelope_spectrum") else {}
        spec = FrontEnd(kind, fs_hz=12000, **band)
        again = FrontEnd.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again == spec
        assert apply_front_end(x, spec).shape == (3, 2, spec.output_length(1000))
    torch.testing.assert_close(apply_front_end(x, FrontEnd("none")), x)
    spec = FrontEnd("bandpass", 2500, 4000, fs_hz=12000)
    torch.testing.assert_close(apply_front_end(x, spec), bandpass(x, 12000, 2500, 4000))


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(kind="wavelet"), "'kind'"),
        (dict(kind="bandpass", low_hz=2500.0), "needs low_hz, high_hz and fs_hz"),
        (dict(kind="bandpass", low_hz=2500.0, high_hz=7000.0, fs_hz=12000.0), "fs_hz / 2"),
        (dict(kind="spectrum", low_hz=1.0), "takes no band"),
        (dict(kind="none", fs_hz=-5.0), "'fs_hz'"),
    ],
)
def test_bad_front_end_spec_is_refused(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        FrontEnd(**kwargs)


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="Unknown front-end keys"):
        FrontEnd.from_dict({"kind": "none", "band": [1, 2]})


# ---------------------------------------------------------------- band choice


@pytest.mark.parametrize("fs", [12000.0, 51200.0])
def test_candidate_bands_respect_the_limits(fs):
    grid = candidate_bands(fs)
    nyq = fs / 2
    assert {lv for lv, _, _ in grid} <= {1.0, 1.6, 2.0, 2.6, 3.0, 3.6, 4.0}
    for _, lo, hi in grid:
        assert lo >= 500 and hi <= 0.98 * nyq and hi - lo >= nyq / 16 - 1e-9
    assert len(grid) == len(set(grid))


def _impulsive(n_windows: int, fs: float, ring_hz: float, rate_hz: float, seed: int, n: int = 2048) -> np.ndarray:
    """Windows (n_windows, 1, n): decaying rings at ``ring_hz`` every 1/rate_hz s plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    out = np.empty((n_windows, 1, n))
    for i in range(n_windows):
        phase = (t + rng.uniform(0, 1 / rate_hz)) % (1 / rate_hz)
        out[i, 0] = np.exp(-300 * phase) * np.sin(2 * np.pi * ring_hz * phase) + 0.1 * rng.standard_normal(n)
    return out


def test_choice_is_deterministic_and_independent_of_window_order():
    X = np.concatenate([_impulsive(20, 12000, 3300, 90, 0), 0.1 * _noise((20, 1, 2048), 7)])
    y = np.repeat([1, 0], 20)
    a = choose_band(X, y, 12000, normal_label=0)
    perm = np.random.default_rng(0).permutation(40)
    b = choose_band(X[perm], y[perm], 12000, normal_label=0)
    assert (a.low_hz, a.high_hz) == (b.low_hz, b.high_hz) and a.low_hz < 3300 < a.high_hz
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    rows = a.table()
    assert rows.chosen.iloc[0] and len(rows) == len(a.bands_hz) and json.dumps(a.to_dict())


@pytest.mark.parametrize("snr_db", [0.0, -4.0])
def test_noise_aware_statistics_predict_the_noisy_ones(snr_db):
    """The expected kurtosis and power under white noise, computed from clean windows, match noisy windows."""
    fs, bands = 12000.0, [(2500.0, 4000.0), (4500.0, 5900.0), (600.0, 1500.0)]
    X = torch.tensor(_impulsive(64, fs, 3300, 90, 1), dtype=torch.float32)
    clean = band_statistics(X, fs, bands)
    noisy = band_statistics(add_noise(X, snr_db, generator=torch.Generator().manual_seed(0)), fs, bands)
    noise = clean["window_power"][:, None] * 10 ** (-snr_db / 10) * clean["noise_gain"][None, :]
    predicted_sk = clean["sk"] * (clean["power"] / (clean["power"] + noise)) ** 2
    np.testing.assert_allclose(noisy["power"].mean(0), (clean["power"] + noise).mean(0), rtol=0.05)
    np.testing.assert_allclose(noisy["sk"].mean(0), predicted_sk.mean(0), rtol=0.15, atol=0.03)


@pytest.fixture(scope="module")
def simulated_train():
    recs = simulated_dataset(duration_s=3.0, loads=(0, 2), severities=(1.0,))
    return split_windows(recs, SIM_CLASSES, 2048, 1024)["train"], recs


@pytest.mark.parametrize("method", ["kurtogram", "fisher", "fisher_energy"])
def test_simulator_band_contains_its_resonance(simulated_train, method):
    train, recs = simulated_train
    choice = choose_band(train.X, train.y, 12000, method, normal_label=SIM_CLASSES.index("normal"),
                         max_windows_per_class=64)
    modes = np.array([r.meta["resonance_hz"] for r in recs])  # (recordings, 3): ~1.4, 2.9, 3.7 kHz
    inside = (modes > choice.low_hz) & (modes < choice.high_hz)
    assert inside.any(axis=1).all(), (choice.low_hz, choice.high_hz)
    if method != "fisher_energy":  # the impulsiveness methods find the strongest mode (gain 1 at ~2.9 kHz)
        assert inside[:, 1].all(), (choice.low_hz, choice.high_hz)


def _overlap_fraction(lo: float, hi: float, ref: tuple[float, float]) -> float:
    return max(0.0, min(hi, ref[1]) - max(lo, ref[0])) / (hi - lo)


@pytest.mark.shared_data
@pytest.mark.parametrize("method", ["kurtogram", "fisher", "fisher_energy"])
def test_cwru_band_lies_in_the_drive_end_resonance_region(cwru_dir, method):
    """Kurtogram analyses of CWRU (e.g. Smith & Randall 2015) put the drive-end fault resonances at ~2.5-4 kHz."""
    from faultdiag.data.cwru import load_cwru

    classes = ("normal", "IR007", "B007", "OR007@6")
    recs = load_cwru(cwru_dir, classes=classes, loads=(0, 1, 2, 3))
    train = split_windows(recs, classes, 2048, 512)["train"]
    choice = choose_band(train.X, train.y, 12000, method, normal_label=0, max_windows_per_class=64)
    assert _overlap_fraction(choice.low_hz, choice.high_hz, (2500.0, 4000.0)) >= 0.5, (choice.low_hz, choice.high_hz)


@pytest.fixture(scope="module", params=["spectraquest_mfs", "self_built"])
def hitsm_rig(request, shared_data):
    from faultdiag.data.hitsm import find_hitsm, read_hitsm

    folder = shared_data / "hitsm" / request.param
    n_files = len(list(folder.glob("*.mat")))
    if n_files != 21:
        pytest.skip(f"HIT-SM rig {folder} needs its 21 .mat files; found {n_files}")
    return [read_hitsm(f) for f in find_hitsm(shared_data / "hitsm", rigs=(request.param,))]


@pytest.mark.shared_data
@pytest.mark.parametrize("method", ["kurtogram", "fisher", "fisher_energy"])
def test_hitsm_band_demodulates_every_fault(hitsm_rig, method):
    """Independent check: in the chosen band, envelope analysis of each whole fault recording finds its
    characteristic frequency (BPFI for IR, BPFO for OR; 6205 kinematics). Measured reference
    (benchmarks/results/band_choice.json): 13 of the 49 candidate bands do this for all 18 fault
    recordings of the self-built rig (all of them within 0.5-8.5 kHz, plus 0.5-12.8 kHz), 32 of 49 on
    the MFS rig (narrow bands above 16 kHz fail); the worst bands manage 9 and 13 of 18."""
    from faultdiag.envelope import fault_frequency_report

    from faultdiag.data.hitsm import HITSM_STATES

    train = split_windows(hitsm_rig, HITSM_STATES, 2048, 2048)["train"]
    choice = choose_band(train.X, train.y, 51200, method, normal_label=0, max_windows_per_class=48)
    found = 0
    faults = [r for r in hitsm_rig if r.label != "Normal"]
    for rec in faults:
        shaft_hz = rec.meta["rpm"] / 60
        report = fault_frequency_report(rec.signal[0], 51200, shaft_hz, band_hz=(choice.low_hz, choice.high_hz))
        found += report["dominant"] == ("bpfi" if rec.label.startswith("IR") else "bpfo")
    assert found == len(faults), (choice.low_hz, choice.high_hz, found)


def test_bad_choose_band_inputs_are_refused():
    X, y = np.zeros((4, 1, 256)), np.array([0, 0, 1, 1])
    with pytest.raises(ConfigError, match="'method'"):
        choose_band(X, y, 12000, "wavelet")
    with pytest.raises(DataError, match="'y'"):
        choose_band(X, y[:3], 12000)
    with pytest.raises(DataError, match="at least one fault class"):
        choose_band(X, np.zeros(4, dtype=int), 12000, normal_label=0)
    with pytest.raises(ConfigError, match="'snr_db'"):
        choose_band(X, y, 12000, snr_db=float("inf"))


def test_plot_band_choice_writes_a_png(tmp_path):
    from faultdiag.frontend.plot import plot_band_choice

    X = np.concatenate([_impulsive(8, 12000, 3300, 90, 2), 0.1 * _noise((8, 1, 2048), 8)])
    y = np.repeat([1, 0], 8)
    choice = choose_band(X, y, 12000, normal_label=0)
    path = tmp_path / "band.png"
    plot_band_choice(choice, X, 12000, path, y=y, class_names=["normal", "fault"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*.tmp"))
