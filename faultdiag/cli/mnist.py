"""``faultdiag mnist-demo``: the seed article's noisy-MNIST comparison of DRSN-CW and ResNet.

Option precedence: command line > ``--config`` TOML file (table ``[mnist_demo]``) > the
article's protocol (the defaults of :class:`faultdiag.mnist.DemoConfig`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any


DEFAULT_DATA_DIR = Path("data") / "mnist"
MNIST_ENV = "FAULTDIAG_MNIST"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "mnist-demo", help="the article's noisy-MNIST demo: DRSN-CW vs ResNet",
        description="Train the article's DRSN-CW and ResNet on MNIST with 0.5*U[0,1) pixel noise "
                    "(Adam 1e-3, batch 100, 5 epochs, Keras-style L2 1e-4) and compare them.")
    p.add_argument("--config", type=Path, help="TOML file with a [mnist_demo] table (e.g. configs/mnist_seed.toml)")
    p.add_argument("--model", dest="models", help="comma-separated models: drsn-cw,drsn-cs,resnet")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", dest="n_seeds", type=int, help="number of seeds (report mean ± std)")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--noise-scale", dest="noise_scale", type=float, help="noise amplitude (article: 0.5)")
    p.add_argument("--units", type=int, help="residual units (article: 1)")
    p.add_argument("--limit", type=int, help="use only the first N train and test images")
    p.add_argument("--threads", dest="num_threads", type=int, help="torch CPU threads (default: min(2, CPUs))")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model for training (pays off only for long runs or a warm cache)")
    p.add_argument("--bn-stats", dest="bn_stats", choices=("precise", "running"),
                   help="BatchNorm statistics for the final eval-mode scores: 'precise' (default) re-estimates "
                        "them over the training images with the final weights; 'running' keeps the running "
                        "averages (Keras momentum 0.99), which lag the weights after 5 epochs")
    p.add_argument("--precision", choices=("float32", "bfloat16"),
                   help="float32 (default, the article's) or bfloat16: training forwards in mixed precision "
                        "(weights, optimizer and scores in float32), on a CPU with native bfloat16 only")
    p.add_argument("--data-dir", type=Path,
                   help=f"MNIST IDX folder (default: ${MNIST_ENV}, else ./data/mnist, downloaded if absent)")
    p.add_argument("--out", type=Path, help="folder for results.json (config, seeds, data fingerprint, revision)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """CLI > file > defaults, in one step (:func:`faultdiag.mnist.load_demo_config`)."""
    from faultdiag.mnist import load_demo_config

    options = {name: getattr(args, name) for name in ("epochs", "n_seeds", "seed", "noise_scale", "units", "limit",
                                                      "num_threads", "compile", "bn_stats", "precision")
               if getattr(args, name) is not None}
    if args.models is not None:
        options["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    cfg = load_demo_config(args.config, options)
    if cfg.num_threads is None:  # the CLI's default: both cores of a small machine, no more
        cfg = dataclasses.replace(cfg, num_threads=max(1, min(2, os.cpu_count() or 1)))
    return cfg


def resolve_data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    return Path(os.environ.get(MNIST_ENV) or DEFAULT_DATA_DIR)


class _Printer:
    """Prints one line per epoch and a tqdm bar over the batches of each epoch (stderr)."""

    def __init__(self, show_bar: bool):
        self.show_bar = show_bar
        self.bar = None

    def __call__(self, event: dict) -> None:
        if event["kind"] == "batch":
            if not self.show_bar:
                return
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event["batches"], leave=False, file=sys.stderr, unit="batch",
                                desc=f"{event['model']} seed {event['seed']} epoch {event['epoch']}")
            self.bar.update(event["batch"] - self.bar.n)
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        test = (f"  test loss {event['test_loss']:.4f} acc {event['test_acc']:.4f}"
                if "test_loss" in event else "")
        print(f"{event['model']:>8} seed {event['seed']} epoch {event['epoch']}/{event['epochs']}: "
              f"loss {event['loss']:.4f} acc {event['acc']:.4f}{test}  "
              f"({event['seconds']:.1f} s, {event['images_per_s']:.0f} img/s)", flush=True)


def _pm(stat: dict, pct: bool = False) -> str:
    scale, unit = (100.0, "%") if pct else (1.0, "")
    if stat["n"] > 1:
        return f"{stat['mean'] * scale:.2f}{unit} ± {stat['std'] * scale:.2f}"
    return f"{stat['mean'] * scale:.4f}{unit}" if not pct else f"{stat['mean'] * scale:.2f}{unit}"


def print_results(results: dict) -> None:
    n = len(results["seeds"])
    stats = results["config"]["bn_stats"]
    print(f"\nFinal evaluation (BatchNorm in eval mode, {stats} statistics**), {results['n_train']} train / "
          f"{results['n_test']} test images, {n} seed{'s' if n > 1 else ''}" + (" (mean ± std)" if n > 1 else "") + ":")
    print(f"{'model':>16}  {'train loss':>16}  {'train acc':>16}  {'test loss':>16}  {'test acc':>16}  "
          f"{'test acc, running BN':>20}  {'test acc, batch-stat BN*':>24}")
    rows = list(results["summary"].items()) + list(results["differences"].items())
    for name, s in rows:
        print(f"{name:>16}  {_pm(s['train_loss']):>16}  {_pm(s['train_acc'], True):>16}  "
              f"{_pm(s['test_loss']):>16}  {_pm(s['test_acc'], True):>16}  {_pm(s['test_running_stats_acc'], True):>20}  "
              f"{_pm(s['test_batch_stats_acc'], True):>24}")
    print("* BatchNorm normalised by each test batch of 100 (train mode), what the article's Keras code "
          "computed (its learning phase is fixed to 1 when the model is built).")
    print("** precise: BatchNorm statistics re-estimated over the training images with the final weights; "
          "running: the running averages of training (Keras momentum 0.99), which lag the weights.")
    for run in results["runs"]:
        print(f"{run['model']:>8} seed {run['seed']}: {run['params']} parameters, "
              f"training {run['train_images_per_s']:.0f} images/s")


def run(args: argparse.Namespace) -> int:
    from faultdiag.data.mnist import load_mnist
    from faultdiag.mnist import run_demo
    from faultdiag.provenance import code_revision, fingerprint, library_versions, machine_info, write_json

    cfg = build_config(args)
    data_dir = resolve_data_dir(args.data_dir)
    data = load_mnist(data_dir, download=True)
    results = run_demo(data, cfg, progress=_Printer(show_bar=not args.no_progress and sys.stderr.isatty()))
    print_results(results)
    if args.out is not None:
        shas = data.file_sha256s()
        results = {**results, "data": {"dir": str(data_dir), "files_sha256": shas, "fingerprint": fingerprint(shas)},
                   "code_revision": code_revision(), "versions": library_versions(), "machine": machine_info()}
        write_json(args.out / "results.json", results)
        print(f"results written to {args.out / 'results.json'}")
    return 0
