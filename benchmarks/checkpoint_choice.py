"""Which epoch to keep: the best-validation epoch (what training keeps) against the last one, same cells.

    python -m benchmarks.checkpoint_choice RUN_DIR [--models drsn-cw ticnn] [--seeds 0 1 2] [--out FILE]

For each train-clean cell of a finished WDCNN-protocol sweep trained without early stopping
(``train.patience = 0``, so ``last.pt`` holds the last epoch of the whole schedule) it scores the cell's test
windows, white Gaussian noise at -4 ... 10 dB with the evaluator's own noise seeds, with and without AdaBN,
twice: the kept checkpoint (``checkpoint.pt``, the best validation epoch; must reproduce the cell's own
``result.json``, recorded beside it) and the last epoch's weights (``last.pt``). A diagnostic: choosing the
epoch by test accuracy would be selection on the test set, so this only says how much the choice matters.
One JSON line per cell in ``--out`` (default ``benchmarks/results/checkpoint_choice.jsonl``), about a minute a cell.
For cells trained with ``train.ema`` the kept checkpoint holds the moving average of the weights while ``last.pt``'s
``model`` holds the trained weights of the last epoch, so the comparison then also changes what is averaged.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

import faultdiag.evaluate as ev
from benchmarks import cells
from benchmarks.cells import SNRS_DB
from faultdiag.config import load_config
from faultdiag.provenance import code_revision, machine_info
from faultdiag.training import prepare

OUT = Path(__file__).resolve().parent / "results" / "checkpoint_choice.jsonl"


def score_cell(cell: Path, prepared=None) -> tuple[dict, object]:
    cfg = load_config(cell / "config.toml", [])
    prepared = prepared if prepared is not None else prepare(cfg)
    best, _ = ev.load_model(cell / "checkpoint.pt")
    state = torch.load(cell / "last.pt", map_location="cpu", weights_only=False)
    if not state.get("finished") or state["epoch"] != cfg.train.epochs:
        raise SystemExit(f"{cell}: last.pt is epoch {state['epoch']} of {cfg.train.epochs}, not the end of the "
                         "schedule (was it trained with train.patience = 0?)")
    last = copy.deepcopy(best)
    last.load_state_dict(state["model"])
    row = {"cell": str(cell), "seed": cfg.seed, "best_epoch": state["best_epoch"], "last_epoch": state["epoch"],
           "snrs_db": list(SNRS_DB)}
    for name, model in (("best", best), ("last", last)):
        for adabn in (False, True):
            rows = ev.evaluate_snrs(model, prepared, snrs_db=SNRS_DB, adabn=adabn, seed=cfg.seed, include_clean=False)
            row[name + ("_adabn" if adabn else "")] = [round(100 * r["accuracy"], 2) for r in rows]
    own = json.loads((cell / "result.json").read_text())["evaluations"]
    row["cell_result"] = [round(100 * e["accuracy"], 2) for e in own if not e["adabn"] and e["snr_db"] is not None]
    row.update(data_fingerprint=prepared.fingerprint.get("digest"), code_revision=code_revision(),
               machine=machine_info())
    return row, prepared


def main(argv: list[str] | None = None) -> list[dict]:
    return cells.main(argv, __doc__.splitlines()[0], OUT, score_cell, lambda row: json.dumps(
        {k: row[k] for k in ("cell", "best_epoch", "best", "last", "best_adabn", "last_adabn", "cell_result")}))


if __name__ == "__main__":
    main()
