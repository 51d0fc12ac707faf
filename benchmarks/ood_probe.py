"""Probe: does a feature-space (Mahalanobis) score flag the other HIT-SM rig where an RMS check does not?

Trains a small DRSN-CW (``paper`` preset, 7 classes) on the SpectraQuest MFS recordings (51.2 kHz,
windows of 2048, time-region split 0.7/0.15/0.15, standardised on train) with a plain Adam loop,
fits :class:`faultdiag.ood.FeatureDensity` on the training features, calibrates it on the
validation windows (95 %), and measures

* the exceedance on the MFS test split (should be near 5 %) and how many of its 21 test regions
  :func:`faultdiag.ood.recording_verdict` flags (false alarms);
* the AUROC of MFS test windows vs every non-overlapping window of the 21 self-built recordings,
  for the Mahalanobis score, the energy score, and the RMS check (continuous form: log distance
  outside the training RMS range; binary form: RMS beyond 2x the range, as ``diagnose``);
* how many self-built recordings are flagged by ``recording_verdict`` and by the RMS rule
  (>= 25 % of windows far, as ``diagnose``), and the classifier's per-recording accuracy there.

A probe to choose the design, not the final benchmark: one seed, a few epochs, one thread.

    python benchmarks/ood_probe.py [--data /work/shared/data/hitsm] [--epochs 15] [--seed 0] [--out PATH]

Writes benchmarks/results/ood_probe.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from faultdiag.data.normalize import Standardizer
from faultdiag.data.readers import read_recording
from faultdiag.data.windows import frame, split_windows
from faultdiag.diagnose.stream import RMS_FAR_FACTOR
from faultdiag.diagnose import RMS_FAR_SHARE
from faultdiag.models.networks import build_model
from faultdiag.ood import FeatureDensity, auroc, energy_score, penultimate_features, recording_verdict
from faultdiag.provenance import code_revision, library_versions, write_json

OUT = Path(__file__).resolve().parent / "results" / "ood_probe.json"
CLASSES = ("Normal", "IR2", "IR5", "IR8", "OR2", "OR5", "OR8")
FS_HZ = 51200
WINDOW = 2048


def read_rig(folder: Path) -> list:
    """Every ``<state>_<rpm>.mat`` of a rig, labelled by the name's prefix."""
    return [read_recording(p, fs_hz=FS_HZ, label=p.name.split("_")[0]) for p in sorted(folder.glob("*.mat"))]


def train(model, X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, batch: int = 64, lr: float = 1e-3):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(X), generator=g), 0.0
        for idx in order.split(batch):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}: train loss {total / len(X):.4f}", flush=True)


def rms(X: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(X, np.float64) ** 2, axis=(1, 2)))


