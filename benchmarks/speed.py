"""Training and inference throughput of every 1-D preset and the MNIST demo, eager vs compiled; diagnose memory.

    python -m benchmarks.speed [--threads 2] [--batch-sizes 32 64 128 256] [--steps 10] [--repeats 5]
                               [--compile] [--skip-mnist] [--skip-diagnose] [--minutes 60] [--out PATH] [--quick]

Three parts, one JSON (``benchmarks/results/speed.json``, written atomically, with the machine,
library versions, code revision, arguments, torch threads and the 1-minute load average before
and after: the machine may be shared, a high load inflates the times):

* ``presets``: each preset of ``PRESETS`` with ``dims=1`` x each of ``SHRINKAGE_NAMES``, windows of
  2048 samples at 12 kHz, 10 classes, synthetic random data, at each batch size.
  ``train``: full training steps (train mode, forward, cross-entropy, backward, the training
  loop's Adam from ``faultdiag.training.schedules.make_optimizer``), ``--steps`` steps per repeat.
  ``infer``: eval mode, ``no_grad``, one forward pass per sample (``repeats x steps`` samples,
  timed by ``forward_speed.time_forwards``), of the plain eval model and of the folded copy that
  ``diagnose`` runs (``fold_for_inference``). Seconds of signal per second = windows/s x
  window_len / fs_hz, for non-overlapping windows (``diagnose`` uses hop = window_len by default).
  ``--compile`` adds ``torch.compile(dynamic=False)`` variants (train, and folded inference); the
  first call (compile + one step) is reported apart from the steady state (``compile_s``).
  Variants take turns within each repeat; median and min over repeats.
* ``mnist_demo``: the demo's own training loop at batch 100 (``mnist_speed.measure``, variant
  ``fast`` = ``faultdiag.mnist.demo.train_epoch``; ``fast+compile`` with ``--compile``) and, in the
  same rounds, the seed article's Keras program (``keras``, ``benchmarks/keras_seed.py``, Keras 3
  on PyTorch with the same threads) with the ratio faultdiag/Keras images per second per round;
  skipped with a note where Keras is not installed (``pip install -e '.[bench]'``).
* ``diagnose``: ``diagnose`` on a ``--minutes`` long 12 kHz recording, one fresh child process
  per preset reporting wall time and peak RSS (``diagnose_speed._run_case``; random-weight drsn-cw).

``--quick`` is a smoke run of a few seconds (batch 16, 2 steps, 1 repeat, 1-minute recording).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch.nn import functional as F

from benchmarks import diagnose_speed, mnist_speed
from benchmarks.forward_speed import time_forwards
from faultdiag.config import TrainConfig
from faultdiag.diagnose import DEFAULT_BATCH_SIZE as DIAGNOSE_BATCH
from faultdiag.mnist import DemoConfig
from faultdiag.models.inference import fold_for_inference
from faultdiag.models.networks import PRESETS, SHRINKAGE_NAMES, build_model
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json
from faultdiag.training.schedules import make_optimizer

OUT = Path(__file__).resolve().parent / "results" / "speed.json"
PRESETS_1D = tuple(name for name, p in PRESETS.items() if p["dims"] == 1)
WINDOW_LEN, FS_HZ, NUM_CLASSES = 2048, 12000.0, 10
# Values of the options left unset: full run / --quick.
FULL = dict(batch_sizes=[32, 64, 128, 256], steps=10, repeats=5, warmup=2, minutes=60.0, mnist_images=6000)
QUICK = dict(batch_sizes=[16], steps=2, repeats=1, warmup=1, minutes=1.0, mnist_images=200)


def train_step(model: torch.nn.Module, forward: Callable, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One training step on ``x (B, 1, L)``, ``y (B,)``: forward, cross-entropy, backward, Adam step."""
    model.train()
    optimizer = make_optimizer(model.parameters(), TrainConfig())

    def step() -> None:
        loss = F.cross_entropy(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def first_call_s(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn`` (for a compiled model: compiling plus one step)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_steps(steps_by_name: dict[str, Callable[[], None]], warmup: int, steps: int,
               repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each step function, one entry (mean of ``steps`` steps) per repeat.

    The functions take turns within each repeat, like ``forward_speed.time_forwards``.
    """
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for _ in range(repeats):
        for name, step in steps_by_name.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def _compiled(model: torch.nn.Module) -> Callable:
    torch._dynamo.reset()  # a fresh cache per case: no recompile limit, compile time counted in full
    return torch.compile(model, dynamic=False)


def train_variants(preset: str, name: str, batch: int, compile_: bool) -> tuple[dict, dict]:
    """Step functions per variant and their first-call seconds."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, WINDOW_LEN, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    steps, first = {}, {}
    for variant in ("eager", "compile") if compile_ else ("eager",):
        model = build_model(name, preset=preset, num_classes=NUM_CLASSES, seed=0)
        steps[variant] = train_step(model, _compiled(model) if variant == "compile" else model, x, y)
        first[variant] = first_call_s(steps[variant])
    return steps, first


def infer_variants(preset: str, name: str, batch: int, compile_: bool) -> tuple[dict, dict, torch.Tensor]:
    """Eval-mode models per variant, their first-call seconds (no_grad) and the input ``(B, 1, L)``."""
    x = torch.randn(batch, 1, WINDOW_LEN, generator=torch.Generator().manual_seed(0))
    model = build_model(name, preset=preset, num_classes=NUM_CLASSES, seed=0).eval()
    models = {"eval": model, "folded": fold_for_inference(model)}
    if compile_:
        models["folded+compile"] = _compiled(fold_for_inference(model))
    with torch.no_grad():
        first = {variant: first_call_s(lambda m=m: m(x)) for variant, m in models.items()}
    return models, first, x


def _row(case: dict, variant: str, times: Sequence[float], first_s: float) -> dict:
    """One result row; windows/s at the median and at the best (min) time."""
    med, best = statistics.median(times), min(times)
    row = {**case, "variant": variant, "median_s": med, "min_s": best, "windows_per_s": case["batch_size"] / med,
           "windows_per_s_best": case["batch_size"] / best, "first_call_s": first_s}
    if case["phase"] == "infer":
        row["signal_s_per_s"] = row["windows_per_s"] * WINDOW_LEN / FS_HZ
    if "compile" in variant:
        row["compile_s"] = max(0.0, first_s - med)
    sig = f"{row['signal_s_per_s']:8.0f} s signal/s" if "signal_s_per_s" in row else " " * 17
    print(f"{case['preset']:>6} {case['model']:>8} {case['phase']:>5} {variant:>14} {case['batch_size']:>5} "
          f"{row['windows_per_s']:9.0f} {row['windows_per_s_best']:9.0f} {sig} first {first_s:6.2f} s", flush=True)
    return row


def bench_presets(presets: Sequence[str], models: Sequence[str], opts: dict, compile_: bool) -> list[dict]:
    """Training and inference rows for every (preset, model, batch size)."""
    print(f"{'preset':>6} {'model':>8} {'phase':>5} {'variant':>14} {'batch':>5} {'win/s':>9} {'best':>9}")
    rows = []
    for preset in presets:
        for name in models:
            for batch in opts["batch_sizes"]:
                case = {"preset": preset, "model": name, "batch_size": batch, "phase": "train"}
                steps, first = train_variants(preset, name, batch, compile_)
                times = time_steps(steps, opts["warmup"], opts["steps"], opts["repeats"])
                rows += [_row(case, v, t, first[v]) for v, t in times.items()]
                case = {**case, "phase": "infer"}
                nets, first, x = infer_variants(preset, name, batch, compile_)
                times = time_forwards(nets, x, opts["warmup"], opts["repeats"] * opts["steps"])
                rows += [_row(case, v, t, first[v]) for v, t in times.items()]
    return rows


def bench_mnist(opts: dict, repeats: int, compile_: bool) -> dict:
    """The demo's training loop at batch 100 (``mnist_speed.measure``) against the article's Keras program,
    in turn round by round, for the demo's models."""
    variants = ["fast"] + (["fast+compile"] if compile_ else [])
    note = None
    if mnist_speed.keras_available():
        variants.append("keras")
    else:
        note = "keras variant skipped: Keras 3 with the PyTorch backend is not installed (pip install -e '.[bench]')"
        print(note)
    results = mnist_speed.measure(DemoConfig().models, variants, opts["mnist_images"], repeats)
    for key, r in results.items():
        vs = f", x{r['x_keras_median']:.2f} the Keras program (rounds {', '.join(f'{v:.2f}' for v in r['x_keras'])})" \
            if "x_keras" in r else ""
        print(f"mnist {key:>20}: best {r['best_images_per_s']:7.0f} img/s, median {r['median_images_per_s']:7.0f} "
              f"(warm-up {r['warmup_s']:.1f} s){vs}", flush=True)
    return {"batch_size": 100, "images_per_round": opts["mnist_images"], "rounds": repeats, "note": note,
            "variants": {"fast": "faultdiag.mnist.demo.train_epoch", "fast+compile": "the same, torch.compile'd model",
                         "keras": "the seed article's program in Keras 3 on PyTorch (benchmarks/keras_seed.py); "
                                  "x_keras: faultdiag images/s over Keras images/s, per round"},
            "results": results}


def bench_diagnose(presets: Sequence[str], minutes: float, threads: int) -> dict:
    """``diagnose`` on one long 12 kHz recording, one child process per preset (``diagnose_speed.run_case``)."""
    duration_s, fs_hz = int(minutes * 60), int(FS_HZ)
    with tempfile.TemporaryDirectory(prefix="speed_diagnose_") as tmp:
        rec = diagnose_speed.write_long(Path(tmp) / "long.h5", duration_s, fs_hz)
        rows = []
        for p in presets:
            row = diagnose_speed.run_case(diagnose_speed.make_model(Path(tmp) / f"{p}.pt", p), [rec], f"t{threads}",
                                          DIAGNOSE_BATCH)
            row.update(preset=p, signal_s_per_s=duration_s / row["wall_s"],
                       model_only_signal_s_per_s=duration_s / row["model_only_s"])
            print(f"diagnose {p:>6}, {minutes:g} min at 12 kHz, {threads} thread(s): {row['signal_s_per_s']:6.0f} s of "
                  f"signal/s (model alone {row['model_only_signal_s_per_s']:.0f}), peak RSS {row['peak_rss_mb']:.0f} MB",
                  flush=True)
            rows.append(row)
    return {"model": "random-weight drsn-cw, window 2048, hop 2048", "batch_size": DIAGNOSE_BATCH,
            "duration_s": duration_s, "fs_hz": fs_hz, "results": rows}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-sizes", type=int, nargs="+", help=f"default {FULL['batch_sizes']}")
    p.add_argument("--steps", type=int, help=f"timed steps per repeat (default {FULL['steps']})")
    p.add_argument("--repeats", type=int, help=f"default {FULL['repeats']}")
    p.add_argument("--presets", nargs="+", choices=PRESETS_1D, default=list(PRESETS_1D))
    p.add_argument("--models", nargs="+", choices=SHRINKAGE_NAMES, default=list(SHRINKAGE_NAMES))
    p.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    p.add_argument("--skip-mnist", action="store_true")
    p.add_argument("--skip-diagnose", action="store_true")
    p.add_argument("--minutes", type=float, help=f"diagnose recording length (default {FULL['minutes']:g})")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--quick", action="store_true", help="smallest settings, a smoke run of seconds")
    args = p.parse_args(argv)
    for name, value in vars(args).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive; got {value}")
    if any(b <= 0 for b in args.batch_sizes or []):
        p.error(f"--batch-sizes must be positive; got {args.batch_sizes}")
    return args


def resolve(args: argparse.Namespace) -> dict:
    """The settings in force: options given on the command line, else ``QUICK`` or ``FULL``."""
    base = QUICK if args.quick else FULL
    return {key: getattr(args, key, None) if getattr(args, key, None) is not None else default
            for key, default in base.items()}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    opts = resolve(args)
    torch.set_num_threads(args.threads)
    t0, load_before = time.perf_counter(), os.getloadavg()[0]
    out = {"benchmark": "speed", "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "settings": opts, "torch_threads": torch.get_num_threads(),
           "input": {"window_len": WINDOW_LEN, "fs_hz": FS_HZ, "num_classes": NUM_CLASSES, "channels": 1},
           "signal_s_per_s_note": ("windows/s x window_len / fs_hz: non-overlapping windows, as faultdiag.diagnose "
                                   "cuts them by default (hop = the checkpoint's window_len)"),
           "hop": WINDOW_LEN, "load_avg_1min_before": load_before}
    out["presets"] = bench_presets(args.presets, args.models, opts, args.compile)
    if not args.skip_mnist:
        out["mnist_demo"] = bench_mnist(opts, opts["repeats"], args.compile)
    if not args.skip_diagnose:
        out["diagnose"] = bench_diagnose(args.presets, opts["minutes"], args.threads)
    load_after = os.getloadavg()[0]
    out.update(load_avg_1min_after=load_after, elapsed_s=time.perf_counter() - t0, machine=machine_info(),
               versions=library_versions(), revision=code_revision())
    write_json(args.out, out)
    print(f"1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs; "
          f"{out['elapsed_s']:.0f} s in all\nwrote {args.out}")
    return out


if __name__ == "__main__":
    main()
