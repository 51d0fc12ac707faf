"""Batch sources: noise modes (clean, fixed, fresh, mixed), the augmentation hook and the extra-loss hook."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from faultdiag.config import NoiseConfig, load_config
from faultdiag.data.inputs import InputSpec
from faultdiag.data.noise import measure_snr_db
from faultdiag.data.windows import WindowSet
from faultdiag.errors import ConfigError
from faultdiag.training import BatchSource, prepare, train_model, training_noise
from faultdiag.training.augment import random_gain


def _windows(n: int = 400, length: int = 128) -> WindowSet:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 1, length)).astype(np.float32) * np.linspace(0.5, 2, n, dtype=np.float32)[:, None, None]
    return WindowSet(X, np.arange(n) % 2, np.arange(n) // 10, np.zeros(n), ("a", "b"))


SPEC = InputSpec(fs_hz=1000.0, window_len=128, hop=128, channels=("DE",), normalize="none")


def test_mixed_noise_draws_each_window_snr_from_the_range_and_keeps_a_clean_share():
    X = torch.from_numpy(_windows(2000).X)
    noise = NoiseConfig(train="mixed", train_snr_range_db=(-4.0, 8.0), clean_share=0.25)
    noisy = training_noise(X, noise, None, torch.Generator().manual_seed(1))
    clean = (noisy == X).all(dim=(1, 2))
    assert 0.2 < clean.float().mean() < 0.3
    snr = measure_snr_db(X[~clean], noisy[~clean]).flatten()
    assert snr.min() >= -4.0 - 1e-3 and snr.max() <= 8.0 + 1e-3
    assert snr.std() > 3.0  # spread over the range, not one level (uniform on 12 dB: std 3.5)
    again = training_noise(X, noise, None, torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again)


def test_fixed_noise_is_the_same_on_every_pass_and_redrawn_noise_is_not():
    ws = _windows()
    noise = NoiseConfig(train="fresh", train_snr_db=0.0)
    fixed = BatchSource(ws, SPEC, noise=noise, noise_seed=3, redraw=False)
    first = torch.cat([b.x for b in fixed.scan(64)])
    assert torch.equal(first, torch.cat([b.x for b in fixed.scan(64)]))
    idx = torch.arange(10)
    assert torch.equal(fixed.batch(idx).x, first[:10])
    fresh = BatchSource(ws, SPEC, noise=noise, noise_seed=3, redraw=True)
    a, b = fresh.batch(idx).x, fresh.batch(idx).x
    assert not torch.equal(a, b)
    np.testing.assert_allclose(measure_snr_db(torch.from_numpy(ws.X[:10]), a).numpy(), 0.0, atol=1e-3)


def test_augmentation_runs_on_training_batches_only_within_its_gain_range():
    ws = _windows()
    src = BatchSource(ws, SPEC, noise=NoiseConfig(), noise_seed=0, redraw=False, augment=random_gain(2.0))
    idx = torch.arange(50)
    ratio = (src.batch(idx).x / torch.from_numpy(ws.X[:50])).mean(dim=(1, 2))
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 2.0 + 1e-5 and ratio.std() > 0.1
    with pytest.raises(ConfigError, match="max_gain"):
        random_gain(1.0)
    with pytest.raises(ConfigError, match="train.gain_jitter"):
        load_config(None, ["train.gain_jitter=0.5"])


TINY = ["data.source=simulated", "data.sim_duration_s=1.5", "data.loads=[0]", "data.window_len=256", "data.hop=256",
        "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]", "train.epochs=2",
        "train.batch_size=32", "train.threads=1", "device=cpu"]


def test_an_extra_loss_term_sees_the_penultimate_features_and_a_zero_term_changes_nothing(tmp_path):
    cfg = load_config(None, TINY)
    prepared = prepare(cfg)
    seen = []

    def zero(model, features, batch, progress):
        seen.append((tuple(features.shape), len(batch.y), progress))
        return features.sum() * 0.0

    plain = train_model(cfg, tmp_path / "plain", prepared=prepared, progress=False)
    hooked = train_model(cfg, tmp_path / "hooked", prepared=prepared, progress=False, extra_loss=zero)
    assert seen and all(shape == (n, 8) for shape, n, _ in seen)
    assert seen[0][2] == 0.0 and 0.5 <= seen[-1][2] < 1.0
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, hooked.model.state_dict()[k]), k

    def pull(model, features, batch, progress):  # a real term moves the weights
        return features.pow(2).mean()

    pulled = train_model(cfg, tmp_path / "pulled", prepared=prepared, progress=False, extra_loss=pull)
    assert pulled.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_training_with_mixed_noise_and_gain_jitter_is_seeded(tmp_path):
    cfg = load_config(None, [*TINY, "noise.train=mixed", "train.gain_jitter=1.5"])
    prepared = prepare(cfg)
    a = train_model(cfg, tmp_path / "a", prepared=prepared, progress=False)
    b = train_model(cfg, tmp_path / "b", prepared=prepared, progress=False)
    rows = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert rows(a.history) == rows(b.history)
    clean = train_model(dataclasses.replace(cfg, noise=NoiseConfig()), tmp_path / "c", prepared=prepared,
                        progress=False)
    assert rows(clean.history) != rows(a.history)


def test_a_bandpass_front_end_chosen_on_training_windows_travels_in_the_checkpoint(tmp_path):
    from faultdiag.checkpoint import load_checkpoint

    cfg = load_config(None, [*TINY, "frontend.kind=bandpass", "train.epochs=1"])
    prepared = prepare(cfg)
    fe = prepared.inputs.front_end
    assert fe.kind == "bandpass" and prepared.band_choice is not None
    assert (fe.low_hz, fe.high_hz) == (prepared.band_choice.low_hz, prepared.band_choice.high_hz)
    feats = prepared.inputs.features(prepared.train.X)
    np.testing.assert_allclose(prepared.inputs.standardizer.mean_, feats.double().mean(dim=(0, 2)).numpy(), atol=1e-5)
    result = train_model(cfg, tmp_path, prepared=prepared, progress=False)
    ck = load_checkpoint(result.checkpoint_path)
    assert ck.inputs.front_end == fe
    x = prepared.test.X[:4]
    assert torch.equal(ck.inputs.transform(x), prepared.inputs.transform(x))
    assert (tmp_path / "band_choice.json").is_file() and (tmp_path / "band_choice.png").is_file()
    fixed = prepare(load_config(None, [*TINY, "frontend.kind=envelope_spectrum", "frontend.band_hz=[2000, 4000]"]))
    assert fixed.band_choice is None and fixed.inputs.transform(x).shape[-1] == 256 // 2


def test_a_sinc_stem_starts_from_the_chosen_band_and_rebuilds_from_its_checkpoint(tmp_path):
    from faultdiag.checkpoint import load_checkpoint

    cfg = load_config(None, [*TINY, "model.stem=sinc", "model.stem_kernel=65", "model.stem_channels=2",
                             "model.stem_shrinkage=true", "train.epochs=1"])
    result = train_model(cfg, tmp_path, progress=False)
    ck = load_checkpoint(result.checkpoint_path)
    lo, hi = ck.model_kwargs["stem_band_hz"]
    assert 0 < lo < hi <= 6000 and ck.model_kwargs["fs_hz"] == 12000.0
    x = result.prepared.inputs.transform(result.prepared.test.X[:3])
    with torch.no_grad():
        assert torch.equal(ck.build_model()(x), result.model(x))


DOMAINS = [*TINY, "data.loads=[0, 2]", "data.domain=load_hp", "data.train_domains=[0]", "data.test_domains=[2]"]


class _Stop(Exception):
    pass


def _stop_after_first(row):
    if row["epoch"] == 1:
        raise _Stop


@pytest.mark.parametrize("method", ["coral", "mmd", "dann"])
def test_adaptation_trains_on_target_batches_and_resumes_exactly(method, tmp_path):
    cfg = load_config(None, [*DOMAINS, f"adapt.method={method}", "adapt.weight=0.5"])
    prepared = prepare(cfg)
    assert prepared.target is not None and len(prepared.target) > 0
    assert not set(prepared.train.groups) & set(prepared.test.groups)  # other recordings, other domain
    full = train_model(cfg, tmp_path / "full", prepared=prepared, progress=False)
    plain = train_model(load_config(None, DOMAINS), tmp_path / "plain", prepared=prepared, progress=False)
    assert full.history[0]["train_loss"] != plain.history[0]["train_loss"]
    with pytest.raises(_Stop):
        train_model(cfg, tmp_path / "cut", prepared=prepared, progress=False, on_epoch_end=_stop_after_first)
    resumed = train_model(cfg, tmp_path / "cut", prepared=prepared, progress=False, resume=True)
    rows = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert rows(resumed.history) == rows(full.history)


def test_adaptation_without_target_domains_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.domain"):
        train_model(load_config(None, [*TINY, "adapt.method=coral"]), tmp_path, progress=False)


def test_the_checkpoint_carries_a_calibrated_feature_density(tmp_path):
    from faultdiag.checkpoint import load_checkpoint
    from faultdiag.ood import FeatureDensity, penultimate_features

    cfg = load_config(None, [*TINY, "data.sim_duration_s=3"])
    result = train_model(cfg, tmp_path, progress=False)
    ck = load_checkpoint(result.checkpoint_path)
    density = FeatureDensity.from_dict(ck.ood)
    val = result.prepared.val
    scores = density.score(penultimate_features(result.model, result.prepared.inputs.transform(val.X)).numpy())
    assert 0.0 <= (scores > density.threshold_).mean() <= 0.10  # calibrated there: ~5 % over the threshold
    noise = torch.randn(64, 1, 256, generator=torch.Generator().manual_seed(0)) * 50
    far = density.score(penultimate_features(result.model, result.prepared.inputs.transform(noise)).numpy())
    assert (far > density.threshold_).mean() > 0.5  # loud white noise is unlike any training window



def _count_host_reads(monkeypatch) -> list[str]:
    """Patch the Tensor methods that copy a value to Python (on a GPU each waits for the device): one entry per
    call, naming the caller. Left out: calls from ``torch.optim`` (Adam reads its step counters, which the
    non-fused implementation keeps on the host; on a GPU training uses the fused one) and the SNR check of
    ``faultdiag.data.noise``, which does not read a tensor on a GPU (``test_noise``)."""
    import traceback

    calls: list[str] = []
    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = traceback.extract_stack(limit=2)[0]
            if f"torch{os.sep}optim{os.sep}" not in caller.filename and caller.name != "_check_finite":
                calls.append(f"{_name} in {caller.name} ({Path(caller.filename).name}:{caller.lineno})")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("sets", [[], ["noise.train=mixed", "train.gain_jitter=1.5", "model.kernel_dropout=0.3",
                                       "train.ema=0.99", "train.grad_clip=1.0", "frontend.kind=bandpass"]])
def test_a_training_epoch_reads_nothing_back_from_the_device_per_batch(sets, monkeypatch):
    from faultdiag.distributed import SINGLE
    from faultdiag.training.loop import run_epoch, score
    from faultdiag.training.run import _sources, build_for
    from faultdiag.training.schedules import make_optimizer

    cfg = load_config(None, [*TINY, "train.batch_size=8", *sets])
    prepared = prepare(cfg)
    model, _ = build_for(cfg, prepared)
    train, val = _sources(cfg, prepared, SINGLE, None, torch.device("cpu"))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.train.ema > 0 else None
    n_batches = -(-len(train) // 8)
    assert n_batches >= 20
    calls = _count_host_reads(monkeypatch)
    row = run_epoch(model, model, make_optimizer(model.parameters(), cfg.train), train, cfg.train,
                    shuffle=torch.Generator().manual_seed(0), epoch=1, device=torch.device("cpu"), ema=ema)
    val_loss, val_acc = score(model, val, 8, torch.device("cpu"))
    monkeypatch.undo()
    assert len(calls) <= 8, calls  # the epoch's sums and the divergence check, once: not per batch
    assert 0.0 <= row["train_acc"] <= 1.0 and np.isfinite(row["train_loss"]) and 0.0 <= val_acc <= 1.0


def test_a_diverged_training_is_a_config_error_naming_the_learning_rate(tmp_path):
    with pytest.raises(ConfigError, match=r"diverged.*epoch 1.*train\.lr.*1e\+30"):
        train_model(load_config(None, [*TINY, "train.lr=1e30", "train.optimizer=sgd"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_batches_are_made_where_the_source_lives_from_indices_anywhere():
    ws = _windows()
    for noise, redraw in ((NoiseConfig(), False), (NoiseConfig(train="fresh", train_snr_db=0.0), True)):
        src = BatchSource(ws, SPEC, noise=noise, noise_seed=3, redraw=redraw, device="cpu")
        assert src.device == torch.device("cpu") and src.generator.device == src.device
        b = src.batch(torch.arange(5, dtype=torch.int32))
        assert b.x.device == b.y.device == b.index.device == src.device and b.x.shape == (5, 1, 128)
        assert all(part.x.device == src.device for part in src.scan(64))
