"""Speed and memory of ``faultdiag.diagnose``: long recordings at 12 and 48 kHz, and many files, per thread setting.

Writes long single-channel HDF5 recordings (a simulated bearing signal tiled with fresh noise)
to a temporary folder, then diagnoses each in a fresh child process that reports its own wall
time (the ``diagnose`` call: checkpoint load, reading, resampling, inference, envelope check)
and peak RSS (``VmHWM`` of ``/proc/self/status``: the child's own high-water mark, imports
included). The models are drsn-cw ``paper``, ``wide`` and ``recipe`` (the shipped DRSN-CW recipe:
``wide`` with kernel dropout, stem shrinkage and the band-pass front end) with random weights
unless ``--model`` is given: speed does not depend on the weights.

Thread settings (``--configs``), timed in turn within each round so that load from other
processes hits them alike: ``tN`` = ``jobs=1`` with N PyTorch threads, ``jN`` = ``jobs=N``
(files side by side, a file's batches on N threads, one PyTorch thread each); a ``-bf16`` suffix
(``t2-bf16``) runs the network in bfloat16 (``diagnose --precision bfloat16``). The ``files``
case diagnoses ``--n-files`` short recordings in one call (the envelope check then weighs more).
Each child also times the model alone on the same number of windows with the same threads
(``model_only_s``), so the share of time spent outside the network is known. ``--baseline DIR``
also runs the ``tN`` settings with the ``faultdiag`` found in ``DIR`` (another revision), in the
same rounds. The 1-, 5- and 15-minute load averages are recorded before every run: the machine
may be shared.

    python -m benchmarks.diagnose_speed              # 10 + 60 min at 12 kHz, 60 min at 48 kHz, 8 files x 60 s
    python -m benchmarks.diagnose_speed --quick      # 1 + 5 min at 12 kHz, 5 min at 48 kHz, 4 files x 10 s
    python -m benchmarks.diagnose_speed --only @48k --configs t1 j2 --baseline DIR   # one case, vs another revision

Prints one line per run and a summary (median over rounds, and each setting's ratio to the
first one, run by run), and writes benchmarks/results/diagnose_speed.json (machine with CPU
model and load averages, library versions, code revision).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "diagnose_speed.json"
FULL = dict(cases=((600, 12000), (3600, 12000), (3600, 48000)), n_files=8, file_s=60, rounds=3)
QUICK = dict(cases=((60, 12000), (300, 12000), (300, 48000)), n_files=4, file_s=10, rounds=1)

_CHILD = """
import contextlib, inspect, json, resource, sys, time, torch
def peak_mb():
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: ru_maxrss (may include the parent's memory)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model, paths, threads, jobs, batch = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
precision = sys.argv[6]
torch.set_num_threads(threads)
from faultdiag.diagnose import diagnose, load_predictor
try:
    from faultdiag.diagnose.parallel import ordered_map, torch_threads
except ImportError:  # an older faultdiag (--baseline): one file at a time
    ordered_map, torch_threads = (lambda fn, items, threads: map(fn, items)), (lambda n: contextlib.nullcontext())
params = inspect.signature(diagnose).parameters
kw = {"jobs": jobs} if "jobs" in params else {}
pkw = {"precision": precision} if precision != "float32" else {}  # an older faultdiag has float32 only
kw.update(pkw)
if "rpm_range" in params:  # bearings by name (faultdiag has no default bearing for a model of unknown data)
    kw["bearing"] = "6205"
import faultdiag.envelope  # warm-up: imports (the envelope check's too), first checkpoint load
pred = load_predictor(model, **pkw)
rss0 = peak_mb()
t0 = time.perf_counter()
df = diagnose(model, paths, batch_size=batch, rpm=1797, **kw)
wall = time.perf_counter() - t0
n = int(df["n_windows"].sum())
X = torch.randn(batch, 1, pred.ckpt.inputs.window_len, generator=torch.Generator().manual_seed(0)).numpy()
n_batches = max(1, min(n // batch, 40))
with torch_threads(1 if jobs > 1 else None):
    list(ordered_map(pred.predict, [X] * 2, jobs))
    t1 = time.perf_counter()
    list(ordered_map(pred.predict, [X] * n_batches, jobs))
    model_s = (time.perf_counter() - t1) * n / (n_batches * batch)
print(json.dumps({"wall_s": wall, "model_only_s": model_s, "peak_rss_mb": peak_mb(), "rss_before_mb": rss0,
                  "n_windows": n, "n_errors": int(df["error"].notna().sum())}))
"""


PRESETS = ("paper", "wide", "recipe")
"""``paper``, ``wide``: drsn-cw presets, no front end. ``recipe``: the DRSN-CW of configs/cwru_wdcnn.toml (its
``[model]`` section as it stands: ``wide``, kernel dropout, a shrinkage unit after the stem, max-pooling
between stages) with the 2-4 kHz band-pass front end at 12 kHz: what ``faultdiag train`` on it gives a user."""


def make_model(path: Path, preset: str = "paper") -> Path:
    """A random-weight drsn-cw checkpoint of ``preset`` (see :data:`PRESETS`; 10 classes, 12 kHz, window 2048)."""
    from faultdiag.checkpoint import save_checkpoint
    from faultdiag.data.inputs import InputSpec
    from faultdiag.data.normalize import Standardizer
    from faultdiag.frontend.spec import FrontEnd
    from faultdiag.models.networks import build_model
    from faultdiag.training.prepare import signal_stats

    kwargs = dict(dims=1, in_channels=1, num_classes=10, preset=preset, seed=0)
    front_end = FrontEnd()
    if preset == "recipe":  # the [model] section of the shipped config, whatever it holds
        from faultdiag.config import load_config

        kwargs.update(load_config(Path(__file__).resolve().parents[1] / "configs" / "cwru_wdcnn.toml", []).model.model_kwargs())
        front_end = FrontEnd(kind="bandpass", low_hz=2000.0, high_hz=4000.0, order=4, fs_hz=12000.0)
    X = np.random.default_rng(0).standard_normal((64, 1, 2048)).astype(np.float32) * 0.1
    return save_checkpoint(path, model=build_model("drsn-cw", **kwargs).eval(), model_name="drsn-cw", model_kwargs=kwargs,
                           class_names=[f"c{i}" for i in range(10)],
                           inputs=InputSpec(fs_hz=12000.0, window_len=2048, hop=2048, channels=("DE",),
                                            standardizer=Standardizer().fit(X), front_end=front_end),
                           signal_stats=signal_stats(X), config={}, metrics={})


def write_long(path: Path, duration_s: float, fs_hz: int, seed: int = 0) -> Path:
    """HDF5 ``signal (1, T)`` float32 with ``fs_hz``: a 10 s simulated outer-race recording tiled with fresh noise."""
    import h5py

    from faultdiag.data.simulate import simulate_recording

    base = simulate_recording("outer_race", duration_s=10, fs_hz=fs_hz, seed=seed).signal[0]
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs_hz)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("signal", shape=(1, n), dtype="float32", chunks=(1, min(n, 1 << 16)))
        d.attrs["fs_hz"] = float(fs_hz)
        d.attrs["channels"] = np.array(["DE"], dtype=h5py.string_dtype())
        for a in range(0, n, base.size):
            b = min(n, a + base.size)
            d[0, a:b] = base[: b - a] + 0.01 * rng.standard_normal(b - a, dtype=np.float32)
    return path


def parse_config(name: str) -> tuple[int, int]:
    """``tN`` -> (threads N, jobs 1); ``jN`` -> (threads 1, jobs N); ``base-tN``: the same with the baseline code;
    a ``-bf16`` suffix: the same in bfloat16 (:func:`precision_of`)."""
    name = name.removeprefix("base-").removesuffix("-bf16")
    if len(name) < 2 or name[0] not in "tj" or not name[1:].isdigit() or int(name[1:]) < 1:
        raise argparse.ArgumentTypeError(f"a thread setting is tN or jN with N >= 1; got {name!r}")
    n = int(name[1:])
    return (n, 1) if name[0] == "t" else (1, n)


def precision_of(config: str) -> str:
    return "bfloat16" if config.endswith("-bf16") else "float32"


def run_case(model: Path, paths: list[Path], config: str, batch_size: int, code: Path | None = None) -> dict:
    """One ``diagnose`` call in a fresh child process; its figures. ``code``: the folder whose ``faultdiag``
    is imported (default: this checkout)."""
    threads, jobs = parse_config(config)
    load = list(os.getloadavg())
    root = str(code or Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model), ",".join(map(str, paths)), str(threads),
                          str(jobs), str(batch_size), precision_of(config)], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(config=config, threads=threads, jobs=jobs, precision=precision_of(config), load_avg_before=load)
    return res


def _line(row: dict) -> str:
    return (f"{row['preset']:>6} {row['case']:>16} {row['config']:>7}: {row['signal_s_per_s']:7.0f} s of signal/s "
            f"(model alone {row['model_only_signal_s_per_s']:6.0f}), wall {row['wall_s']:6.2f} s, peak RSS "
            f"{row['peak_rss_mb']:4.0f} MB, load {row['load_avg_before'][0]:.1f}")


def summarize(rows: list[dict], configs: list[str]) -> list[dict]:
    """Median over rounds per (preset, case, config), the run-by-run ratio to ``configs[0]`` and, for a
    setting also run with the baseline code (``base-<setting>``), the run-by-run ratio to that."""
    out = []
    keys = sorted({(r["preset"], r["case"]) for r in rows}, key=lambda k: [r["case"] for r in rows].index(k[1]))
    for preset, case in keys:
        runs = {c: [r for r in rows if (r["preset"], r["case"], r["config"]) == (preset, case, c)] for c in configs}
        for c in configs:
            sps = [r["signal_s_per_s"] for r in runs[c]]
            row = {"preset": preset, "case": case, "config": c, "signal_s_per_s_median": statistics.median(sps),
                   "signal_s_per_s": sps, "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs[c]),
                   "outside_model_share_median": statistics.median(1 - r["model_only_s"] / r["wall_s"] for r in runs[c])}
            text = ""
            for ref in (configs[0], f"base-{c}"):
                if ref in runs and ref != c:
                    ratios = [r["signal_s_per_s"] / b["signal_s_per_s"] for r, b in zip(runs[c], runs[ref])]
                    row[f"ratio_to_{ref}"] = ratios
                    text += f", x{statistics.median(ratios):.2f} vs {ref} (runs {', '.join(f'{x:.2f}' for x in ratios)})"
            out.append(row)
            print(f"{preset:>6} {case:>16} {c:>7}: median {row['signal_s_per_s_median']:7.0f} s of signal/s{text}, "
                  f"outside the model {row['outside_model_share_median']:.0%}, peak RSS {row['peak_rss_mb_max']:.0f} MB")
    return out


def _cases(tmp: Path, opts: dict, only: str | None = None) -> list[tuple[str, list[Path], float]]:
    """(name, files, seconds of signal) for each case whose name contains ``only``, files written now."""
    cases = []
    for duration_s, fs_hz in opts["cases"]:
        name = f"{duration_s / 60:g} min @{fs_hz / 1000:g}k"
        if only is None or only in name:
            cases.append((name, [write_long(tmp / f"rec_{duration_s}s_{fs_hz}.h5", duration_s, fs_hz)], duration_s))
    name = f"{opts['n_files']} x {opts['file_s']} s @12k"
    if only is None or only in name:
        files = [write_long(tmp / f"file{i}.h5", opts["file_s"], 12000, seed=i) for i in range(opts["n_files"])]
        cases.append((name, files, opts["n_files"] * opts["file_s"]))
    return cases


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short recordings, one round")
    p.add_argument("--model", help="checkpoint to use (default: random-weight drsn-cw presets)")
    p.add_argument("--presets", nargs="+", default=["paper", "wide", "recipe"], choices=PRESETS,
                   help="models (default all): paper, wide, and recipe = the shipped DRSN-CW recipe with its front end")
    p.add_argument("--configs", nargs="+", default=["t1", "t2", "j2"], type=str,
                   help="thread settings: tN (jobs=1, N PyTorch threads) or jN (jobs=N); default t1 t2 j2")
    p.add_argument("--rounds", type=int, help="rounds over all settings (default 3, --quick 1)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="a folder holding another faultdiag (e.g. `git archive REV faultdiag | tar -x -C DIR`): "
                        "its tN settings run too, in turn, as base-tN, with the ratio this/baseline")
    p.add_argument("--only", metavar="TEXT", help="only the cases whose name contains TEXT (e.g. '@48k', 'files')")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    for c in args.configs:
        try:
            parse_config(c)
        except argparse.ArgumentTypeError as exc:
            p.error(str(exc))
    from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

    opts = dict(QUICK if args.quick else FULL)
    opts["rounds"] = args.rounds or opts["rounds"]
    configs = list(args.configs)
    if args.baseline:
        configs += [f"base-{c}" for c in args.configs if c.startswith("t")]
    rows, t_start, machine_before = [], time.perf_counter(), machine_info()
    with tempfile.TemporaryDirectory(prefix="diagnose_speed_") as tmp:
        models = ({"given": Path(args.model)} if args.model else
                  {p: make_model(Path(tmp) / f"{p}.pt", p) for p in args.presets})
        for name, files, signal_s in _cases(Path(tmp), opts, args.only):
            for _ in range(opts["rounds"]):
                for preset, model in models.items():
                    for config in configs:
                        row = run_case(model, files, config, args.batch_size,
                                       args.baseline if config.startswith("base-") else None)
                        row.update(preset=preset, case=name, n_files=len(files), signal_s=signal_s,
                                   signal_s_per_s=signal_s / row["wall_s"],
                                   model_only_signal_s_per_s=signal_s / row["model_only_s"])
                        rows.append(row)
                        print(_line(row), flush=True)
    summary = summarize(rows, configs)
    result = {"benchmark": "diagnose_speed", "settings": {k: v for k, v in opts.items()}, "only": args.only,
              "configs": configs,
              "baseline": str(args.baseline) if args.baseline else None,
              "batch_size": args.batch_size, "model": args.model or "random-weight drsn-cw presets (recipe: the shipped one), window 2048, hop 2048",
              "summary": summary, "results": rows, "elapsed_s": time.perf_counter() - t_start,
              "machine_before": machine_before, "machine": machine_info(), "versions": library_versions(),
              "revision": code_revision()}
    write_json(args.out, result)
    load = result["machine"]["load_avg_1_5_15"]
    print(f"{result['elapsed_s']:.0f} s in all; load average now {load}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
