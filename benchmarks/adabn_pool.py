"""What AdaBN needs of the windows it adapts on: the whole test set, one recording at a time, or a class-skewed pool.

    python -m benchmarks.adabn_pool RUN_DIR [--models drsn-cw ticnn] [--seeds 0 1 2] [--out FILE]

AdaBN (:func:`faultdiag.evaluate.adabn`) re-estimates every BatchNorm's statistics on unlabelled target
windows. The WDCNN protocol adapts on all the test windows of one SNR at once: every class, in the test
split's proportions. A user diagnosing recordings has other pools at hand, and this re-scores the
train-clean cells of a finished WDCNN-protocol sweep (``RUN_DIR/cells/<model>/clean-seed<N>``) clean and
with white Gaussian noise at -4 ... 10 dB (the evaluator's noise seeds) with the statistics estimated on:

* ``none``: the kept training statistics (no adaptation);
* ``all``: all the test windows of that SNR (the protocol; must reproduce the cell's ``result.json``);
* ``per_recording``: each recording's test windows alone, each recording scored with its own statistics;
* ``skewed``: for each class in turn, a pool where that class makes half of the windows (all its test
  windows, the others' drawn at random without replacement, seeded), every test window scored with that
  pool's statistics; the mean over the classes.

Accuracy in percent over all test windows. One JSON line per cell in ``--out`` (default
``benchmarks/results/adabn_pool.jsonl``) with the cell, its data fingerprint, this code revision and the
machine; about a minute per cell.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import faultdiag.evaluate as ev
from benchmarks import cells
from benchmarks.cells import SNRS_DB
from faultdiag.config import load_config
from faultdiag.provenance import code_revision, machine_info
from faultdiag.training import prepare

OUT = Path(__file__).resolve().parent / "results" / "adabn_pool.jsonl"
POOLS = ("none", "all", "per_recording", "skewed")
ADABN_BATCH = 512
"""AdaBN's batch as :func:`faultdiag.evaluate.evaluate_snrs` runs it (its default seed, 0, too)."""


def _hits(model, X: torch.Tensor, y: np.ndarray) -> np.ndarray:
    return ev.predict_logits(model, X).argmax(1).numpy() == y


def skewed_pool(y: np.ndarray, cls: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a pool where class ``cls`` makes half: all its windows, as many drawn from the others."""
    own, others = np.flatnonzero(y == cls), np.flatnonzero(y != cls)
    return np.concatenate([own, rng.choice(others, min(len(own), len(others)), replace=False)])


def _adapted(model, X: torch.Tensor):
    return ev.adabn(model, X, batch_size=ADABN_BATCH)


def pool_accuracies(model, X: torch.Tensor, y: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, float]:
    """Accuracy (%) of ``model`` on ``X`` with the statistics of each pool in :data:`POOLS`; ``seed``
    draws the skewed pools."""
    per_recording = np.zeros(len(y), bool)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        per_recording[idx] = _hits(_adapted(model, X[idx]), X[idx], y[idx])
    rng = np.random.default_rng(seed)
    skewed = [_hits(_adapted(model, X[skewed_pool(y, c, rng)]), X, y).mean() for c in np.unique(y)]
    out = {"none": _hits(model, X, y).mean(), "all": _hits(_adapted(model, X), X, y).mean(),
           "per_recording": per_recording.mean(), "skewed": float(np.mean(skewed))}
    return {k: round(100 * float(v), 2) for k, v in out.items()}


def score_cell(cell: Path, prepared=None) -> tuple[dict, object]:
    cfg = load_config(cell / "config.toml", [])
    prepared = prepared if prepared is not None else prepare(cfg)
    model, _ = ev.load_model(cell / "checkpoint.pt")
    y, groups = np.asarray(prepared.test.y), np.asarray(prepared.test.groups)
    row = {"cell": str(cell), "seed": cfg.seed, "snrs_db": ["clean", *SNRS_DB],
           "n_recordings": int(len(np.unique(groups))), **{pool: [] for pool in POOLS}}
    for snr in (None, *SNRS_DB):
        X = ev.noisy_inputs(prepared, "gaussian", snr, seed=cfg.seed)
        for pool, acc in pool_accuracies(model, X, y, groups, cfg.seed).items():
            row[pool].append(acc)
    own = json.loads((cell / "result.json").read_text())["evaluations"]
    row["cell_result_adabn"] = [round(100 * e["accuracy"], 2) for e in own if e["adabn"]]
    row.update(data_fingerprint=prepared.fingerprint.get("digest"), code_revision=code_revision(),
               machine=machine_info())
    return row, prepared


def main(argv: list[str] | None = None) -> list[dict]:
    return cells.main(argv, __doc__.splitlines()[0], OUT, score_cell, lambda row: json.dumps(
        {k: row[k] for k in ("cell", *POOLS, "cell_result_adabn")}))


if __name__ == "__main__":
    main()
