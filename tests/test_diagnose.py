"""faultdiag diagnose: streaming pieces, verdicts on simulated files of every format, warnings, CLI, real CWRU."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.signal import resample_poly

from faultdiag.cli import main
from faultdiag.config import load_config
from faultdiag.data.readers import open_recording, write_recording
from faultdiag.data.readers.source import source_from_recording
from faultdiag.data.recording import Recording
from faultdiag.data.resample import resample_plan
from faultdiag.data.simulate import simulate_recording
from faultdiag.data.windows import frame
from faultdiag.diagnose import agreement, diagnose, diagnose_file, fault_kind, load_predictor
from faultdiag.diagnose.stream import CLIP_SHARE, SignalChecks, iter_windows, resample_blocks
from faultdiag.errors import ConfigError
from faultdiag.training import train_model

SIM = ["data.source=simulated", "data.sim_duration_s=6", "data.loads=[0]", "data.window_len=1024", "data.hop=256",
       "model.preset=wide", "train.epochs=5", "train.batch_size=32", "train.lr=0.01", "train.threads=1", "device=cpu"]
CLASSES = ("normal", "inner_race", "outer_race", "ball")
FORMATS = ("csv", "mat", "h5", "npz")
RPM_LOAD1 = 1772.0


@pytest.fixture(scope="session")
def sim_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_model")
    train_model(load_config(None, SIM), out, progress=False)
    return out / "checkpoint.pt"


@pytest.fixture(scope="session")
def sim_files(tmp_path_factory):
    """One unseen simulated recording per class (load 1, other seeds than training), each in another format."""
    folder = tmp_path_factory.mktemp("sim_files")
    recs = {c: simulate_recording(c, load_hp=1, duration_s=5, seed=1000 + i) for i, c in enumerate(CLASSES)}
    paths = {c: write_recording(recs[c], folder / f"{c}.{ext}") for c, ext in zip(CLASSES, FORMATS)}
    return recs, paths


# --- streaming pieces ------------------------------------------------------------------------

@pytest.mark.parametrize("fs_in, fs_out", [(12000, 48000), (48000, 12000), (25600, 12000), (48828, 12000)])
def test_streaming_resample_equals_whole_signal(fs_in, fs_out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 40_003)).astype(np.float32)
    src = source_from_recording(Recording(x, fs_in, ("a", "b")), "npz")
    plan = resample_plan(fs_in, fs_out)
    up, down = plan.up, plan.down
    parts = list(resample_blocks(src, [1, 0], plan, block_len=3000))
    raw = np.concatenate([p[0] for p in parts], axis=1)
    out = np.concatenate([p[1] for p in parts], axis=1)
    whole = resample_poly(x[[1, 0]].astype(np.float64), up, down, axis=1)
    np.testing.assert_array_equal(raw, x[[1, 0]])  # raw blocks tile the source exactly
    assert out.shape == whole.shape
    np.testing.assert_allclose(out, whole, atol=2e-5)


@pytest.mark.parametrize("hop", [100, 256, 400])
def test_iter_windows_equals_frame(hop):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 10_000)).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, x.shape[1]), 20, replace=False))
    batches = list(iter_windows(iter(np.split(x, cuts, axis=1)), 256, hop, batch_size=7))
    assert all(len(b) <= 7 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), frame(x, 256, hop))


def test_clipping_check_flags_clipped_sine_only():
    t = np.arange(48_000) / 12000
    clean = np.sin(2 * np.pi * 50 * t)[None].astype(np.float32)
    checks = SignalChecks()
    for a in range(0, clean.shape[1], 5000):
        checks.update(clean[:, a:a + 5000])
    assert checks.clipped_share() < CLIP_SHARE
    clipped = SignalChecks()
    clipped.update(np.clip(1.5 * clean, -1.0, 1.0))
    assert clipped.clipped_share() > 0.1


def test_fault_kind_and_agreement():
    assert [fault_kind(c) for c in ("IR007", "inner_race", "OR014@6", "outer_race", "B021", "ball", "normal", "x")] == [
        "inner_race", "inner_race", "outer_race", "outer_race", "ball", "ball", "normal", None]
    assert agreement("OR007@6", "outer_race", True) == "agrees"
    assert agreement("IR007", "outer_race", True) == "disagrees"
    assert agreement("normal", None, True) == "agrees"
    assert agreement("B007", None, True) == "no evidence"
    assert agreement("IR007", "inner_race", False) == "n/a"


# --- verdicts ---------------------------------------------------------------------------------

def test_each_class_diagnosed_in_every_format(sim_model, sim_files):
    recs, paths = sim_files
    df = diagnose(sim_model, list(paths.values()), rpm=RPM_LOAD1)
    assert df["error"].isna().all()
    assert list(df["predicted"]) == list(CLASSES)
    n_expected = (5 * 12000 - 1024) // 1024 + 1  # non-overlapping windows by default
    assert (df["n_windows"] == n_expected).all()
    shares = df[[f"share_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    probs = df[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert ((df["confidence"] > 0.25) & (df["confidence"] <= 1)).all()
    assert (df["warnings"] == "").all()
    # physics: the simulated faults ring at their characteristic frequencies
    env = dict(zip(df["predicted"], df["envelope_fault"]))
    assert env["inner_race"] == "inner_race" and env["outer_race"] == "outer_race"
    assert df.loc[df["predicted"] == "outer_race", "agreement"].item() == "agrees"


def test_other_sampling_rate_gives_same_verdict(sim_model, sim_files, tmp_path):
    recs, paths = sim_files
    predictor = load_predictor(sim_model)
    for cls, fs_hz in (("inner_race", 48000), ("outer_race", 48000), ("outer_race", 48828)):
        p48 = write_recording(recs[cls].resample(fs_hz), tmp_path / f"{cls}_{fs_hz}.h5")
        a = diagnose_file(paths[cls], predictor, rpm=RPM_LOAD1)
        b = diagnose_file(p48, predictor, rpm=RPM_LOAD1)
        assert b["resampled_to_hz"] == 12000 and b["fs_hz"] == fs_hz
        assert b["predicted"] == a["predicted"] == cls
        assert b["n_windows"] == a["n_windows"]
        assert abs(b["confidence"] - a["confidence"]) < 0.05


def test_resampled_file_matches_scipy_float64_reference(sim_model, sim_files, tmp_path):
    # what diagnose did before its float32 streaming resampler: resample_poly in float64 on the whole signal
    recs, _ = sim_files
    rec = recs["inner_race"]
    x48 = resample_poly(rec.signal.astype(np.float64), 4, 1, axis=1).astype(np.float32)
    path = write_recording(Recording(x48, 48000, rec.channels), tmp_path / "ir48.h5")
    predictor = load_predictor(sim_model)
    row = diagnose_file(path, predictor, rpm=RPM_LOAD1, batch_size=16)
    ref = resample_poly(x48.astype(np.float64), 1, 4, axis=1).astype(np.float32)
    probs, _ = predictor.predict(np.array(frame(ref, 1024, 1024)))
    names = predictor.ckpt.class_names
    assert row["n_windows"] == len(probs)
    votes = np.bincount(probs.argmax(axis=1), minlength=len(names)) / len(probs)
    np.testing.assert_array_equal([row[f"share_{c}"] for c in names], votes)  # every window votes the same
    np.testing.assert_allclose([row[f"prob_{c}"] for c in names], probs.mean(axis=0), atol=1e-5)


def test_traced_model_matches_eager(sim_model, sim_files):
    _, paths = sim_files
    a = diagnose_file(paths["ball"], load_predictor(sim_model), rpm=RPM_LOAD1)
    b = diagnose_file(paths["ball"], load_predictor(sim_model, jit=True), rpm=RPM_LOAD1)
    assert a["predicted"] == b["predicted"] and a["n_windows"] == b["n_windows"]
    np.testing.assert_allclose([b[f"prob_{c}"] for c in CLASSES], [a[f"prob_{c}"] for c in CLASSES], atol=1e-4)


def test_parallel_jobs_give_the_same_rows(sim_model, sim_files):
    _, paths = sim_files
    files = list(paths.values())
    one = diagnose(sim_model, files, rpm=RPM_LOAD1, batch_size=8)
    many = diagnose(sim_model, files, rpm=RPM_LOAD1, batch_size=8, jobs=2)  # two files at a time
    assert list(many["file"]) == list(one["file"]) and list(many["predicted"]) == list(one["predicted"])
    probs = [f"prob_{c}" for c in CLASSES]
    np.testing.assert_allclose(many[probs].to_numpy(), one[probs].to_numpy(), atol=1e-5)
    assert (many["n_windows"] == one["n_windows"]).all()
    single = diagnose(sim_model, files[:1], rpm=RPM_LOAD1, batch_size=8, jobs=3)  # one file: batches on 3 threads
    np.testing.assert_allclose(single[probs].to_numpy(), one[probs].to_numpy()[:1], atol=1e-5)
    with pytest.raises(ConfigError, match="'jobs'"):
        diagnose(sim_model, files, jobs=-1)


def test_hop_sets_window_count(sim_model, sim_files):
    _, paths = sim_files
    row = diagnose_file(paths["normal"], load_predictor(sim_model), hop=256)
    assert row["n_windows"] == (5 * 12000 - 1024) // 256 + 1
    assert row["agreement"] == "n/a" and "rpm" in row["envelope_note"]  # CSV states no rpm


def test_warnings_and_too_short(sim_model, sim_files, tmp_path):
    recs, _ = sim_files
    rec = recs["normal"]
    cases = {
        "flat": Recording(np.zeros_like(rec.signal), 12000, ("DE",)),
        "clipped": Recording(np.clip(rec.signal, -0.05, 0.05), 12000, ("DE",)),
        "loud": Recording(rec.signal * 100, 12000, ("DE",)),
        "short": Recording(rec.signal[:, :4000], 12000, ("DE",)),
    }
    paths = [write_recording(r, tmp_path / f"{k}.h5") for k, r in cases.items()]
    paths.append(write_recording(Recording(rec.signal[:, :300], 12000, ("DE",)), tmp_path / "tiny.h5"))
    df = diagnose(sim_model, paths).set_index(df_key := "file")
    warn = {k: df.loc[str(tmp_path / f"{k}.h5"), "warnings"] for k in cases}
    assert "flat" in warn["flat"]
    assert "clipped" in warn["clipped"]
    assert "outside training distribution" in warn["loud"]
    assert warn["short"].startswith("short: only 3 window")
    assert "too short" in df.loc[str(tmp_path / "tiny.h5"), "error"]
    assert df_key == "file"


def test_bad_parameters_are_config_errors(sim_model, sim_files):
    _, paths = sim_files
    with pytest.raises(ConfigError, match="batch_size"):
        diagnose(sim_model, [paths["normal"]], batch_size=0)
    with pytest.raises(ConfigError, match="bearing"):
        diagnose(sim_model, [paths["normal"]], bearing="xx")
    df = diagnose(sim_model, [paths["normal"]], channel="nope")
    assert "nope" in df["error"].item()


# --- command line -----------------------------------------------------------------------------

def test_cli_mixed_good_and_bad_files(sim_model, sim_files, tmp_path, capsys):
    _, paths = sim_files
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this is,not\na recording\n")
    args = ["diagnose", "--model", str(sim_model), str(paths["inner_race"]), str(garbage), str(tmp_path / "missing.h5"),
            str(paths["outer_race"]), "--rpm", str(RPM_LOAD1), "--no-progress"]
    assert main([*args, "--json"]) == 1
    out, err = capsys.readouterr()
    rows = json.loads(out)["recordings"]
    assert [r["predicted"] for r in rows if r["error"] is None] == ["inner_race", "outer_race"]
    assert {r["file"] for r in rows if r["error"]} == {str(garbage), str(tmp_path / "missing.h5")}
    assert "garbage.csv" in err and "missing.h5" in err
    assert all(line.count("missing.h5") <= 1 and line.count("garbage.csv") <= 1 for line in err.splitlines())

    csv_out = tmp_path / "out" / "results.csv"
    assert main([*args, "--csv", str(csv_out)]) == 1
    table = pd.read_csv(csv_out)
    assert len(table) == 4 and table["error"].notna().sum() == 2

    assert main([*args[:3], str(paths["ball"]), "--no-progress", "--plot", str(tmp_path / "plots")]) == 0
    out, _ = capsys.readouterr()
    assert "predicted" in out and "ball.npz" in out
    png = tmp_path / "plots" / "ball.npz.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_usage_error_exit_2(sim_model, sim_files, capsys):
    _, paths = sim_files
    assert main(["diagnose", "--model", str(sim_model), str(paths["normal"]), "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


# --- real CWRU data ---------------------------------------------------------------------------

def test_envelope_check_on_real_cwru(sim_model, cwru_dir):
    """BPFO stands out on the outer-race file and BPFI on the inner-race one (rpm from the file)."""
    files = {"outer_race": cwru_dir / "12k_Drive_End_OR007@6_0_130.mat", "inner_race": cwru_dir / "12k_Drive_End_IR007_0_105.mat"}
    if not all(p.is_file() for p in files.values()):
        pytest.skip("CWRU OR007@6_0_130 / IR007_0_105 not in the shared data")
    df = diagnose(sim_model, list(files.values()), channel="DE")
    assert df["error"].isna().all()
    assert list(df["envelope_fault"]) == ["outer_race", "inner_race"]
    assert (df["rpm"] > 1700).all() and (df["envelope_s"] == 10.0).all()


def test_cwru_model_diagnoses_held_out_time_regions(cwru_dir, tmp_path):
    """Train on the first 60 % of four CWRU load-0 recordings; diagnose their last 30 %, written as files."""
    from faultdiag.data.cwru import load_cwru

    classes = ("normal", "IR007", "B007", "OR007@6")
    cfg = load_config(None, [
        "data.source=cwru", f"data.data_dir={json.dumps(str(cwru_dir))}", f"data.classes={json.dumps(list(classes))}",
        "data.loads=[0]", "data.window_len=1024", "data.hop=256", "data.split=[0.6, 0.1, 0.3]",
        "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]",
        "train.epochs=5", "train.batch_size=32", "train.lr=0.01", "train.threads=1", "device=cpu"])
    train_model(cfg, tmp_path / "model", progress=False)
    paths = []
    for rec in load_cwru(cwru_dir, classes=classes, loads=(0,)):
        tail = rec.signal[:, int(0.7 * rec.n_samples):]
        paths.append(write_recording(Recording(tail, rec.fs_hz, rec.channels, rec.label), tmp_path / f"{rec.label}.h5"))
    df = diagnose(tmp_path / "model" / "checkpoint.pt", paths)
    assert df["error"].isna().all()
    truth = [open_recording(p).label for p in paths]
    assert list(df["predicted"]) == truth


# --- inference fast path ---------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, shape", [
    ("drsn-cw", dict(preset="paper"), (5, 1, 512)),
    ("drsn-cw", dict(preset="wide", in_channels=2), (5, 2, 1000)),
    ("drsn-cw", dict(preset="wide", stem_shrinkage=True, kernel_dropout=0.5), (5, 1, 2048)),  # the shipped recipe
    ("drsn-cs", dict(preset="paper", stem_shrinkage=True), (5, 1, 512)),
    ("drsn-cs", dict(preset="paper", kernel_size=4, shortcut="conv"), (5, 1, 333)),
    ("resnet", dict(preset="paper"), (5, 1, 256)),
    ("convnet", dict(preset="paper"), (5, 1, 256)),
    ("drsn-cw", dict(preset="seed-mnist"), (5, 1, 28, 28)),
    ("drsn-cw", dict(preset="wide", stem_shrinkage=True, kernel_dropout=0.5, downsample="maxpool"), (5, 1, 2047)),
    ("drsn-cs", dict(preset="wide", downsample="maxpool", head="fc"), (5, 1, 3000)),
    ("resnet", dict(preset="seed-mnist", downsample="maxpool", head="fc"), (5, 1, 27, 29)),
])
def test_folded_inference_net_equals_eval_model(name, kwargs, shape):
    import torch

    from faultdiag.models.inference import fold_for_inference
    from faultdiag.models.networks import build_model

    net = build_model(name, seed=0, **kwargs).train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial running statistics and affine parameters in every BatchNorm
        for _ in range(3):
            net(3 * torch.randn(*shape, generator=g) + 0.5)
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = fold_for_inference(net)
    x = torch.randn(*shape, generator=g)
    with torch.inference_mode():
        ref, out = net(x), fast(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the trained model untouched


@pytest.mark.parametrize("stride, length", [(2, 128), (2, 33), (3, 31), (3, 30), (4, 5)])
def test_folded_max_pooling_equals_max_pool1d_and_stays_channels_last(stride, length):
    import torch
    import torch.nn.functional as F

    from faultdiag.models.inference import _Pool

    pool = _Pool(torch.nn.MaxPool1d(stride, stride, ceil_mode=True), lift=True)
    x = torch.randn(3, 8, length, generator=torch.Generator().manual_seed(stride))
    for dtype in (torch.float32, torch.bfloat16):
        lifted = x.to(dtype)[:, :, None, :].contiguous(memory_format=torch.channels_last)
        out = pool(lifted)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out[:, :, 0], F.max_pool1d(x.to(dtype), stride, stride, ceil_mode=True))


@pytest.mark.parametrize("name, kwargs, shape", [
    ("drsn-cw", dict(preset="wide", stem_shrinkage=True, kernel_dropout=0.5, downsample="maxpool"), (64, 1, 2048)),
    ("drsn-cs", dict(preset="paper", kernel_size=4, shortcut="conv"), (64, 1, 333)),
    ("drsn-cs", dict(preset="wide", downsample="maxpool", head="fc"), (64, 1, 2048)),
    ("resnet", dict(preset="wide"), (64, 1, 1000)),
    ("drsn-cw", dict(preset="seed-mnist"), (64, 1, 28, 28)),
])
def test_bfloat16_folded_net_follows_the_eval_model(name, kwargs, shape):
    import torch

    from faultdiag.models.inference import fold_for_inference
    from faultdiag.models.networks import build_model

    torch.manual_seed(0)
    net = build_model(name, seed=0, **kwargs).eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # a head that separates the classes, so that argmax is not decided by rounding
        net.fc.weight.mul_(20)
    fast = fold_for_inference(net, dtype=torch.bfloat16)
    with torch.inference_mode():
        ref, out = net(x), fast(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    scale = ref.abs().max().item()
    assert (out - ref).abs().max().item() < 0.05 * scale            # bfloat16: 8 bits of mantissa
    margin = ref.topk(2, dim=1).values.diff(dim=1).abs().squeeze(1)
    clear = margin > 0.1 * scale                                      # windows not decided by rounding
    assert clear.sum() > len(x) // 2
    assert torch.equal(out.argmax(1)[clear], ref.argmax(1)[clear])
    assert not torch.equal(out, fold_for_inference(net)(x))            # it really ran in bfloat16


def test_precision_option_checked(sim_model, sim_files, monkeypatch, capsys):
    import faultdiag.models.inference as inference

    with pytest.raises(ConfigError, match="'precision'.*float16"):
        load_predictor(sim_model, precision="float16")
    monkeypatch.setattr(inference, "bfloat16_supported", lambda: False)
    with pytest.raises(ConfigError, match="native bfloat16"):
        load_predictor(sim_model, precision="bfloat16")
    assert main(["diagnose", "--model", str(sim_model), str(sim_files[1]["normal"]), "--precision", "half"]) != 0
    assert "'precision'" in capsys.readouterr().err


def test_bfloat16_diagnose_gives_the_float32_verdicts(sim_model, sim_files):
    from faultdiag.models.inference import bfloat16_supported

    if not bfloat16_supported():
        pytest.skip("this CPU has no native bfloat16 (AVX-512 BF16 / AMX): diagnose refuses --precision bfloat16")
    _, paths = sim_files
    files = [paths[c] for c in CLASSES]
    full, half = diagnose(sim_model, files), diagnose(sim_model, files, precision="bfloat16")
    assert full["error"].isna().all() and half["error"].isna().all()
    assert list(half["predicted"]) == list(full["predicted"])
    shares = [c for c in full.columns if c.startswith("prob_")]
    np.testing.assert_allclose(half[shares].to_numpy(float), full[shares].to_numpy(float), atol=0.05)


def test_bfloat16_for_a_network_that_does_not_fold_runs_under_autocast():
    import torch

    from faultdiag.diagnose.model import _fast
    from faultdiag.models.networks import build_model

    net = build_model("ticnn", seed=0).eval()      # the anchors have no folded copy
    x = torch.randn(8, 1, 2048, generator=torch.Generator().manual_seed(0))
    run = _fast(net, torch.bfloat16)
    with torch.inference_mode():
        ref, out = net(x), run(x)
    assert out.dtype == torch.float32 and not torch.equal(out, ref)
    assert (out - ref).abs().max().item() < 0.05 * ref.abs().max().item()
    assert _fast(net, torch.float32) is net
