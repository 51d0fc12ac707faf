"""Fit loop on tiny simulated data: learns, is deterministic, resumes to the same result."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from faultdiag.checkpoint import load_checkpoint
from faultdiag.config import TrainConfig, load_config
from faultdiag.data.noise import add_window_noise
from faultdiag.data.normalize import to_model_input
from faultdiag.errors import ConfigError
from faultdiag.training import prepare, train_model
from faultdiag.training.schedules import learning_rate

BASE = [
    "data.source=simulated", "data.sim_duration_s=2", "data.loads=[0]", "data.window_len=512", "data.hop=256",
    "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]",
    "train.epochs=3", "train.batch_size=32", "train.lr=0.01", "train.threads=1", "device=cpu",
    "noise.train=fresh", "noise.train_snr_db=10",
]


def _cfg(*overrides: str):
    return load_config(None, [*BASE, *overrides])


def _rows(history):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


@pytest.fixture(scope="module")
def prepared():
    return prepare(_cfg())


@pytest.fixture(scope="module")
def run_a(prepared, tmp_path_factory):
    rng_before = torch.get_rng_state()
    result = train_model(_cfg(), tmp_path_factory.mktemp("a"), prepared=prepared, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before), "training must not touch the global torch RNG"
    return result


def test_prepare_fits_standardizer_on_train_only(prepared):
    assert prepared.class_names == ("normal", "inner_race", "outer_race", "ball")
    np.testing.assert_allclose(prepared.inputs.standardizer.mean_, prepared.train.X.mean(axis=(0, 2)), rtol=1e-4, atol=1e-6)
    for g in np.unique(prepared.train.groups):  # time regions: train before val before test, no overlap
        train_end = prepared.train.starts[prepared.train.groups == g].max() + prepared.inputs.window_len
        assert train_end <= prepared.val.starts[prepared.val.groups == g].min()
    assert prepared.fingerprint["source"] == "simulated" and prepared.fingerprint["digest"]
    assert prepared.signal_stats["rms_min"] <= prepared.signal_stats["rms_median"] <= prepared.signal_stats["rms_max"]


def test_tiny_training_learns_and_writes_files(run_a, prepared):
    assert len(run_a.history) == 3 and all(np.isfinite(r["train_loss"]) for r in run_a.history)
    assert not run_a.model.training
    with torch.no_grad():
        pred = run_a.model(prepared.inputs.transform(prepared.test.X)).argmax(1).numpy()
    accuracy = float((pred == prepared.test.y).mean())
    assert accuracy > 1 / len(prepared.class_names) + 0.15, accuracy
    out = run_a.checkpoint_path.parent
    with open(out / "train_log.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert load_config(out / "config.toml") == _cfg()
    ck = load_checkpoint(run_a.checkpoint_path)
    assert ck.metrics["best_epoch"] == run_a.best_epoch and ck.class_names == prepared.class_names
    x = ck.inputs.transform(prepared.test.X[:5])
    with torch.no_grad():
        assert torch.equal(ck.build_model()(x), run_a.model(x))


def test_same_seed_same_numbers_other_seed_differs(run_a, prepared, tmp_path):
    again = train_model(_cfg(), tmp_path / "b", prepared=prepared, progress=False)
    assert _rows(again.history) == _rows(run_a.history)
    for k, v in run_a.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    other = train_model(_cfg("seed=1", "train.epochs=1"), tmp_path / "c", prepared=prepared, progress=False)
    assert other.history[0]["train_loss"] != run_a.history[0]["train_loss"]


class _Interrupt(Exception):
    pass


def _stop_after_first(row):
    if row["epoch"] == 1:
        raise _Interrupt


def test_resume_after_interruption_equals_uninterrupted(run_a, prepared, tmp_path):
    with pytest.raises(_Interrupt):
        train_model(_cfg(), tmp_path, prepared=prepared, progress=False, on_epoch_end=_stop_after_first)
    resumed = train_model(_cfg(), tmp_path, prepared=prepared, resume=True, progress=False)
    assert _rows(resumed.history) == _rows(run_a.history)
    assert resumed.best_epoch == run_a.best_epoch
    for k, v in run_a.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # a finished run resumes to itself without training; a changed config is refused
    again = train_model(_cfg("sweep.snrs_db=[0]"), tmp_path, prepared=prepared, resume=True, progress=False)
    assert _rows(again.history) == _rows(run_a.history)  # the sweep section does not affect training
    with pytest.raises(ConfigError, match="train.lr"):
        train_model(_cfg("train.lr=0.1"), tmp_path, prepared=prepared, resume=True, progress=False)


def _assert_resumes_exactly(cfg, full, prepared, out):
    """Interrupted after epoch 1 and resumed, ``cfg`` gives ``full``'s history and kept weights."""
    with pytest.raises(_Interrupt):
        train_model(cfg, out, prepared=prepared, progress=False, on_epoch_end=_stop_after_first)
    resumed = train_model(cfg, out, prepared=prepared, resume=True, progress=False)
    assert _rows(resumed.history) == _rows(full.history)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_stem_dropout_training_is_seeded_and_resumes_exactly(prepared, tmp_path):
    cfg = _cfg("model.stem_dropout=0.3", "train.epochs=2")
    full = train_model(cfg, tmp_path / "full", prepared=prepared, progress=False)
    again = train_model(cfg, tmp_path / "again", prepared=prepared, progress=False)
    assert _rows(again.history) == _rows(full.history)
    _assert_resumes_exactly(cfg, full, prepared, tmp_path / "cut")
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt").model_kwargs["stem_dropout"] == 0.3