def rms_score(r: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """log-distance outside [lo, hi] (negative inside): higher = further outside the training range."""
    return np.maximum(np.log(lo / r), np.log(r / hi))


def per_recording(scores: np.ndarray, groups: np.ndarray, threshold: float, far: np.ndarray) -> list[dict]:
    out = []
    for g in np.unique(groups):
        m = groups == g
        v = recording_verdict(scores[m], threshold)
        out.append({"group": int(g), "mahalanobis": v, "rms_far_share": float(far[m].mean()),
                    "rms_flag": bool(far[m].mean() >= RMS_FAR_SHARE)})
    return out


def load_windows(data: Path, hop: int) -> dict:
    """Raw and standardised MFS splits and every non-overlapping self-built window, with labels and groups."""
    src, tgt = read_rig(data / "spectraquest_mfs"), read_rig(data / "self_built")
    splits = split_windows(src, CLASSES, WINDOW, hop, (0.7, 0.15, 0.15))
    std = Standardizer(per_channel=True).fit(splits["train"].X)
    framed = [np.asarray(frame(r, WINDOW, WINDOW)) for r in tgt]
    tgt_groups = np.concatenate([np.full(len(w), i) for i, w in enumerate(framed)])
    tgt_raw = np.concatenate(framed)
    return {"src": src, "tgt": tgt, "splits": splits, "tgt_raw": tgt_raw, "tgt_groups": tgt_groups,
            "tgt_y": np.array([CLASSES.index(tgt[g].label) for g in tgt_groups]),
            "x": {k: torch.from_numpy(np.ascontiguousarray(std.transform(s.X))) for k, s in splits.items()},
            "y": {k: torch.from_numpy(s.y) for k, s in splits.items()},
            "tgt_x": torch.from_numpy(np.ascontiguousarray(std.transform(tgt_raw)))}


def density_result(cov: str, d: dict, feats: dict, f_tgt: torch.Tensor, far: dict) -> tuple[dict, dict]:
    """Fit on train features, calibrate on val; summary figures and per-recording verdicts."""
    fd = FeatureDensity(covariance=cov).fit(feats["train"][0], d["y"]["train"]).calibrate(feats["val"][0], 0.95)
    s_test, s_tgt = fd.score(feats["test"][0]), fd.score(f_tgt)
    recs = {"mfs_test": per_recording(s_test, d["splits"]["test"].groups, fd.threshold_, far["test"]),
            "self_built": per_recording(s_tgt, d["tgt_groups"], fd.threshold_, far["tgt"])}
    for rec in recs["mfs_test"]:
        rec["name"] = d["src"][rec["group"]].name
    flagged = {key: {str(share): sum(r["mahalanobis"]["share_over"] > share for r in rs) for share in (0.25, 0.5)}
               for key, rs in recs.items()}
    summary = {
        "threshold": fd.threshold_, "shrinkage_used": np.asarray(fd.shrinkage_).tolist(),
        "mfs_test_exceedance": float(np.mean(s_test > fd.threshold_)),
        "mfs_test_recordings_flagged": flagged["mfs_test"]["0.5"],
        "self_built_auroc": auroc(s_test, s_tgt),
        "self_built_window_share_over": float(np.mean(s_tgt > fd.threshold_)),
        "self_built_recordings_flagged": flagged["self_built"]["0.5"],
        "recordings_flagged_by_share_rule": flagged,  # "> share" rules besides recording_verdict's 0.5
    }
    return summary, recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/hitsm"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hop", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = load_windows(args.data, args.hop)
    model = build_model("drsn-cw", num_classes=len(CLASSES), seed=args.seed)
    train(model, d["x"]["train"], d["y"]["train"], args.epochs, args.seed)
    feats = {k: penultimate_features(model, x, return_logits=True) for k, x in d["x"].items()}
    f_tgt, l_tgt = penultimate_features(model, d["tgt_x"], return_logits=True)
    r_train = rms(d["splits"]["train"].X)
    lo, hi = float(r_train.min()), float(r_train.max())
    r = {"test": rms(d["splits"]["test"].X), "tgt": rms(d["tgt_raw"])}
    far = {k: (v < lo / RMS_FAR_FACTOR) | (v > hi * RMS_FAR_FACTOR) for k, v in r.items()}
    results = {cov: density_result(cov, d, feats, f_tgt, far) for cov in ("tied", "per-class")}

    pred, prob = l_tgt.argmax(1).numpy(), torch.softmax(l_tgt, 1).max(1).values.numpy()
    tgt_recs = results["per-class"][1]["self_built"]
    for recs in [res[1]["self_built"] for res in results.values()]:
        for rec in recs:
            m = d["tgt_groups"] == rec["group"]
            rec.update(name=d["tgt"][rec["group"]].name,
                       predicted=CLASSES[int(np.bincount(pred[m], minlength=len(CLASSES)).argmax())],
                       mean_confidence=float(prob[m].mean()))
    result = {
        "setup": {"model": "drsn-cw paper preset", "epochs": args.epochs, "hop": args.hop, "seed": args.seed,
                  "window": WINDOW, "fs_hz": FS_HZ, "n_windows": {k: len(s) for k, s in d["splits"].items()},
                  "n_self_built_windows": int(len(d["tgt_raw"])), "threads": 1, "quantile": 0.95,
                  "feature_dim": int(f_tgt.shape[1]), "training_rms_range": [lo, hi]},
        "mfs_test_window_accuracy": float((feats["test"][1].argmax(1) == d["y"]["test"]).float().mean()),
        "self_built_window_accuracy": float(np.mean(pred == d["tgt_y"])),
        "self_built_recordings_correct": sum(d["tgt"][r["group"]].label == r["predicted"] for r in tgt_recs),
        "self_built_mean_confidence": float(prob.mean()),
        "mahalanobis": {cov: res[0] for cov, res in results.items()},
        "energy": {"self_built_auroc": auroc(energy_score(feats["test"][1]), energy_score(l_tgt))},
        "rms_check": {"self_built_auroc": auroc(rms_score(r["test"], lo, hi), rms_score(r["tgt"], lo, hi)),
                      "mfs_test_window_share_far": float(far["test"].mean()),
                      "self_built_window_share_far": float(far["tgt"].mean()),
                      "mfs_test_recordings_flagged": sum(x["rms_flag"] for x in results["tied"][1]["mfs_test"]),
                      "self_built_recordings_flagged": sum(x["rms_flag"] for x in tgt_recs)},
        "recordings": {cov: res[1] for cov, res in results.items()},
        "seconds": time.perf_counter() - t0, "code_revision": code_revision(), "versions": library_versions(),
    }
    write_json(args.out, result)
    for key in ("mahalanobis", "energy", "rms_check"):
        print(key, result[key])
    print({k: v for k, v in result.items() if k.endswith(("accuracy", "correct", "confidence"))})
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
