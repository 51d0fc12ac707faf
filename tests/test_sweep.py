"""Sweep planning, finished-cell skipping, reports (tables without tabulate, plots)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from faultdiag import report
from faultdiag.config import load_config, training_key
from faultdiag.errors import ConfigError
from faultdiag.sweep import plan_cells, run_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_overrides(**extra: str) -> list[str]:
    """A sweep that trains in about a second per cell on simulated data."""
    base = {
        "data.source": '"simulated"', "data.sim_duration_s": "1.5", "data.window_len": "256", "data.hop": "256",
        "data.loads": "[0]", "model.widths": "[4, 4, 4]", "model.units": "[1, 1, 1]", "model.stem_channels": "4",
        "model.kernel_size": "3", "model.stem_kernel": "7", "model.stem_stride": "2",
        "train.epochs": "1", "train.batch_size": "32", "train.threads": "1",
        "sweep.models": '["drsn-cw", "resnet"]', "sweep.snrs_db": "[-2, 4]", "sweep.kinds": '["gaussian"]',
        "sweep.seeds": "[0]", "device": '"cpu"',
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_plan_train_clean_one_cell_per_model_and_seed():
    cfg = load_config(None, tiny_overrides(**{"sweep.seeds": "[0, 1]", "sweep.adabn": "[false, true]",
                                               "sweep.kinds": '["gaussian", "pink"]'}))
    cells = plan_cells(cfg)
    assert [(c.model, c.cell_id) for c in cells] == [
        ("drsn-cw", "clean-seed0"), ("resnet", "clean-seed0"), ("drsn-cw", "clean-seed1"), ("resnet", "clean-seed1")]
    cell = cells[0]
    assert cell.config.noise.train == "clean" and cell.config.model.name == "drsn-cw"
    # clean + 2 kinds x 2 SNRs, each with and without AdaBN
    assert len(cell.conditions) == 2 * (1 + 2 * 2)
    assert ("pink", 4.0, True) in cell.conditions and ("clean", None, False) in cell.conditions


def test_plan_matched_trains_at_each_snr():
    cfg = load_config(None, tiny_overrides(**{"sweep.protocol": '"matched"', "noise.train": '"fresh"',
                                               "noise.train_snr_db": "0"}))
    cells = plan_cells(cfg)
    assert len(cells) == 2 * 2
    ids = {c.cell_id for c in cells}
    assert ids == {"gaussian_m2dB-seed0", "gaussian_4dB-seed0"}
    for c in cells:
        assert c.config.noise.train == "fresh"
        assert c.conditions == ((c.config.noise.kind, c.config.noise.train_snr_db, False),)
    # training_key ignores what cannot change the learned model
    a = training_key(cells[0].config)
    assert "sweep" not in a and "device" not in a and "threads" not in a["train"]


def _fake_results(seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for model in ("drsn-cw", "resnet"):
        for seed in seeds:
            rows.append(dict(model=model, protocol="train-clean", kind="clean", snr_db=float("nan"), adabn=False,
                             seed=seed, accuracy=1.0, balanced_accuracy=1.0, macro_f1=1.0))
            for snr in (-4.0, 0.0):
                acc = 0.5 + 0.1 * seed + (0.2 if model == "drsn-cw" else 0.0) + snr / 100
                rows.append(dict(model=model, protocol="train-clean", kind="gaussian", snr_db=snr, adabn=False,
                                 seed=seed, accuracy=acc, balanced_accuracy=acc, macro_f1=acc))
    return pd.DataFrame(rows)


def test_summary_mean_and_sample_std_over_seeds():
    summary = report.summary_table(_fake_results())
    row = summary[(summary.model == "drsn-cw") & (summary.snr_db == -4.0)].iloc[0]
    assert row.n_seeds == 3
    assert row.accuracy_mean == pytest.approx(0.76)
    assert row.accuracy_std == pytest.approx(np.std([0.66, 0.76, 0.86], ddof=1))
    clean = summary[summary.kind == "clean"]
    assert len(clean) == 2 and math.isnan(clean.snr_db.iloc[0]) and (clean.accuracy_std == 0).all()


def test_markdown_and_text_tables():
    summary = report.summary_table(_fake_results())
    md = report.to_markdown(summary)
    lines = [l for l in md.splitlines() if l.startswith("|")]
    assert lines[0] == "| model | -4 dB | 0 dB | clean |"
    assert lines[1].startswith("|:---|---:")
    assert "| drsn-cw | 76.0 ± 10.0 | 80.0 ± 10.0 | 100.0 ± 0.0 |" in lines
    text = report.to_text(report.summary_table(_fake_results(seeds=(0,))))
    assert "±" not in text  # one seed: no spread to show
    widths = {len(l) for l in text.splitlines()[1:]}
    assert len(widths) == 1  # aligned columns


def test_plots_write_png(tmp_path):
    df = _fake_results()
    report.plot_accuracy_vs_snr(df, tmp_path / "acc.png", anchors={"WDCNN (published)": {-4: 0.6, 0: 0.8}})
    report.plot_confusion([[5, 1], [0, 6]], ["normal", "IR007"], tmp_path / "cm.png", title="t")
    for name in ("acc.png", "cm.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ConfigError, match="cm"):
        report.plot_confusion([[1, 2]], ["a", "b"], tmp_path / "bad.png")


@pytest.fixture
def train_spy(monkeypatch):
    """Count calls of faultdiag.training.run.train_model (the sweep looks it up at call time)."""
    import faultdiag.training.run as train

    calls = []
    real = train.train_model

    def spy(cfg, out_dir, **kwargs):
        calls.append((cfg.model.name, str(out_dir)))
        return real(cfg, out_dir, **kwargs)

    monkeypatch.setattr(train, "train_model", spy)
    return calls


def test_sweep_skips_finished_cells_and_scores_new_snrs_without_training(tmp_path, train_spy):
    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.snrs_db": "[0]"}))
    statuses = []
    first = run_sweep(cfg, tmp_path, progress=False, on_cell=lambda info: statuses.append(info["status"]))
    assert len(train_spy) == 1 and statuses == ["trained"]
    result_file = tmp_path / "cells" / "resnet" / "clean-seed0" / "result.json"
    stamp = result_file.stat().st_mtime_ns

    again = run_sweep(cfg, tmp_path, progress=False, on_cell=lambda info: statuses.append(info["status"]))
    assert len(train_spy) == 1 and statuses[-1] == "skipped"
    assert result_file.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(first, again)

    more = load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.snrs_db": "[0, 6]"}))
    extended = run_sweep(more, tmp_path, progress=False, on_cell=lambda info: statuses.append(info["status"]))
    assert len(train_spy) == 1 and statuses[-1] == "scored"
    assert sorted(extended["snr_db"].dropna()) == [0.0, 6.0]
    # the old condition keeps its number exactly
    old = first[first.snr_db == 0.0].accuracy.item()
    assert extended[extended.snr_db == 0.0].accuracy.item() == old
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["cells_trained"] == 0 and summary["cells"] == ["cells/resnet/clean-seed0"]


def test_sweep_refuses_a_cell_trained_with_another_config(tmp_path, train_spy):
    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.snrs_db": "[0]"}))
    run_sweep(cfg, tmp_path, progress=False)
    changed = load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.snrs_db": "[0]",
                                                  "train.lr": "0.01"}))
    with pytest.raises(ConfigError, match="train.lr"):
        run_sweep(changed, tmp_path, progress=False)
    # threads and device do not change what a cell learns: no retraining, no error
    run_sweep(load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.snrs_db": "[0]",
                                                  "train.threads": "2"})), tmp_path, progress=False)
    assert len(train_spy) == 1
    # a cell recorded before an option existed (its key absent, its default None) is still finished
    result_file = tmp_path / "cells" / "resnet" / "clean-seed0" / "result.json"
    result = json.loads(result_file.read_text())
    del result["training_key"]["model"]["stem_dropout"], result["training_key"]["data"]["source_fs_hz"]
    result_file.write_text(json.dumps(result))
    run_sweep(cfg, tmp_path, progress=False)
    assert len(train_spy) == 1


def test_sweep_accepts_a_finished_cell_whose_data_moved(tmp_path, train_spy):
    one = {"sweep.models": '["resnet"]', "sweep.snrs_db": "[0]"}
    run_sweep(load_config(None, tiny_overrides(**one, **{"data.data_dir": '"old/place"'})), tmp_path, progress=False)
    moved = load_config(None, tiny_overrides(**one, **{"data.data_dir": '"new/place"'}))
    statuses = []
    run_sweep(moved, tmp_path, progress=False, on_cell=lambda info: statuses.append(info["status"]))
    assert len(train_spy) == 1 and statuses == ["skipped"]
    # other data under the new path (another fingerprint): refused, naming the key
    result_file = tmp_path / "cells" / "resnet" / "clean-seed0" / "result.json"
    result = json.loads(result_file.read_text())
    result["data_fingerprint"]["digest"] = "0" * 16
    result_file.write_text(json.dumps(result))
    with pytest.raises(ConfigError, match="data.data_dir"):
        run_sweep(moved, tmp_path, progress=False)
    assert len(train_spy) == 1


def test_matched_protocol_trains_with_noise_and_scores_at_that_snr(tmp_path, train_spy):
    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["drsn-cw"]', "sweep.snrs_db": "[0]",
                                               "sweep.protocol": '"matched"', "sweep.adabn": "[false, true]"}))
    df = run_sweep(cfg, tmp_path, progress=False)
    assert len(train_spy) == 1 and train_spy[0][1].endswith("gaussian_0dB-seed0")
    assert list(df.kind) == ["gaussian", "gaussian"] and list(df.adabn) == [False, True]
    assert set(df.protocol) == {"matched"}
    cell = json.loads((tmp_path / "cells" / "drsn-cw" / "gaussian_0dB-seed0" / "result.json").read_text())
    assert cell["config"]["noise"]["train"] == "fixed" and cell["config"]["noise"]["train_snr_db"] == 0.0
    assert (tmp_path / "summary.md").read_text().count("drsn-cw +AdaBN") == 1


def test_parallel_jobs_give_the_numbers_of_one_job_and_skip_finished_cells(tmp_path):
    over = tiny_overrides(**{"sweep.protocol": '"matched"', "noise.train": '"fresh"', "noise.train_snr_db": "0"})
    cfg = load_config(None, over)
    one = run_sweep(cfg, tmp_path / "one", progress=False)
    statuses = []
    two = run_sweep(cfg, tmp_path / "two", progress=False, jobs=2,
                    on_cell=lambda info: statuses.append(info["status"]))
    assert sorted(statuses) == ["trained"] * 4
    pd.testing.assert_frame_equal(one, two)
    statuses.clear()
    run_sweep(cfg, tmp_path / "two", progress=False, jobs=2, on_cell=lambda info: statuses.append(info["status"]))
    assert statuses == ["skipped"] * 4


def test_plan_matched_runs_condition_by_condition():
    cfg = load_config(None, tiny_overrides(**{"sweep.protocol": '"matched"', "sweep.seeds": "[0, 1]"}))
    order = [(c.seed, c.conditions[0][1], c.model) for c in plan_cells(cfg)]
    assert order == [(s, snr, m) for s in (0, 1) for snr in (-2.0, 4.0) for m in ("drsn-cw", "resnet")]


def test_train_mixed_trains_once_per_seed_with_mixed_noise(tmp_path, train_spy):
    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["resnet"]', "sweep.protocol": '"train-mixed"'}))
    (cell,) = plan_cells(cfg)
    assert cell.cell_id == "mixed-seed0" and cell.config.noise.train == "mixed"
    assert ("clean", None, False) in cell.conditions and ("gaussian", -2.0, False) in cell.conditions
    df = run_sweep(cfg, tmp_path, progress=False)
    assert len(train_spy) == 1 and set(df.protocol) == {"train-mixed"} and len(df) == 3


def test_a_failing_cell_is_reported_after_the_others_and_no_aggregate_is_written(tmp_path):
    from faultdiag.errors import FaultdiagError

    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["resnet", "drsn-cw"]'}))
    bad = tmp_path / "cells" / "resnet" / "clean-seed0"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text("{not json")
    statuses = []
    with pytest.raises(FaultdiagError, match="(?s)1 of 2 sweep cells failed.*resnet clean-seed0.*unreadable"):
        run_sweep(cfg, tmp_path, progress=False, jobs=2, on_cell=lambda info: statuses.append(info["status"]))
    assert sorted(statuses) == ["failed", "trained"]
    assert (tmp_path / "cells" / "drsn-cw" / "clean-seed0" / "result.json").is_file()
    assert not (tmp_path / "results.csv").exists()


def test_a_sweep_mixing_families_gives_each_cell_only_its_own_model_keys():
    cfg = load_config(None, tiny_overrides(**{"sweep.models": '["drsn-cw", "wdcnn", "ticnn"]', "model.preset": '"wide"',
                                               "model.stem_dropout": "0.3", "model.kernel_dropout": "0.2"}))
    by_model = {c.model: c.config.model for c in plan_cells(cfg)}
    assert by_model["drsn-cw"].preset == "wide" and by_model["drsn-cw"].stem_dropout == 0.3
    assert by_model["drsn-cw"].kernel_dropout == 0.2  # the stem's kernel dropout applies to the DRSN too
    assert by_model["wdcnn"].preset == "paper" and by_model["wdcnn"].stem_dropout is None
    assert by_model["wdcnn"].widths is None and by_model["wdcnn"].kernel_dropout is None
    assert by_model["ticnn"].kernel_dropout == 0.5  # the [model] recipe is DRSN's: TICNN at its paper's rate
    own = load_config(None, tiny_overrides(**{"sweep.models": '["ticnn", "drsn-cw"]', "model.name": '"ticnn"',
                                              "model.kernel_dropout": "0.2"}))
    assert {c.model: c.config.model.kernel_dropout for c in plan_cells(own)} == {"ticnn": 0.2, "drsn-cw": 0.2}


def test_accuracy_per_task_plot_needs_tasks(tmp_path):
    df = pd.DataFrame({"model": ["drsn-cw"] * 4, "kind": ["clean"] * 4, "snr_db": [np.nan] * 4,
                       "adabn": [False, True] * 2, "seed": [0, 0, 1, 1], "accuracy": [0.8, 0.9, 0.85, 0.95],
                       "task": ["1>2"] * 4, "adapt": ["none"] * 4})
    report.plot_accuracy_per_task(df, tmp_path / "tasks.png")
    assert (tmp_path / "tasks.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="cross-domain"):
        report.plot_accuracy_per_task(df.drop(columns="task"), tmp_path / "no.png")


def test_cross_domain_trains_on_one_load_tests_on_another_and_adapts(tmp_path):
    over = tiny_overrides(**{"data.loads": "[0, 2]", "data.domain": '"load_hp"', "data.train_domains": "[0]",
                             "data.test_domains": "[2]", "sweep.protocol": '"cross-domain"',
                             "sweep.tasks": '["0>2", "2>0"]', "sweep.adapt": '["none", "coral"]',
                             "sweep.models": '["drsn-cw"]', "sweep.adabn": "[false, true]"})
    cfg = load_config(None, over)
    cells = plan_cells(cfg)
    assert [c.cell_id for c in cells] == ["0to2-none-seed0", "0to2-coral-seed0", "2to0-none-seed0", "2to0-coral-seed0"]
    assert cells[1].config.adapt.method == "coral" and cells[2].config.data.train_domains == ("2",)
    df = run_sweep(cfg, tmp_path, progress=False)
    assert set(df["task"]) == {"0>2", "2>0"} and set(df["adapt"]) == {"none", "coral"} and len(df) == 8
    text = (tmp_path / "summary.md").read_text()
    assert "| model | 0>2 | 2>0 | mean |" in text and "| drsn-cw +CORAL +AdaBN |" in text
    assert (tmp_path / "accuracy_per_task.png").stat().st_size > 0  # bars per task, not an empty SNR axis
    assert not (tmp_path / "accuracy_vs_snr.png").exists()
    result = json.loads((tmp_path / "cells" / "drsn-cw" / "0to2-coral-seed0" / "result.json").read_text())
    assert result["task"] == "0>2" and result["adapt"] == "coral"
    with pytest.raises(ConfigError, match="data.domain"):
        plan_cells(load_config(None, [*tiny_overrides(), "sweep.protocol=\"cross-domain\"", "sweep.tasks=[\"0>2\"]"]))