def test_weight_average_is_validated_kept_and_resumes_exactly(prepared, tmp_path):
    one = train_model(_cfg("train.ema=0.9", "train.epochs=1"), tmp_path / "one", prepared=prepared, progress=False)
    last = torch.load(tmp_path / "one" / "last.pt", weights_only=False)
    for k, v in one.model.state_dict().items():  # the kept weights (epoch 1) are the average, not the trained ones
        assert torch.equal(v, last["ema"][k]), k
    assert any(not torch.equal(v, last["model"][k]) for k, v in last["ema"].items() if v.is_floating_point())
    cfg = _cfg("train.ema=0.9", "train.epochs=2")
    full = train_model(cfg, tmp_path / "full", prepared=prepared, progress=False)
    _assert_resumes_exactly(cfg, full, prepared, tmp_path / "cut")


def test_ema_update_and_decay():
    from faultdiag.training.loop import ema_decay, update_ema

    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(10**6, 0.999) == 0.999
    net = torch.nn.BatchNorm1d(2)
    ema = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    update_ema(ema, net, 0.75)
    torch.testing.assert_close(ema["weight"], 0.25 * net.weight.detach())
    assert int(ema["num_batches_tracked"]) == int(net.num_batches_tracked)


def test_label_smoothing_changes_training_and_bad_values_are_refused(run_a, prepared, tmp_path):
    smooth = train_model(_cfg("train.label_smoothing=0.1", "train.epochs=1"), tmp_path, prepared=prepared,
                         progress=False)
    assert smooth.history[0]["train_loss"] != run_a.history[0]["train_loss"]
    for bad in ("train.label_smoothing=1.0", "train.label_smoothing=-0.1", "train.ema=1.0", "train.ema=-0.5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            _cfg(bad)


def test_learning_rate_schedules():
    step = TrainConfig(lr=0.1, schedule="step", epochs=10)
    assert [round(learning_rate(e, step), 6) for e in range(10)] == [0.1] * 4 + [0.01] * 4 + [0.001] * 2
    cosine = TrainConfig(lr=1.0, schedule="cosine", epochs=4)
    lrs = [learning_rate(e, cosine) for e in range(4)]
    assert lrs[0] == 1.0 and all(a > b > 0 for a, b in zip(lrs, lrs[1:]))
    assert learning_rate(7, TrainConfig(lr=0.3, schedule="constant")) == 0.3


def test_to_model_input_modes(prepared):
    X = prepared.val.X[:6]
    std = prepared.inputs.standardizer
    np.testing.assert_allclose(prepared.inputs.transform(X).numpy(), std.transform(X), rtol=1e-5, atol=1e-6)
    z = to_model_input(X, None, "window")
    np.testing.assert_allclose(z.mean(-1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(-1, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert torch.equal(to_model_input(X, None, "none"), torch.from_numpy(X))
    with pytest.raises(ConfigError):
        to_model_input(X, None, "global")


def test_recording_level_noise_has_the_recording_snr():
    gen = torch.Generator().manual_seed(0)
    loud, quiet = torch.randn(4, 1, 256, generator=gen) * 2.0, torch.randn(4, 1, 256, generator=gen) * 0.5
    X = torch.cat([loud, quiet])  # one recording: half loud, half quiet windows
    groups = torch.zeros(8, dtype=torch.int64)
    noisy = add_window_noise(X, 0.0, "gaussian", "recording", groups, torch.Generator().manual_seed(1))
    noise_power = (noisy - X).pow(2).mean(dim=(1, 2))
    expected = X.pow(2).mean()  # 0 dB against the recording's mean power, the same in every window
    torch.testing.assert_close(noise_power, expected.expand(8), rtol=1e-4, atol=1e-6)


def _write_files(root):
    from faultdiag.data.readers import write_recording
    from faultdiag.data.recording import Recording

    rng = np.random.default_rng(0)
    for label in ("healthy", "faulty"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            rec = Recording(rng.standard_normal((1, 4000)).astype(np.float32), 1000.0, ("DE",))
            write_recording(rec, root / label / f"{label}{i}.csv")


def test_load_dataset_files_labels_from_folders_and_csv(tmp_path):
    from faultdiag.config import DataConfig
    from faultdiag.data.datasets import load_dataset

    _write_files(tmp_path / "d")
    ds = load_dataset(DataConfig(source="files", paths=(str(tmp_path / "d"),), fs_hz=1000.0))
    assert ds.class_names == ("faulty", "healthy") and len(ds.recordings) == 4
    assert sorted(ds.fingerprint["files"]) == ["faulty/faulty0.csv", "faulty/faulty1.csv", "healthy/healthy0.csv",
                                              "healthy/healthy1.csv"]  # relative to the data root
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nhealthy0.csv,a\nhealthy1.csv,a\nfaulty0.csv,b\nfaulty1.csv,a\n")
    ds = load_dataset(DataConfig(source="files", paths=(str(tmp_path / "d"),), labels=str(labels), fs_hz=1000.0))
    assert [r.label for r in ds.recordings].count("a") == 3
    from faultdiag.errors import DataError

    with pytest.raises(DataError, match="zzz"):
        load_dataset(DataConfig(source="files", paths=(str(tmp_path / "d"),), classes=("a", "zzz"), labels=str(labels), fs_hz=1000.0))


def test_files_without_a_rate_need_source_fs_hz(tmp_path):
    from faultdiag.config import DataConfig
    from faultdiag.data.datasets import load_dataset

    for label in ("a", "b"):  # bare columns: no time column, so no stated rate
        (tmp_path / label).mkdir()
        for i in range(2):
            np.savetxt(tmp_path / label / f"r{i}.csv", np.random.default_rng(i).standard_normal((4000, 1)),
                       header="DE", comments="")
    base = dict(source="files", paths=(str(tmp_path),), fs_hz=1000.0)
    with pytest.raises(ConfigError, match=r"r0\.csv does not state its sampling rate.*data\.source_fs_hz"):
        load_dataset(DataConfig(**base))
    ds = load_dataset(DataConfig(**base, source_fs_hz=2000.0))   # read at 2 kHz, resampled to 1 kHz
    assert [r.n_samples for r in ds.recordings] == [2000] * 4 and ds.recordings[0].fs_hz == 1000.0
    assert ds.fingerprint["source_fs_hz"] == 2000.0
    with pytest.raises(ConfigError, match="'data.source_fs_hz'.*positive.*-1"):
        DataConfig(**base, source_fs_hz=-1.0)


def test_load_dataset_cwru_fingerprint(cwru_dir):
    from faultdiag.config import DataConfig
    from faultdiag.data.datasets import load_dataset

    ds = load_dataset(DataConfig(source="cwru", data_dir=str(cwru_dir), classes=("normal", "IR007"), loads=(0,)))
    assert ds.class_names == ("normal", "IR007") and {r.label for r in ds.recordings} == {"normal", "IR007"}
    assert all(len(h) == 64 for h in ds.fingerprint["files"].values()) and len(ds.fingerprint["digest"]) == 16
