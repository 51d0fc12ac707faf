"""benchmarks/cwru_accuracy.py splits a grid into jobs: per model (WDCNN), per unfinished cell in condition order (paper)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from faultdiag.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("cwru_accuracy", ROOT / "benchmarks" / "cwru_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wdcnn_grid_runs_one_job_per_model(tmp_path):
    bench = _load_script()
    cfg = load_config(ROOT / "configs" / "cwru_wdcnn.toml")
    names = [name for name, _ in bench.job_parts(cfg, tmp_path)]
    assert names == [f"job_{m}" for m in cfg.sweep.models]


def test_paper_grid_runs_unfinished_cells_condition_by_condition(tmp_path):
    bench = _load_script()
    cfg = load_config(ROOT / "configs" / "cwru_paper.toml", ["sweep.seeds=[0, 1]"])
    done = tmp_path / "cells" / "resnet" / "gaussian_m5dB-seed0"
    done.mkdir(parents=True)
    (done / "result.json").write_text("{}")
    parts = bench.job_parts(cfg, tmp_path)
    sw = cfg.sweep
    assert len(parts) == len(sw.seeds) * len(sw.snrs_db) * len(sw.kinds) * len(sw.models) - 1
    names = [name for name, _ in parts]
    assert "job_resnet_gaussian_m5dB-seed0" not in names
    # the first condition (seed 0, lowest SNR, first kind) for every other model, then the next kind
    first = [f"job_{m}_gaussian_m5dB-seed0" for m in sw.models if m != "resnet"]
    assert names[:len(first)] == first
    assert names[len(first)] == f"job_{sw.models[0]}_laplacian_m5dB-seed0"
    assert names[-1] == f"job_{sw.models[-1]}_pink_5dB-seed1"
    # each job narrows the sweep to exactly its cell
    assert parts[0][1] == [f'sweep.models=["{sw.models[0]}"]', 'sweep.kinds=["gaussian"]', "sweep.snrs_db=[-5.0]",
                           "sweep.seeds=[0]"]
