"""Why a clean-trained model fails under noise: confusions, learned thresholds and BatchNorm shift per SNR.

    python -m benchmarks.noise_diagnosis CELL_DIR [CELL_DIR ...] [--snrs -4 0 4 10] [--out FILE]

Each CELL_DIR is a training folder (``checkpoint.pt`` + ``config.toml``, e.g. a sweep cell). For its
test windows, clean and with white Gaussian noise at each SNR (noise fixed by seed as in
``faultdiag evaluate``), it reports:

* the confusion matrix at the lowest SNR and which class absorbs the misclassified windows;
* for every shrinkage unit of a DRSN, the mean threshold ``tau`` over windows and channels, and its
  ratio to the clean value (the DRSN premise: thresholds grow with the noise);
* for the first BatchNorm of each stage, the mean per-channel ratio of the batch variance of its
  input to its running (clean training) variance: how far noise moves the statistics that AdaBN
  re-estimates.

Prints a summary and writes everything to ``--out`` (default
``benchmarks/results/noise_diagnosis.json``) with the checkpoints, data fingerprint and code revision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faultdiag.config import load_config
from faultdiag.evaluate import compute_metrics, load_model, noisy_inputs, prepared_for
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent


def _stage_bns(model: nn.Module) -> list[nn.Module]:
    """The first BatchNorm of each residual stage (``bn1`` of its first unit), or every BatchNorm1d."""
    stages = getattr(model, "stages", None)
    if stages is not None:
        return [stage[0].bn1 for stage in stages]
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)][:4]


@torch.no_grad()
def _probe(model: nn.Module, X: torch.Tensor) -> tuple[np.ndarray, list[float], list[float]]:
    """Predictions, mean tau per shrinkage unit, and per stage BN the mean variance ratio batch/running."""
    bns, ratios = _stage_bns(model), []
    hooks = [bn.register_forward_pre_hook(
        lambda m, args: ratios.append(float((args[0].transpose(0, 1).flatten(1).var(dim=1)
                                             / m.running_var.clamp_min(1e-12)).mean()))) for bn in bns]
    preds, taus = [], []
    try:
        for i in range(0, len(X), 512):
            preds.append(model(X[i:i + 512]).argmax(1))
            if hasattr(model, "thresholds"):
                taus.append([float(t.mean()) for t in model.thresholds()])
    finally:
        for h in hooks:
            h.remove()
    n_bn = len(bns)
    ratio = np.asarray(ratios).reshape(-1, n_bn).mean(axis=0).tolist() if n_bn else []
    tau = np.asarray(taus).mean(axis=0).tolist() if taus and taus[0] else []
    return torch.cat(preds).numpy(), tau, ratio


def diagnose_cell(cell_dir: Path, snrs_db: list[float]) -> dict:
    model, ckpt = load_model(cell_dir / "checkpoint.pt")
    cfg = load_config(cell_dir / "config.toml")
    prepared = prepared_for(ckpt, cfg)
    y = np.asarray(prepared.test.y)
    rows = []
    for snr in [None, *snrs_db]:  # the windows the evaluator scores (its noise seeds)
        pred, tau, bn_ratio = _probe(model.eval(), noisy_inputs(prepared, "gaussian", snr, seed=cfg.seed))
        metrics = compute_metrics(y, pred, prepared.class_names)
        rows.append({"snr_db": snr, "accuracy": metrics["accuracy"], "tau_mean": tau, "bn_var_ratio": bn_ratio,
                     "confusion": metrics["confusion"], "predicted_share": np.bincount(
                         pred, minlength=len(prepared.class_names)).tolist()})
    clean = rows[0]
    for r in rows:
        r["tau_ratio_to_clean"] = [t / c if c else float("nan") for t, c in zip(r["tau_mean"], clean["tau_mean"])]
    worst = min(rows[1:], key=lambda r: r["snr_db"])
    cm = np.asarray(worst["confusion"])
    wrong = cm.sum(axis=0) - np.diag(cm)
    return {"cell": str(cell_dir), "model": ckpt.model_name, "front_end": ckpt.inputs.front_end.to_dict(),
            "class_names": list(prepared.class_names), "data_fingerprint": prepared.fingerprint.get("digest"),
            "checkpoint_revision": ckpt.revision, "rows": rows,
            "lowest_snr": {"snr_db": worst["snr_db"], "absorbing_class": prepared.class_names[int(wrong.argmax())],
                           "share_of_errors": float(wrong.max() / max(wrong.sum(), 1))}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cells", nargs="+", type=Path)
    parser.add_argument("--snrs", nargs="+", type=float, default=[10.0, 4.0, 0.0, -4.0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "noise_diagnosis.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = [diagnose_cell(c, sorted(args.snrs, reverse=True)) for c in args.cells]
    for r in results:
        print(f"\n{r['cell']} ({r['model']}, front end {r['front_end']['kind']}):")
        for row in r["rows"]:
            snr = "clean" if row["snr_db"] is None else f"{row['snr_db']:g} dB"
            taus = " ".join(f"{t:.2f}" for t in row["tau_ratio_to_clean"])
            bns = " ".join(f"{b:.1f}" for b in row["bn_var_ratio"])
            print(f"  {snr:>6}: acc {100 * row['accuracy']:5.1f} %  tau/tau_clean per unit [{taus}]  "
                  f"BN var ratio per stage [{bns}]")
        low = r["lowest_snr"]
        print(f"  at {low['snr_db']:g} dB, {100 * low['share_of_errors']:.0f} % of the errors go to '{low['absorbing_class']}'")
    out = {"snrs_db": args.snrs, "cells": results, "code_revision": code_revision(), "versions": library_versions(),
           "machine": machine_info()}
    write_json(args.out, out)
    print(f"\nwritten to {args.out}")
    return out


if __name__ == "__main__":
    main()
