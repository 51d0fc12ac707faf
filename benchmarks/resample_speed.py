"""Resampling speed: faultdiag.data.resample against scipy's resample_poly, on one thread, in alternation.

    python -m benchmarks.resample_speed [--seconds 60] [--rounds 5] [--threads 1]

For each rate (48,000, 51,200, 48,828, 44,100 and 25,600 Hz to 12 kHz, 12 kHz to 48 kHz), a
``--seconds`` long float32 white-noise signal is resampled by

* ``scipy64``: ``scipy.signal.resample_poly`` on the signal as float64 (the reference);
* ``scipy32``: the same on float32 (scipy then filters in float32);
* ``faultdiag``: :func:`faultdiag.data.resample.resample` (whole signal);
* ``stream``: :class:`~faultdiag.data.resample.Resampler` fed blocks of 2^18 samples, as ``diagnose`` reads.

The variants take turns within each round; the median over rounds is reported as input samples
per second and as the ratio to ``scipy32`` round by round. Writes
``benchmarks/results/resample_speed.json`` (machine with CPU model and load averages, versions, revision).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

from faultdiag.data.resample import Resampler, resample, resample_plan
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

OUT = Path(__file__).resolve().parent / "results" / "resample_speed.json"
RATES = ((48000, 12000), (51200, 12000), (48828, 12000), (44100, 12000), (25600, 12000), (12000, 48000))
BLOCK = 1 << 18


def variants(x: np.ndarray, from_hz: int, to_hz: int) -> dict:
    plan = resample_plan(from_hz, to_hz)
    x64 = x.astype(np.float64)

    def stream() -> None:
        r = Resampler(plan, x.shape[0])
        for a in range(0, x.shape[1], BLOCK):
            r.feed(x[:, a:a + BLOCK])
        r.flush()

    return {"scipy64": lambda: resample_poly(x64, plan.up, plan.down, axis=1),
            "scipy32": lambda: resample_poly(x, plan.up, plan.down, axis=1),
            "faultdiag": lambda: resample(x, from_hz, to_hz), "stream": stream}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    machine_before, rows = machine_info(), []
    for from_hz, to_hz in RATES:
        x = np.random.default_rng(0).standard_normal((1, int(args.seconds * from_hz))).astype(np.float32)
        fns = variants(x, from_hz, to_hz)
        for fn in fns.values():  # warm-up: plans, FFT/BLAS set-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        plan = resample_plan(from_hz, to_hz)
        for name, ts in times.items():
            ratio = [b / t for t, b in zip(ts, times["scipy32"])]
            rows.append({"from_hz": from_hz, "to_hz": to_hz, "up": plan.up, "down": plan.down, "variant": name,
                         "seconds": ts, "samples_per_s_median": x.shape[1] / statistics.median(ts),
                         "speedup_vs_scipy32": ratio, "speedup_vs_scipy32_median": statistics.median(ratio)})
            print(f"{from_hz:>6} -> {to_hz:>5} Hz ({plan.up}/{plan.down}) {name:>9}: "
                  f"{rows[-1]['samples_per_s_median'] / 1e6:7.1f} M samples/s, x{rows[-1]['speedup_vs_scipy32_median']:.2f} "
                  "vs scipy32", flush=True)
    result = {"benchmark": "resample_speed", "seconds": args.seconds, "rounds": args.rounds, "threads": args.threads,
              "block": BLOCK, "results": rows, "machine_before": machine_before, "machine": machine_info(),
              "versions": library_versions(), "revision": code_revision()}
    write_json(args.out, result)
    print(f"load average {result['machine']['load_avg_1_5_15']}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
