"""Training throughput of the noisy-MNIST demo at batch 100: plain eager loop vs the demo's loop.

    python benchmarks/mnist_speed.py [--threads 2] [--images 6000] [--rounds 3] [--compile]

Both loops train the same ``seed-mnist`` model on random 1x28x28 inputs (throughput does not
depend on pixel values) and are timed alternately, round after round, so that load from other
processes hits both alike; the best round counts (least disturbed), the median is kept too.
CPU seconds of this process are recorded beside wall seconds: on a shared machine images per
CPU-second is the steadier figure.

* ``eager``: the plain loop anyone would write first: ``DataLoader(TensorDataset, shuffle=True)``,
  loss ``CE + 1e-4 * sum(w**2)`` through autograd, default Adam, ``.item()`` per batch.
* ``fast``: ``faultdiag.mnist.demo.train_epoch`` (preloaded tensor + ``randperm`` batches, L2 as a
  gradient, fused Adam, on-device accumulators).
* ``fast+compile`` (``--compile``): the same with ``torch.compile`` of the model; compile seconds
  are reported separately.

Writes ``benchmarks/results/mnist_speed.json`` (numbers, load average, machine, versions, revision).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from faultdiag.mnist.config import DemoConfig
from faultdiag.mnist.demo import l2_penalty, make_optimizer, regularized_kernels, train_epoch
from faultdiag.models.networks import build_model
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

OUT = Path(__file__).resolve().parent / "results" / "mnist_speed.json"


def eager_epoch(model, optimizer, x, y, *, batch_size=100, l2=1e-4, generator=None):
    """The plain eager loop (baseline)."""
    model.train()
    kernels = regularized_kernels(model)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=generator)
    total_loss, correct = 0.0, 0
    for xb, yb in loader:
        optimizer.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb) + l2_penalty(kernels, l2)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        correct += (logits.argmax(1) == yb).sum().item()
    return total_loss, correct


def _setup(name: str, variant: str):
    model = build_model(name, dims=2, preset="seed-mnist", seed=0)
    if variant == "eager":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        return model, optimizer, lambda x, y, g: eager_epoch(model, optimizer, x, y, generator=g)
    optimizer = make_optimizer(model, DemoConfig())
    forward = torch.compile(model) if variant == "fast+compile" else None
    return model, optimizer, lambda x, y, g: train_epoch(model, optimizer, x, y, batch_size=100, l2=1e-4,
                                                         generator=g, forward=forward)


def _timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(models, variants, n_images: int, rounds: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n_images, 1, 28, 28, generator=gen), torch.randint(0, 10, (n_images,), generator=gen)
    setups, results = {}, {}
    for name in models:
        for variant in variants:
            _, _, epoch = setups[name, variant] = _setup(name, variant)
            warm_s, _ = _timed(epoch, x[:500], y[:500], gen)  # warm-up (and compile) on 5 batches
            results[f"{name}/{variant}"] = {"warmup_s": warm_s, "wall": [], "cpu": []}
    for _ in range(rounds):
        for (name, variant), (_, _, epoch) in setups.items():
            wall, cpu = _timed(epoch, x, y, gen)
            results[f"{name}/{variant}"]["wall"].append(n_images / wall)
            results[f"{name}/{variant}"]["cpu"].append(n_images / cpu)
    for r in results.values():
        r.update(best_images_per_s=max(r["wall"]), median_images_per_s=statistics.median(r["wall"]),
                 best_images_per_cpu_s=max(r["cpu"]))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=6000, help="images per timed epoch (batches of 100)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="drsn-cw,resnet")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["eager", "fast"] + (["fast+compile"] if args.compile else [])
    load_before = os.getloadavg()
    results = measure(args.models.split(","), variants, args.images, args.rounds)
    for key, r in results.items():
        print(f"{key:>24}: best {r['best_images_per_s']:7.0f} img/s, median {r['median_images_per_s']:7.0f}, "
              f"{r['best_images_per_cpu_s']:7.0f} img/CPU-s (warm-up {r['warmup_s']:.1f} s)")
    write_json(args.out, {"batch_size": 100, "images_per_round": args.images, "rounds": args.rounds,
                          "threads": args.threads, "load_average_before": load_before,
                          "load_average_after": os.getloadavg(), "results": results,
                          "machine": machine_info(), "versions": library_versions(),
                          "code_revision": code_revision()})
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
