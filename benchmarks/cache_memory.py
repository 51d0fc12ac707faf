"""Memory while training from an HDF5 cache several times larger than what the process holds.

1. ``faultdiag data cache`` writes simulated recordings (all simulator classes and severities x 4 loads, each ``--durations-s`` long)
   to a cache (in its own process, so building does not count).
2. ``faultdiag train --set data.cache=...`` runs in a child process; its resident set size
   (VmRSS) is sampled every 0.1 s.  Reported: the RSS series and the peak RSS for a small and a large cache (bounded memory: the peaks stay close while the cache
   grows), and what an in-memory run would hold for the windows alone (train + val + test).
3. Writes ``benchmarks/results/cache_memory.json`` with machine, versions and code revision.

    python benchmarks/cache_memory.py [--durations-s 30 240] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

OUT = Path(__file__).resolve().parent / "results" / "cache_memory.json"


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def run(duration_s: float, epochs: int, window_len: int, hop: int, work: Path) -> dict:
    data = [f"data.sim_duration_s={duration_s}", "data.loads=[0, 1, 2, 3]", f"data.window_len={window_len}",
            f"data.hop={hop}"]
    cache = work / "sim.h5"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faultdiag", "data", "cache", "--out", str(cache), *_sets(data)], check=True)
    build_s = time.perf_counter() - t0
    train = [*data, f"data.cache={cache}", "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[4, 4]",
             f"train.epochs={epochs}", "train.batch_size=64",
             "train.threads=1", "device=cpu"]
    cmd = [sys.executable, "-m", "faultdiag", "train", "--out", str(work / "run"), "--no-progress", *_sets(train)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples, t0 = [], time.perf_counter()
    while child.poll() is None:
        rss = _rss_mb(child.pid)
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss))
        time.sleep(0.1)
    output = child.stdout.read()
    if child.returncode != 0:
        raise SystemExit(f"training failed:\n{output}")
    from faultdiag.data.cache import open_cache

    info = open_cache(cache)
    C = len(info.channels)
    n_samples = sum(info.lengths) * C
    train_windows = sum(int((0.7 * n - window_len) // hop + 1) for n in info.lengths)
    eval_windows = sum(2 * int((0.15 * n) // window_len) for n in info.lengths)
    return {
        "duration_s_per_recording": duration_s, "recordings": len(info.labels), "epochs": epochs, "window_len": window_len,
        "hop": hop, "cache_file_mb": cache.stat().st_size / 2**20, "decoded_signal_mb": n_samples * 4 / 2**20,
        "channels": C, "in_memory_windows_mb": (train_windows + eval_windows) * C * window_len * 4 / 2**20,
        "build_s": build_s, "train_wall_s": samples[-1][0] if samples else None,
        "peak_rss_mb": max(r for _, r in samples), "rss_samples": samples[:: max(1, len(samples) // 200)],
        "note": "test split is materialised by evaluate_snrs after training (evaluate.py); see peak at the end",
        "train_output_tail": output[-600:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations-s", type=float, nargs="+", default=[30.0, 240.0],
                    help="seconds per simulated recording; one run per value")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--window-len", type=int, default=2048)
    ap.add_argument("--hop", type=int, default=2048)
    args = ap.parse_args()
    results = []
    for duration_s in args.durations_s:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(duration_s, args.epochs, args.window_len, args.hop, Path(tmp)))
        r = results[-1]
        print(f"{r['recordings']} x {duration_s:g} s: cache {r['cache_file_mb']:.0f} MB on disk, {r['decoded_signal_mb']:.0f} MB "
              f"decoded; in memory the windows alone would take {r['in_memory_windows_mb']:.0f} MB; "
              f"peak RSS training from the cache {r['peak_rss_mb']:.0f} MB", flush=True)
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_json(OUT, {"benchmark": "cache_memory", "results": results, "machine": machine_info(),
                     "versions": library_versions(), "revision": code_revision(), "load_avg_1min": loadavg})
    print(f"-> {OUT}")


if __name__ == "__main__":
    main()
