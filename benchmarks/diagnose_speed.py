"""Speed and memory of ``faultdiag.diagnose`` on long recordings: memory flat in recording length.

Writes long single-channel HDF5 recordings (simulated bearing signal tiled with fresh noise) to a
temporary folder, then diagnoses each in a fresh child process that reports its own wall time
(the ``diagnose`` call: checkpoint load, reading, inference, envelope) and peak RSS (``VmHWM``
of ``/proc/self/status``: the child's own high-water mark; ``getrusage``'s ``ru_maxrss`` would
also count the parent's resident memory at the fork, which Linux carries across ``exec``).
The models are drsn-cw ``paper`` and ``wide`` presets
(window 2048) with random weights unless ``--model`` is given: speed does not depend on the
weights. ``--compare-eager`` also runs each case, in the same loop, with the plain eval-mode
model instead of the folded inference copy (A/B under the same machine load). The 1-minute
load average is recorded before each run: the machine is shared.

    python benchmarks/diagnose_speed.py                # 10 min + 60 min at 12 kHz, 60 min at 48 kHz
    python benchmarks/diagnose_speed.py --quick        # 1 min + 5 min at 12 kHz, 5 min at 48 kHz

Prints a table and writes benchmarks/results/diagnose_speed.json (with machine info, library
versions and the code revision).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "diagnose_speed.json"
FULL = ((600, 12000), (3600, 12000), (3600, 48000))
QUICK = ((60, 12000), (300, 12000), (300, 48000))

_CHILD = """
import json, resource, sys, time, torch
def peak_mb():
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: ru_maxrss (may include the parent's memory)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.set_num_threads(int(sys.argv[3]))
import faultdiag.diagnose.model as dm
if sys.argv[6] == "eager":
    dm._fast = lambda net: net
from faultdiag.diagnose import diagnose, load_predictor
load_predictor(sys.argv[1])  # warm-up: imports, first checkpoint load
rss0 = peak_mb()
t0 = time.perf_counter()
jit = {"auto": None, "on": True, "off": False}[sys.argv[5]]
df = diagnose(sys.argv[1], [sys.argv[2]], batch_size=int(sys.argv[4]), rpm=1797, bearing="6205", jit=jit)
wall = time.perf_counter() - t0
row = df.iloc[0]
print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb(), "rss_before_mb": rss0, "n_windows": int(row["n_windows"]), "error": row["error"]}))
"""


def make_model(path: Path, preset: str = "paper") -> Path:
    """A random-weight drsn-cw checkpoint of ``preset`` (10 classes, 12 kHz, window 2048)."""
    import torch

    from faultdiag.checkpoint import save_checkpoint
    from faultdiag.data.inputs import InputSpec
    from faultdiag.data.normalize import Standardizer
    from faultdiag.models.networks import build_model
    from faultdiag.training.prepare import signal_stats

    kwargs = dict(dims=1, in_channels=1, num_classes=10, preset=preset, seed=0)
    X = np.random.default_rng(0).standard_normal((64, 1, 2048)).astype(np.float32) * 0.1
    return save_checkpoint(path, model=build_model("drsn-cw", **kwargs).eval(), model_name="drsn-cw", model_kwargs=kwargs,
                           class_names=[f"c{i}" for i in range(10)],
                           inputs=InputSpec(fs_hz=12000.0, window_len=2048, hop=2048, channels=("DE",),
                                            standardizer=Standardizer().fit(X)),
                           signal_stats=signal_stats(X), config={}, metrics={})


def write_long(path: Path, duration_s: float, fs_hz: int, seed: int = 0) -> Path:
    """HDF5 ``signal (1, T)`` float32 with ``fs_hz``: a 10 s simulated outer-race recording tiled with fresh noise."""
    import h5py

    from faultdiag.data.simulate import simulate_recording

    base = simulate_recording("outer_race", duration_s=10, fs_hz=fs_hz, seed=seed).signal[0]
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs_hz)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("signal", shape=(1, n), dtype="float32", chunks=(1, 1 << 16))
        d.attrs["fs_hz"] = float(fs_hz)
        d.attrs["channels"] = np.array(["DE"], dtype=h5py.string_dtype())
        for a in range(0, n, base.size):
            b = min(n, a + base.size)
            d[0, a:b] = base[: b - a] + 0.01 * rng.standard_normal(b - a, dtype=np.float32)
    return path


def _run_case(model, rec, args, mode, preset, duration_s, fs_hz, write_s) -> dict:
    """One diagnose run in a fresh child process; its timing row (printed too)."""
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(rec), str(args.threads), str(args.batch_size),
                          args.jit, mode], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(preset=preset, model_path=mode, duration_s=duration_s, fs_hz=fs_hz, write_s=round(write_s, 1),
               load_avg_1min_before=load, signal_s_per_s=duration_s / res["wall_s"],
               windows_per_s=res["n_windows"] / res["wall_s"])
    print(f"{preset:>6} {mode:>5} {duration_s / 60:4.0f} min @ {fs_hz / 1000:g} kHz: {res['signal_s_per_s']:7.1f} s of "
          f"signal/s, wall {res['wall_s']:6.1f} s, peak RSS {res['peak_rss_mb']:5.0f} MB (after model load "
          f"{res['rss_before_mb']:.0f} MB), {res['n_windows']} windows, load {load:.1f}", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short recordings (1 and 5 min)")
    p.add_argument("--model", help="checkpoint to use (default: random-weight paper drsn-cw)")
    p.add_argument("--presets", nargs="+", default=["paper", "wide"], choices=("paper", "wide"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--jit", choices=("auto", "on", "off"), default="auto", help="TorchScript tracing (timed)")
    p.add_argument("--compare-eager", action="store_true", help="also time the unfolded eval-mode model")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

    cases = QUICK if args.quick else FULL
    rows = []
    with tempfile.TemporaryDirectory(prefix="diagnose_speed_") as tmp:
        models = ({"given": Path(args.model)} if args.model else
                  {p: make_model(Path(tmp) / f"{p}.pt", p) for p in args.presets})
        modes = ("eager", "fold") if args.compare_eager else ("fold",)
        for duration_s, fs_hz in cases:
            t0 = time.perf_counter()
            rec = write_long(Path(tmp) / f"rec_{duration_s}s_{fs_hz}.h5", duration_s, fs_hz)
            write_s = time.perf_counter() - t0
            for (preset, model), mode in itertools.product(models.items(), modes):
                rows.append(_run_case(model, rec, args, mode, preset, duration_s, fs_hz, write_s))
            rec.unlink()
    write_json(args.out, {"benchmark": "diagnose_speed", "threads": args.threads, "batch_size": args.batch_size, "jit": args.jit,
                          "model": args.model or "random-weight drsn-cw presets (see rows), window 2048, hop 2048",
                          "results": rows, "machine": machine_info(), "versions": library_versions(),
                          "revision": code_revision()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
