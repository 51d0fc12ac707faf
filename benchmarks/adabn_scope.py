"""Where AdaBN's gain comes from in a DRSN: all BatchNorms re-estimated vs the trunk only.

    python -m benchmarks.adabn_scope RUN_DIR [--models drsn-cw drsn-cs] [--seeds 0 1 2] [--out FILE]

Re-scores the train-clean cells of a finished WDCNN-protocol sweep (``RUN_DIR/cells/<model>/clean-seed<N>``,
e.g. the run behind ``benchmarks/results/cwru_wdcnn``) on their test windows with white Gaussian noise at
-4 ... 10 dB, twice: with the standard AdaBN (:func:`faultdiag.evaluate.adabn`, which must reproduce the
cell's own ``result.json``, also recorded) and with AdaBN on the trunk only -- every BatchNorm re-estimated
except those inside the threshold sub-networks (:class:`~faultdiag.models.shrinkage.ThresholdEstimator`),
which keep their training statistics. Appends one JSON line per cell to ``--out`` (default
``benchmarks/results/cwru_wdcnn_trials_frontend/adabn_trunk_only.jsonl``) with accuracies (%), the cell,
its data fingerprint and this code revision. About a minute per cell on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import faultdiag.evaluate as ev
from benchmarks import cells
from benchmarks.cells import SNRS_DB
from faultdiag.config import load_config
from faultdiag.models.shrinkage import ThresholdEstimator
from faultdiag.provenance import code_revision, machine_info
from faultdiag.training import prepare

OUT = Path(__file__).resolve().parent / "results" / "cwru_wdcnn_trials_frontend" / "adabn_trunk_only.jsonl"


def adabn_trunk_only(model, X, batch_size=256, device="cpu", seed=0):
    """:func:`faultdiag.evaluate.adabn`, then the threshold sub-networks' BatchNorm statistics put back."""
    kept = {name: {k: v.clone() for k, v in m.bn.state_dict().items()}
            for name, m in model.named_modules() if isinstance(m, ThresholdEstimator)}
    adapted = ev.adabn(model, X, batch_size=batch_size, device=device, seed=seed)
    modules = dict(adapted.named_modules())
    for name, state in kept.items():
        modules[name].bn.load_state_dict(state)
    return adapted


def score_cell(cell: Path, prepared=None) -> tuple[dict, object]:
    cfg = load_config(cell / "config.toml", [])
    prepared = prepared if prepared is not None else prepare(cfg)
    model, _ = ev.load_model(cell / "checkpoint.pt")
    row = {"cell": str(cell), "seed": cfg.seed, "snrs_db": list(SNRS_DB)}
    for variant, fn in (("adabn", ev.adabn), ("adabn_trunk_only", adabn_trunk_only)):
        ev._adapt_batchnorm = fn
        try:
            rows = ev.evaluate_snrs(model, prepared, snrs_db=SNRS_DB, adabn=True, seed=cfg.seed, include_clean=False)
        finally:
            ev._adapt_batchnorm = ev.adabn
        row[variant] = [round(100 * r["accuracy"], 2) for r in rows]
    own = json.loads((cell / "result.json").read_text())["evaluations"]
    row["cell_result_adabn"] = [round(100 * e["accuracy"], 2) for e in own if e["adabn"] and e["snr_db"] is not None]
    row.update(data_fingerprint=prepared.fingerprint.get("digest"), code_revision=code_revision(),
               machine=machine_info())
    return row, prepared


def main(argv: list[str] | None = None) -> list[dict]:
    return cells.main(argv, __doc__.splitlines()[0], OUT, score_cell, lambda row: json.dumps(
        {k: row[k] for k in ("cell", "adabn", "adabn_trunk_only", "cell_result_adabn")}))


if __name__ == "__main__":
    main()
