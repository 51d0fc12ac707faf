"""Single-seed trials on the WDCNN protocol: what moves a clean-trained model's accuracy under noise.

    python -m benchmarks.cwru_wdcnn_trials NAME [--set KEY=VALUE ...] [--leaky]
                                           [--data-dir DIR] [--out FILE]

Trains one model on ``configs/cwru_wdcnn.toml`` (with ``--set`` overrides, e.g.
``model.stem_dropout=0.5`` or ``model.stem_stride=16``) and scores it on the test windows with
white Gaussian noise at -4 ... 10 dB, with and without AdaBN. Appends one JSON line to ``--out``
(default ``benchmarks/results/cwru_wdcnn_trials.jsonl``) with the resolved config, seed, data
fingerprint, code revision, machine and the accuracies (%).

Two switches exist only to explain numbers, never to produce the benchmark's own:

* ``--leaky``: WDCNN's own split -- every window of every region pooled and split at random 70/15/15,
  so test windows overlap training windows (the split faultdiag refuses everywhere else). It
  measures how much of the gap to the published anchors that leakage accounts for.
Random gain (``--set train.gain_jitter=G``: each raw training window scaled by a gain drawn
log-uniformly from [1/G, G]) and the other training options are config keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from faultdiag.config import config_to_dict, load_config
from faultdiag.data.normalize import Standardizer
from faultdiag.data.windows import WindowSet
from faultdiag.evaluate import evaluate_snrs
from faultdiag.provenance import code_revision, library_versions, machine_info
from faultdiag.training import Prepared, prepare, train_model

ROOT = Path(__file__).resolve().parent.parent

SNRS_DB = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
OUT = ROOT / "benchmarks" / "results" / "cwru_wdcnn_trials.jsonl"


def leaky_split(prepared: Prepared, seed: int = 0) -> Prepared:
    """All windows pooled and split at random 70/15/15 (overlapping windows on both sides)."""
    pooled = WindowSet.concat([prepared.train, prepared.val, prepared.test])
    idx = np.random.default_rng(seed).permutation(len(pooled))
    a, b = int(0.7 * len(idx)), int(0.85 * len(idx))
    train = pooled.subset(np.sort(idx[:a]))
    return dataclasses.replace(prepared, train=train, val=pooled.subset(np.sort(idx[a:b])),
                               test=pooled.subset(np.sort(idx[b:])),
                               inputs=dataclasses.replace(prepared.inputs, standardizer=Standardizer(per_channel=True)
                                                          .fit(prepared.inputs.features(train.X))))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--leaky", action="store_true")
    parser.add_argument("--data-dir", help="CWRU folder (default: the config's data_dir)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sets = ["data.eval_hop=256", *args.sets] + ([f'data.data_dir="{args.data_dir}"'] if args.data_dir else [])
    cfg = load_config(ROOT / "configs" / "cwru_wdcnn.toml", sets)
    prepared = prepare(cfg)
    if args.leaky:
        prepared = leaky_split(prepared, cfg.seed)
    t0 = time.perf_counter()
    result = train_model(cfg, ROOT / "runs" / "wdcnn_trials" / args.name, prepared=prepared, progress=False)
    row = {"name": args.name, "overrides": sets, "leaky": args.leaky, "gain_jitter": cfg.train.gain_jitter,
           "seed": cfg.seed, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
           "train_wall_s": round(time.perf_counter() - t0, 1), "n_train": len(prepared.train),
           "n_test": len(prepared.test)}
    for adabn in (False, True):
        rows = evaluate_snrs(result.model, prepared, snrs_db=SNRS_DB, adabn=adabn, seed=cfg.seed,
                             include_clean=not adabn)
        row["adabn" if adabn else "plain"] = {("clean" if r["snr_db"] is None else f"{r['snr_db']:g}"):
                                              round(100 * r["accuracy"], 1) for r in rows}
    row.update(config=config_to_dict(cfg), data_fingerprint=prepared.fingerprint.get("digest"),
               code_revision=code_revision(), versions=library_versions(), machine=machine_info())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("name", "plain", "adabn")}))
    return row


if __name__ == "__main__":
    main()
