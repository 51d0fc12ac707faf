"""Does the feature-space warning catch an unfamiliar machine? AUROC and flagged recordings.

    python -m benchmarks.shift_warning --case "NAME=CELL_DIR:GLOB" [--case ...] [--out FILE]

Each case is a trained model (``CELL_DIR`` holds ``checkpoint.pt`` and ``config.toml``) and the
recordings it was not trained on (``GLOB``, e.g. ``../shared/data/hitsm/self_built/*.mat`` for a model
of the other HIT-SM rig, or ``../shared/data/cwru/*_300[1-8].mat`` for the CWRU 0.028 in faults a
model of 0.007-0.021 in never saw). For each case it reports:

* the exceedance of the checkpoint's threshold on the in-distribution test windows (the test
  split of the model's own data; calibrated on validation windows to about 5 %);
* the AUROC of the window score, in-distribution test windows vs the unfamiliar recordings'
  windows, next to the AUROC of the RMS (distance of log RMS from the training median), the
  level check diagnose had before;
* how many unfamiliar recordings ``faultdiag.diagnose`` flags as unlike the training data, and
  how many of the model's own test recordings it flags (false alarms, by recording).

Writes ``--out`` (default ``benchmarks/results/shift_warning.json``).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch

from faultdiag.config import load_config
from faultdiag.data.readers import read_recording
from faultdiag.data.readers.source import MissingRateError
from faultdiag.data.windows import frame
from faultdiag.diagnose import diagnose
from faultdiag.evaluate import load_model, prepared_for
from faultdiag.ood import FeatureDensity, auroc, penultimate_features, recording_verdict
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent


def _windows(path: str, ckpt) -> np.ndarray:
    """Non-overlapping windows ``(N, C, L)`` of a recording at the model's rate and channel(s)."""
    try:
        rec = read_recording(path)
    except MissingRateError:  # as diagnose does: a file that states no rate is read at the model's
        rec = read_recording(path, fs_hz=ckpt.inputs.fs_hz)
    if len(rec.channels) > len(ckpt.inputs.channels):
        rec = rec.select([c for c in ckpt.inputs.channels if c in rec.channels] or [rec.channels[0]])
    rec = rec if rec.fs_hz == ckpt.inputs.fs_hz else rec.resample(ckpt.inputs.fs_hz)
    return np.ascontiguousarray(frame(rec.signal, ckpt.inputs.window_len, ckpt.inputs.window_len))


def _rms_distance(X: np.ndarray, stats: dict) -> np.ndarray:
    """|log RMS - log training median RMS| per window: the level check's view of unfamiliarity."""
    rms = np.sqrt(np.mean(X.astype(np.float64) ** 2, axis=(1, 2)))
    return np.abs(np.log(rms + 1e-30) - np.log(stats["rms_median"]))


def run_case(name: str, cell: Path, pattern: str) -> dict:
    model, ckpt = load_model(cell / "checkpoint.pt")
    density = FeatureDensity.from_dict(ckpt.ood)
    prepared = prepared_for(ckpt, load_config(cell / "config.toml"))
    X_in = np.asarray(prepared.test.X)
    s_in = density.score(penultimate_features(model, ckpt.inputs.transform(X_in)).numpy())
    files = sorted(glob.glob(pattern))
    per_file = [_windows(f, ckpt) for f in files]
    X_out = np.concatenate(per_file)
    s_out = density.score(penultimate_features(model, ckpt.inputs.transform(X_out)).numpy())
    in_rec = [recording_verdict(s_in[np.asarray(prepared.test.groups) == g], density.threshold_)["unlike_training"]
              for g in np.unique(prepared.test.groups)]
    rows = diagnose(cell / "checkpoint.pt", files, rpm=None)
    flagged = int((rows["reliable"] == False).sum())  # noqa: E712 - a column of True/False/None
    return {"case": name, "cell": str(cell), "files": pattern, "n_files": len(files),
            "threshold": density.threshold_, "in_exceedance": float((s_in > density.threshold_).mean()),
            "n_in_windows": int(len(s_in)), "n_out_windows": int(len(s_out)),
            "auroc_features": auroc(s_in, s_out),
            "auroc_rms": auroc(_rms_distance(X_in, ckpt.signal_stats), _rms_distance(X_out, ckpt.signal_stats)),
            "out_recordings_flagged": flagged, "in_recordings_flagged": int(sum(in_rec)),
            "n_in_recordings": len(in_rec), "out_predicted": rows["predicted"].value_counts().to_dict()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", required=True, metavar="NAME=CELL_DIR:GLOB")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shift_warning.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cases = []
    for item in args.case:
        name, _, rest = item.partition("=")
        cell, _, pattern = rest.partition(":")
        r = run_case(name, Path(cell), pattern)
        cases.append(r)
        print(f"{name}: in-distribution exceedance {100 * r['in_exceedance']:.1f} % (nominal 5 %), AUROC features "
              f"{r['auroc_features']:.3f} vs RMS {r['auroc_rms']:.3f}; flagged {r['out_recordings_flagged']}/"
              f"{r['n_files']} unfamiliar recordings, {r['in_recordings_flagged']}/{r['n_in_recordings']} own test "
              f"recordings")
    out = {"cases": cases, "code_revision": code_revision(), "versions": library_versions(), "machine": machine_info()}
    write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
