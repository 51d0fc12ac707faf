"""Forward-pass time of each model, `paper` preset, on a batch of 256 windows of 2048 samples.

Eval mode, no_grad, warm-up passes, then the median (and min) of timed repeats; the models take
turns within each repeat.  Writes ``benchmarks/results/forward_speed.json`` with the machine,
library versions, code revision and the 1-minute load average (the development machine is
shared; a high load inflates the times).

    python benchmarks/forward_speed.py [--threads 2] [--repeats 20] [--preset paper]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from faultdiag.models.networks import SHRINKAGE_NAMES, build_model, model_summary
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

OUT = Path(__file__).resolve().parent / "results" / "forward_speed.json"


def time_forwards(models: dict[str, torch.nn.Module], x: torch.Tensor, warmup: int,
                  repeats: int) -> dict[str, list[float]]:
    """Seconds per forward pass of ``x`` (eval, no_grad) for each model, one entry per repeat.

    The models take turns within each repeat, so a burst of load from other processes on a
    shared machine hits them all alike.
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model.eval()
            for _ in range(warmup):
                model(x)
        for _ in range(repeats):
            for name, model in models.items():
                t0 = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--window-len", type=int, default=2048)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 1, args.window_len, generator=torch.Generator().manual_seed(0))
    load_before = os.getloadavg()[0]
    models = {name: build_model(name, preset=args.preset, seed=0) for name in SHRINKAGE_NAMES}
    all_times = time_forwards(models, x, args.warmup, args.repeats)
    results = []
    for name, times in all_times.items():
        row = {
            "model": name,
            "median_s": statistics.median(times),
            "min_s": min(times),
            "windows_per_s_at_median": args.batch / statistics.median(times),
            **model_summary(models[name], (1, args.window_len)),
        }
        results.append(row)
        print(f"{name:<8} median {row['median_s'] * 1e3:7.1f} ms  min {row['min_s'] * 1e3:7.1f} ms  "
              f"({row['windows_per_s_at_median']:,.0f} windows/s at the median)")
    load_after = os.getloadavg()[0]
    note = (f"1-minute load average {load_before:.1f} before, {load_after:.1f} after, on "
            f"{os.cpu_count()} CPUs; ")
    note += ("measured on a shared machine under load: times are inflated, compare models with each other, "
             "not with other runs." if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1)
             else "machine lightly loaded.")
    write_json(args.out, {
        "benchmark": "forward_speed",
        "preset": args.preset,
        "input_shape": [args.batch, 1, args.window_len],
        "mode": "eval, torch.no_grad, float32, CPU",
        "warmup": args.warmup,
        "repeats": args.repeats,
        "results": results,
        "note": note,
        "machine": machine_info(),
        "versions": library_versions(),
        "revision": code_revision(),
    })
    print(f"{note}\nwrote {args.out}")


if __name__ == "__main__":
    main()
