"""Single-seed trials on the WDCNN protocol: what moves a clean-trained model's accuracy under noise.

    python benchmarks/cwru_wdcnn_trials.py NAME [--set KEY=VALUE ...] [--leaky] [--gain-jitter G]
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
* ``--gain-jitter G``: multiply each raw training window by a gain drawn log-uniformly from
  [1/G, G] before normalisation (clean data, amplitude only); not a config option of the trainer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faultdiag import train as T  # noqa: E402
from faultdiag.config import config_to_dict, load_config  # noqa: E402
from faultdiag.data.normalize import Standardizer  # noqa: E402
from faultdiag.data.windows import WindowSet  # noqa: E402
from faultdiag.evaluate import evaluate_snrs  # noqa: E402
from faultdiag.provenance import code_revision, library_versions, machine_info  # noqa: E402

SNRS_DB = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
OUT = ROOT / "benchmarks" / "results" / "cwru_wdcnn_trials.jsonl"


def leaky_split(prepared: T.Prepared, seed: int = 0) -> T.Prepared:
    """All windows pooled and split at random 70/15/15 (overlapping windows on both sides)."""
    pooled = WindowSet.concat([prepared.train, prepared.val, prepared.test])
    idx = np.random.default_rng(seed).permutation(len(pooled))
    a, b = int(0.7 * len(idx)), int(0.85 * len(idx))
    train = pooled.subset(np.sort(idx[:a]))
    return dataclasses.replace(prepared, train=train, val=pooled.subset(np.sort(idx[a:b])),
                               test=pooled.subset(np.sort(idx[b:])),
                               standardizer=Standardizer(per_channel=True).fit(train.X))


def enable_gain_jitter(max_gain: float, seed: int) -> None:
    """Make the trainer scale every training window by a random gain in [1/max_gain, max_gain].

    Replaces the trainer's batch builder for this process:
    gains are drawn per window and batch from a generator seeded by ``seed`` and applied to the
    model input (global standardisation is linear up to a mean that is ~0 for vibration signals).
    """
    build, gen = T._batch_input, torch.Generator().manual_seed(seed)

    def jittered(data, idx, cfg, prep, gens):
        x = build(data, idx, cfg, prep, gens)                                   # (B, C, L)
        log_gain = (torch.rand(x.shape[0], 1, 1, generator=gen) * 2 - 1) * float(np.log(max_gain))
        return x * log_gain.exp()

    T._batch_input = jittered


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--leaky", action="store_true")
    parser.add_argument("--gain-jitter", type=float, default=0.0)
    parser.add_argument("--data-dir", help="CWRU folder (default: the config's data_dir)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.gain_jitter and args.gain_jitter <= 1:
        parser.error(f"--gain-jitter must be > 1; got {args.gain_jitter}")
    sets = ["data.eval_hop=256", *args.sets] + ([f'data.data_dir="{args.data_dir}"'] if args.data_dir else [])
    cfg = load_config(ROOT / "configs" / "cwru_wdcnn.toml", sets)
    prepared = T.prepare(cfg)
    if args.leaky:
        prepared = leaky_split(prepared, cfg.seed)
    if args.gain_jitter:
        enable_gain_jitter(args.gain_jitter, cfg.seed)
    t0 = time.perf_counter()
    result = T.train_model(cfg, ROOT / "runs" / "wdcnn_trials" / args.name, prepared=prepared, progress=False)
    row = {"name": args.name, "overrides": sets, "leaky": args.leaky, "gain_jitter": args.gain_jitter,
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
