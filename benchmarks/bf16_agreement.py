"""What bfloat16 inference (``diagnose --precision bfloat16``) does to trained models' answers.

    python -m benchmarks.bf16_agreement RUN_DIR [--models drsn-cw drsn-cs] [--seeds 0 1 2] [--out FILE]

For each train-clean cell of a finished WDCNN-protocol sweep (``RUN_DIR/cells/<model>/clean-seed<N>``, e.g.
the run behind ``benchmarks/results/cwru_wdcnn``) it scores the cell's test windows, clean and with white
Gaussian noise at -4 ... 10 dB (the evaluator's own noise seeds), with and without AdaBN, three ways: the
eval-mode model, its folded float32 copy (what ``diagnose`` runs by default) and its folded bfloat16 copy
(:func:`faultdiag.models.inference.fold_for_inference`). It records each one's accuracy (%), the share of
windows where bfloat16 and float32 pick the same class, and the largest difference of a class probability.
One JSON line per cell is appended to ``--out`` (default ``benchmarks/results/bf16_agreement.jsonl``) with the
cell, its data fingerprint, this code revision and the machine. About a minute per cell on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import faultdiag.evaluate as ev
from benchmarks import cells
from benchmarks.cells import SNRS_DB
from faultdiag.config import load_config
from faultdiag.models.inference import bfloat16_supported, fold_for_inference
from faultdiag.provenance import code_revision, machine_info
from faultdiag.training import prepare

OUT = Path(__file__).resolve().parent / "results" / "bf16_agreement.jsonl"


def _probs(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(ev.predict_logits(model, X, batch_size=256).float(), dim=1)


def score_cell(cell: Path, prepared=None) -> tuple[dict, object]:
    cfg = load_config(cell / "config.toml", [])
    prepared = prepared if prepared is not None else prepare(cfg)
    model, _ = ev.load_model(cell / "checkpoint.pt")
    y = np.asarray(prepared.test.y)
    row: dict = {"cell": str(cell), "seed": cfg.seed, "n_windows": len(y), "conditions": []}
    for adabn in (False, True):
        for snr in (None, *SNRS_DB):
            X = ev.noisy_inputs(prepared, "gaussian", snr, seed=cfg.seed, per=cfg.noise.per)
            scorer = ev.adabn(model, X, batch_size=256) if adabn else model
            scorer.eval()
            p_eval = _probs(scorer, X)
            p32 = _probs(fold_for_inference(scorer), X)
            p16 = _probs(fold_for_inference(scorer, dtype=torch.bfloat16), X)
            a32, a16 = p32.argmax(1).numpy(), p16.argmax(1).numpy()
            row["conditions"].append({
                "snr_db": snr, "adabn": adabn,
                "accuracy_eval": round(100 * float((p_eval.argmax(1).numpy() == y).mean()), 2),
                "accuracy_float32": round(100 * float((a32 == y).mean()), 2),
                "accuracy_bfloat16": round(100 * float((a16 == y).mean()), 2),
                "same_class_pct": round(100 * float((a32 == a16).mean()), 3),
                "max_abs_prob_diff": round(float((p32 - p16).abs().max()), 4)})
    row.update(data_fingerprint=prepared.fingerprint.get("digest"), code_revision=code_revision(),
               machine=machine_info(), bfloat16_native=bfloat16_supported())
    return row, prepared


def _line(row: dict) -> str:
    worst = min(row["conditions"], key=lambda c: c["same_class_pct"])
    gap = max(abs(c["accuracy_bfloat16"] - c["accuracy_float32"]) for c in row["conditions"])
    return (f"{row['cell']}: bfloat16 picks float32's class on >= {worst['same_class_pct']:.2f} % of windows "
            f"(worst: {worst['snr_db']} dB, AdaBN {worst['adabn']}); accuracy differs by <= {gap:.2f} points")


def main(argv: list[str] | None = None) -> list[dict]:
    return cells.main(argv, __doc__.splitlines()[0], OUT, score_cell, _line)


if __name__ == "__main__":
    main()
