"""Checkpoints: round trip through weights_only loading, atomic writes, clear errors on bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faultdiag.checkpoint import load_checkpoint, save_checkpoint
from faultdiag.data.inputs import InputSpec
from faultdiag.data.normalize import Standardizer
from faultdiag.errors import DataError
from faultdiag.models.networks import build_model


def _save(path, model, **extra):
    fields = dict(
        model=model, model_name="drsn-cw", model_kwargs={k: v for k, v in model.build_kwargs.items() if k != "name"},
        class_names=("normal", "IR007"),
        inputs=InputSpec(fs_hz=12000.0, window_len=256, hop=64, channels=("DE",), normalize="global",
                         standardizer=Standardizer.from_dict({"per_channel": True, "eps": 1e-8,
                                                              "mean": np.array([0.1]), "std": np.array([2.0])})),
        signal_stats={"rms_min": np.float32(0.5), "rms_max": 2.0}, config={"seed": 0, "train": {"lr": 1e-3}},
        metrics={"val_accuracy": np.float64(0.75), "per_snr": [(-4.0, 0.5)]},
    )
    fields.update(extra)
    return save_checkpoint(path, **fields)


@pytest.fixture
def model():
    m = build_model("drsn-cw", in_channels=1, num_classes=2, widths=(4, 8), units=(1, 1), stage_strides=(2, 2), seed=0)
    with torch.no_grad():  # make BatchNorm buffers non-trivial so the round trip has something to carry
        m.train()(torch.randn(8, 1, 256, generator=torch.Generator().manual_seed(1)))
    return m.eval()


def test_round_trip_rebuilds_identical_model(tmp_path, model):
    path = _save(tmp_path / "ck.pt", model)
    raw = torch.load(path, weights_only=True)  # loads without allow-listing anything
    assert raw["format"] == "faultdiag-checkpoint"
    ck = load_checkpoint(path)
    assert ck.class_names == ("normal", "IR007") and ck.inputs.channels == ("DE",)
    assert ck.inputs.window_len == 256 and ck.inputs.hop == 64 and ck.inputs.fs_hz == 12000.0
    assert list(ck.inputs.standardizer.mean_) == [0.1] and raw["normalizer"]["standardizer"]["mean"] == [0.1]
    assert ck.metrics["val_accuracy"] == 0.75 and ck.versions["torch"] and ck.revision
    rebuilt = ck.build_model()
    assert not rebuilt.training
    x = torch.randn(3, 1, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_truncated_file_is_data_error_naming_file(tmp_path, model):
    path = _save(tmp_path / "ck.pt", model)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.pt"):
        load_checkpoint(bad)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_file_is_data_error(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="junk.pt"):
        load_checkpoint(path)


def test_other_torch_file_and_missing_file(tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(DataError, match="not a faultdiag checkpoint"):
        load_checkpoint(other)
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class Evil:
    """Any class: weights_only loading must refuse to rebuild it."""


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "faultdiag-checkpoint", "x": Evil()}, path)
    with pytest.raises(DataError, match="evil.pt"):
        load_checkpoint(path)


def test_non_plain_values_are_rejected_at_save(tmp_path, model):
    with pytest.raises(TypeError, match="plain values"):
        _save(tmp_path / "ck.pt", model, metrics={"obj": object()})
    assert not (tmp_path / "ck.pt").exists()


def test_overwrite_keeps_a_complete_file(tmp_path, model):
    path = _save(tmp_path / "ck.pt", model)
    _save(path, model, metrics={"val_accuracy": 0.9})
    assert load_checkpoint(path).metrics == {"val_accuracy": 0.9}
