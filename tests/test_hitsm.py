"""HIT-SM as a named source: rig, speed and state from the path, one variable of any name per file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from faultdiag.config import DataConfig, load_config
from faultdiag.data.datasets import load_dataset
from faultdiag.data.hitsm import HITSM_STATES, find_hitsm, parse_hitsm_path
from faultdiag.errors import DataError


def _fake(root, folder="SpectraQuest MFS dataset", speeds=(600, 900), n=20000):
    rng = np.random.default_rng(0)
    for i, state in enumerate(HITSM_STATES):
        for rpm in speeds:
            (root / folder).mkdir(parents=True, exist_ok=True)
            savemat(root / folder / f"{state}_{rpm}.mat", {f"V{i}_{rpm}": rng.standard_normal((n, 1))})
    (root / folder / "readme.mat").write_bytes(b"not a HIT-SM name")
    return root


def test_paths_parse_and_rig_names_normalise():
    assert parse_hitsm_path("x/Self-built dataset/or5_1200.mat") == ("self_built", "OR5", 1200)
    assert parse_hitsm_path("x/spectraquest_mfs/Normal_600.mat") == ("spectraquest_mfs", "Normal", 600)
    assert parse_hitsm_path("x/y/IR3_600.mat") is None


def test_written_layout_reads_with_states_as_classes(tmp_path):
    root = _fake(tmp_path / "hitsm")
    data = DataConfig(source="hitsm", data_dir=str(root), speeds_rpm=(900,))
    ds = load_dataset(data)
    assert ds.class_names == HITSM_STATES and ds.fs_hz == 51200.0 and len(ds.recordings) == 7
    rec = ds.recordings[0]
    assert rec.channels == ("acc",) and rec.meta["rig"] == "spectraquest_mfs" and rec.meta["rpm"] == 900.0
    assert rec.meta["variable"].startswith("V") and sorted(ds.fingerprint["files"])[0].startswith("SpectraQuest MFS dataset/")
    with pytest.raises(DataError, match=r"data.speeds_rpm.*\[1200\].*\[600, 900\]"):
        find_hitsm(root, speeds_rpm=(1200,))
    with pytest.raises(DataError, match="data.rigs"):
        find_hitsm(root, rigs=("self_built",))
    with pytest.raises(DataError, match="does not exist"):
        find_hitsm(tmp_path / "nope")
    relabelled = load_dataset(DataConfig(source="hitsm", data_dir=str(root), label_from=r"regex:/(?P<label>[A-Za-z]+)\d*_"))
    assert relabelled.class_names == ("Normal", "IR", "OR")


def test_real_hitsm_files(shared_data):
    root = shared_data / "hitsm"
    if not (root / "spectraquest_mfs" / "IR2_600.mat").is_file():
        pytest.skip("HIT-SM files not in the shared data")
    files = find_hitsm(root)
    assert len(files) == 42 and {f.rig for f in files} == {"spectraquest_mfs", "self_built"}
    ds = load_dataset(DataConfig(source="hitsm", data_dir=str(root), rigs=("spectraquest_mfs",)))
    assert ds.class_names == HITSM_STATES and len(ds.recordings) == 21 and ds.fs_hz == 51200.0
    assert {r.n_samples for r in ds.recordings} == {262144} and {r.channels for r in ds.recordings} == {("acc",)}
    assert len({r.meta["variable"] for r in ds.recordings}) > 1  # the variable names vary from file to file
    assert len(ds.fingerprint["files"]) == 21 and ds.fingerprint["selection"]["speeds_rpm"] == [600, 900, 1200]


def test_shipped_config(tmp_path):
    cfg = load_config("configs/hitsm.toml", [f'data.data_dir="{tmp_path}"'])
    assert cfg.data.source == "hitsm" and cfg.data.fs_hz is None and cfg.data.rigs == ("spectraquest_mfs",)
    assert {"drsn-cw", "resnet", "wdcnn"} <= set(cfg.sweep.models) and cfg.data.bearing == "6205"


def test_shipped_cross_speed_config():
    """configs/hitsm_cross.toml plans each speed held out in turn, with and without CORAL, 3 seeds."""
    from faultdiag.sweep.plan import plan_cells

    cfg = load_config("configs/hitsm_cross.toml")
    cells = plan_cells(cfg)
    assert cfg.sweep.protocol == "cross-domain" and cfg.data.domain == "rpm" and len(cells) == 3 * 2 * 3
    tasks = {c.task for c in cells}
    assert len(tasks) == 3
    for c in cells:  # every task trains on two speeds and tests on the third
        train, test = set(c.config.data.train_domains), set(c.config.data.test_domains)
        assert len(train) == 2 and len(test) == 1 and not train & test and train | test == {"600", "900", "1200"}
    assert {c.config.adapt.method for c in cells} == {"none", "coral"}


@pytest.mark.slow
def test_cross_speed_model_diagnoses_unseen_speed(shared_data, tmp_path):
    """Train on 600 and 900 rpm (MFS rig, 2 epochs), diagnose the 1200 rpm files: labels and speeds
    come from the HIT-SM names, the bearing (6205) from the source, the envelope check runs."""
    from faultdiag.diagnose import diagnose, summarize
    from faultdiag.training import train_model

    root = shared_data / "hitsm"
    if not (root / "spectraquest_mfs").is_dir():
        pytest.skip("HIT-SM files not in the shared data")
    cfg = load_config("configs/hitsm.toml", [f'data.data_dir="{root}"', "data.speeds_rpm=[600, 900]",
                                             "train.epochs=2", "train.threads=1", "device=cpu"])
    train_model(cfg, tmp_path / "m", progress=False)
    df = diagnose(tmp_path / "m" / "checkpoint.pt", sorted((root / "spectraquest_mfs").glob("*_1200.mat")))
    assert df["error"].isna().all() and list(df["true"]) == [p.split("/")[-1].split("_")[0] for p in df["file"]]
    assert (df["rpm"] == 1200).all() and (df["bearing"] == "SKF 6205-2RS JEM").all()
    faulty = df[df["true"] != "Normal"]
    assert (faulty["envelope_fault"] == faulty["true"].map(lambda t: {"I": "inner_race", "O": "outer_race"}[t[0]])).all()
    assert summarize(df, df.attrs["class_names"])["n_files"] == 7
