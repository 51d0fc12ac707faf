"""diagnose warns when a recording is unlike the training data in the network's feature space."""

from __future__ import annotations

import numpy as np
import pytest

from faultdiag.config import load_config
from faultdiag.data.readers import write_recording
from faultdiag.data.recording import Recording
from faultdiag.data.simulate import simulate_recording
from faultdiag.diagnose import diagnose
from faultdiag.training import train_model

TINY = ["data.source=simulated", "data.sim_duration_s=3", "data.loads=[0]", "data.window_len=512", "data.hop=256",
        "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]", "train.epochs=4",
        "train.batch_size=32", "train.lr=0.01", "train.threads=1", "device=cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return train_model(load_config(None, TINY), tmp_path_factory.mktemp("model"), progress=False).checkpoint_path


def test_a_recording_from_another_machine_is_flagged_and_a_familiar_one_is_not(checkpoint, tmp_path):
    familiar = simulate_recording("outer_race", load_hp=0, duration_s=3.0, seed=99)
    t = np.arange(36000) / 12000.0
    gears = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate((730.0, 1460.0, 2190.0, 2920.0)))
    gears = (gears * familiar.signal.std() / gears.std()).astype(np.float32)  # the same level: RMS alone cannot tell
    other = Recording(gears[None, :], 12000.0, ("DE",))
    paths = [write_recording(familiar, tmp_path / "familiar.npz"), write_recording(other, tmp_path / "gearbox.npz")]
    df = diagnose(checkpoint, paths, rpm=1797, bearing="cwru-de").set_index("file")
    familiar_row, other_row = df.loc[str(paths[0])], df.loc[str(paths[1])]
    assert familiar_row["reliable"] and familiar_row["unlike_training_share"] < 0.5
    assert not other_row["reliable"] and other_row["unlike_training_share"] > 0.5
    assert "unlike anything this model was trained on: do not trust the verdict" in other_row["warnings"]
    assert "outside training distribution: " not in other_row["warnings"]  # its level is in the training range


@pytest.mark.slow
def test_a_model_of_one_hitsm_rig_warns_on_most_recordings_of_the_other(shared_data, tmp_path):
    hitsm = shared_data / "hitsm"
    if not (hitsm / "self_built").is_dir():
        pytest.skip(f"HIT-SM not found in {hitsm}")
    cfg = load_config(None, ["data.source=hitsm", f"data.data_dir={str(hitsm)!r}", 'data.rigs=["spectraquest_mfs"]',
                             "data.window_len=2048", "data.hop=2048", "model.preset=paper", "train.epochs=3",
                             "train.threads=2", "device=cpu"])
    ckpt = train_model(cfg, tmp_path / "mfs", progress=False).checkpoint_path
    other = sorted((hitsm / "self_built").glob("*.mat"))
    df = diagnose(ckpt, other, rpm=900)
    assert len(df) == 21 and df["error"].isna().all()
    assert (~df["reliable"].astype(bool)).sum() >= 11, df[["file", "predicted", "unlike_training_share"]]
