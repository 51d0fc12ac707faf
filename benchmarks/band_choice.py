"""Which band each method of ``choose_band`` picks on the simulator, CWRU and both HIT-SM rigs.

    python -m benchmarks.band_choice [--data-dir ../shared/data] [--out benchmarks/results/band_choice.json]
                                     [--no-reference]

For every data set the band is chosen from the clean *training* windows only, by each method
(``kurtogram``, ``fisher``, ``fisher_energy``), judged clean (``snr_db=None``) and under 0 dB of
white noise (the default). Written next to ``--out``: the JSON and one PNG per data set and
method (``band_choice_<data>_<method>.png``, default ``snr_db``).

What each choice is checked against (``reference`` in the JSON):

* simulator: its structural modes (``meta["resonance_hz"]`` of every recording);
* CWRU (the WDCNN protocol of configs/cwru_wdcnn.toml, via ``faultdiag.prepare.prepare``):
  the drive-end resonance region 2.5-4 kHz of the literature (kurtogram analyses of the CWRU data,
  Smith & Randall 2015);
* HIT-SM, each rig: computed here, independently of the choice: for every candidate band, how
  many of the 18 fault recordings (whole 5.12 s) envelope analysis diagnoses correctly in that
  band (BPFI for IR, BPFO for OR, 6205 kinematics, :func:`faultdiag.envelope.fault_frequency_report`)
  and the median line score; and the mean power share per band of fault vs normal recordings.

Training-free proxy of what a band buys under noise (``noise_proxy``; evaluation only, on the
*test* windows, at most 128 per class, white noise at -4 dB per window, seed 0): the in-band SNR
``10 log10(|bandpass(clean)|^2 / |bandpass(noise)|^2)`` per window (median over fault windows and
over normal windows; broadband is -4 dB by construction) and the Fisher ratio between classes of
the noisy windows' envelope kurtosis ``log(1 + SK)`` in the band (broadband: 0.001-0.49 fs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from faultdiag.config import load_config
from faultdiag.data.noise import add_noise
from faultdiag.data.hitsm import HITSM_FS_HZ, HITSM_STATES, find_hitsm, read_hitsm
from faultdiag.data.simulate import SIM_CLASSES, simulated_dataset
from faultdiag.data.windows import split_windows
from faultdiag.envelope import fault_frequency_report
from faultdiag.frontend import METHODS, candidate_bands, choose_band
from faultdiag.frontend.band_select import band_statistics, class_subset
from faultdiag.frontend.plot import mean_power_spectrum, plot_band_choice
from faultdiag.training import prepare
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent

CWRU_LITERATURE_HZ = (2500.0, 4000.0)
PROXY_SNR_DB = -4.0


def load_sets(data_dir: Path) -> dict[str, dict]:
    """``{name: {"train", "test", "fs_hz", "classes", "normal", "recordings"}}`` of every data set found."""
    sets = {}
    recs = simulated_dataset(seed=0, duration_s=4.0)
    sp = split_windows(recs, SIM_CLASSES, 2048, 1024)
    sets["simulator"] = dict(train=sp["train"], test=sp["test"], fs_hz=12000.0, classes=SIM_CLASSES, normal=0,
                             recordings=recs)
    if any((data_dir / "cwru").glob("*.mat")):
        cfg = load_config(ROOT / "configs" / "cwru_wdcnn.toml", [f"data.data_dir={str(data_dir / 'cwru')!r}"])
        prep = prepare(cfg)
        sets["cwru"] = dict(train=prep.train, test=prep.test, fs_hz=prep.inputs.fs_hz, classes=prep.class_names,
                            normal=prep.class_names.index("normal"), recordings=None)
    for rig in ("spectraquest_mfs", "self_built"):
        if not any((data_dir / "hitsm" / rig).glob("*.mat")):
            continue
        recs = [read_hitsm(f) for f in find_hitsm(data_dir / "hitsm", rigs=(rig,))]
        sp = split_windows(recs, HITSM_STATES, 2048, 1024)
        sets[f"hitsm_{rig}"] = dict(train=sp["train"], test=sp["test"], fs_hz=HITSM_FS_HZ, classes=HITSM_STATES,
                                    normal=0, recordings=recs)
    return sets


def hitsm_reference(recs: list, fs_hz: float) -> list[dict]:
    """Per candidate band: fault recordings diagnosed correctly by envelope analysis, median line score,
    and the fault / normal ratio of the mean share of power in the band (dB)."""
    faults = [r for r in recs if r.label != "Normal"]
    share = {}
    for r in recs:
        win = r.signal[:, : (r.n_samples // 4096) * 4096].reshape(1, -1, 4096).transpose(1, 0, 2)  # (N, 1, 4096)
        freqs, power = mean_power_spectrum(win, fs_hz)
        share[id(r)] = power / power.sum()
    rows = []
    for level, lo, hi in candidate_bands(fs_hz):
        scores, found = [], 0
        for rec in faults:
            shaft_hz = rec.meta["rpm"] / 60
            rep = fault_frequency_report(rec.signal[0], fs_hz, shaft_hz, band_hz=(lo, hi))
            family = "bpfi" if rec.label.startswith("IR") else "bpfo"
            scores.append(rep["scores"][family])
            found += rep["dominant"] == family
        m = (freqs >= lo) & (freqs < hi)
        f_share = np.mean([share[id(r)][m].sum() for r in faults])
        n_share = np.mean([share[id(r)][m].sum() for r in recs if r.label == "Normal"])
        rows.append({"low_hz": lo, "high_hz": hi, "level": level, "faults_diagnosed": int(found),
                     "n_faults": len(faults), "median_line_score": float(np.median(scores)),
                     "fault_vs_normal_share_db": float(10 * np.log10(f_share / n_share))})
    return rows


def _fisher(f: np.ndarray, y: np.ndarray) -> float:
    means = np.array([f[y == k].mean() for k in np.unique(y)])
    return float(means.var() / np.mean([f[y == k].var() for k in np.unique(y)]))


def noise_proxy(data: dict, bands: dict[str, tuple[float, float]]) -> list[dict]:
    """In-band SNR and envelope-kurtosis separability of noisy test windows per band (module docstring)."""
    idx = class_subset(data["test"].y, 128)
    X = torch.as_tensor(data["test"].X[idx], dtype=torch.float32)
    y = data["test"].y[idx]
    noisy = add_noise(X, PROXY_SNR_DB, generator=torch.Generator().manual_seed(0))
    fs = data["fs_hz"]
    named = {"broadband": (0.001 * fs, 0.49 * fs), **bands}
    clean_p = band_statistics(X, fs, list(named.values()))["power"]
    noise_p = band_statistics(noisy - X, fs, list(named.values()))["power"]
    noisy_sk = band_statistics(noisy, fs, list(named.values()))["sk"]
    fault = y != data["normal"]
    rows = []
    for j, (name, (lo, hi)) in enumerate(named.items()):
        snr = 10 * np.log10(clean_p[:, j] / noise_p[:, j])
        rows.append({"band": name, "low_hz": lo, "high_hz": hi,
                     "in_band_snr_db_fault_median": float(np.median(snr[fault])),
                     "in_band_snr_db_normal_median": float(np.median(snr[~fault])),
                     "fisher_log1p_sk_noisy": _fisher(np.log1p(np.maximum(noisy_sk[:, j], 0)), y)})
    return rows


def run_set(name: str, data: dict, out_dir: Path, reference: bool) -> dict:
    train, fs = data["train"], data["fs_hz"]
    choices = []
    for method in METHODS:
        for snr_db in (None, 0.0):
            c = choose_band(train.X, train.y, fs, method, normal_label=data["normal"], snr_db=snr_db)
            top = c.table().head(5)
            choices.append({"method": method, "snr_db": snr_db, "low_hz": c.low_hz, "high_hz": c.high_hz,
                            "top5": top.to_dict("records")})
            print(f"{name:24s} {method:13s} snr_db={str(snr_db):5s} -> {c.low_hz:7.0f} - {c.high_hz:7.0f} Hz")
            if snr_db == 0.0:
                shown = class_subset(train.y, 256)
                plot_band_choice(c, train.X[shown], fs, out_dir / f"band_choice_{name}_{method}.png",
                                 y=train.y[shown], class_names=data["classes"],
                                 title=f"{name}: {method} at 0 dB -> {c.low_hz:.0f}-{c.high_hz:.0f} Hz")
    result = {"fs_hz": fs, "classes": list(data["classes"]), "n_train_windows": len(train),
              "n_test_windows": len(data["test"]), "choices": choices}
    if name == "simulator":
        modes = np.array([r.meta["resonance_hz"] for r in data["recordings"]])
        result["reference"] = {"resonance_hz_min": modes.min(0).tolist(), "resonance_hz_max": modes.max(0).tolist()}
    elif name == "cwru":
        result["reference"] = {"literature_band_hz": list(CWRU_LITERATURE_HZ)}
    elif reference:
        result["reference"] = {"per_band": hitsm_reference(data["recordings"], fs)}
    bands = {f"{c['method']}@0dB": (c["low_hz"], c["high_hz"]) for c in choices if c["snr_db"] == 0.0}
    bands.update({f"{c['method']}@clean": (c["low_hz"], c["high_hz"]) for c in choices if c["snr_db"] is None})
    if name == "cwru":
        bands["literature 2.5-4 kHz"] = CWRU_LITERATURE_HZ
    result["noise_proxy"] = noise_proxy(data, bands)
    for row in result["noise_proxy"]:
        print(f"    {row['band']:22s} {row['low_hz']:7.0f}-{row['high_hz']:7.0f} Hz  in-band SNR at -4 dB: fault "
              f"{row['in_band_snr_db_fault_median']:6.1f} dB, normal {row['in_band_snr_db_normal_median']:6.1f} dB; "
              f"Fisher log(1+SK) noisy {row['fisher_log1p_sk_noisy']:.2f}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "band_choice.json")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow HIT-SM reference table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {"code_revision": code_revision(), "versions": library_versions(), "machine": machine_info(),
               "data_dir": str(args.data_dir), "reference": not args.no_reference, "proxy_snr_db": PROXY_SNR_DB,
               "datasets": {}}
    for name, data in load_sets(args.data_dir).items():
        results["datasets"][name] = run_set(name, data, args.out.parent, not args.no_reference)
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
