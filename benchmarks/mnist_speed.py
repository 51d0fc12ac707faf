"""Training throughput of the noisy-MNIST demo at batch 100: the demo's loop vs a plain loop and the article's Keras program.

    python -m benchmarks.mnist_speed [--threads 2] [--images 6000] [--rounds 3] [--variants fast keras] [--compile]

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
* ``keras``: the seed article's own program (``benchmarks/keras_seed.py``: the same network,
  loss and Adam) in Keras 3 on PyTorch, ``model.fit(batch_size=100, epochs=1, verbose=0)`` per
  round on one-hot labels. Its rounds are timed twice: the ``fit`` call (``wall``) and, from a
  callback, the epoch from its first batch to its end (``epoch_wall``, without ``fit``'s set-up:
  the figure that favours Keras, used for the ratios). Needs Keras (``pip install -e '.[bench]'``);
  skipped with a note where it is absent.
* ``fast-bf16``: ``fast`` with the demo's ``precision = "bfloat16"`` (training forward under bfloat16
  autocast; needs a CPU with native bfloat16); ``keras-bf16``: the Keras program with Keras' own mixed
  precision (``mixed_bfloat16`` policy). ``fast-bf16`` is compared with ``keras-bf16`` when both run
  (same arithmetic on both sides), else with ``keras``; ``x_keras_peer`` names the one used.

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
from faultdiag.mnist.demo import l2_penalty, make_optimizer, regularized_kernels, train_epoch, training_forward
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


def _keras_setup(name: str, policy: str = "float32"):
    """The article's Keras model for ``name`` (layers built under the dtype ``policy``) and an epoch runner
    on NCHW tensors (converted once)."""
    from benchmarks.keras_seed import build_model as build_keras, import_keras

    keras = import_keras()

    class EpochTimer(keras.callbacks.Callback):
        """Seconds from the first batch of an epoch to its end."""

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_keras(keras, shrinkage=name != "resnet")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    timer, cache = EpochTimer(), {}

    def epoch(x, y, g):
        key = (id(x), len(x))
        if key not in cache:  # NHWC floats and one-hot labels, as the article feeds Keras
            cache.clear()
            cache[key] = (x.permute(0, 2, 3, 1).contiguous().numpy(), keras.utils.to_categorical(y.numpy(), 10))
        model.fit(*cache[key], batch_size=100, epochs=1, verbose=0, callbacks=[timer])
        return timer.seconds

    return model, None, epoch


def keras_available() -> bool:
    """Whether Keras 3 runs on PyTorch here (for the ``keras`` variant)."""
    from benchmarks.keras_seed import import_keras

    return import_keras() is not None


def _setup(name: str, variant: str):
    if variant in ("keras", "keras-bf16"):
        return _keras_setup(name, "mixed_bfloat16" if variant == "keras-bf16" else "float32")
    model = build_model(name, dims=2, preset="seed-mnist", seed=0)
    if variant == "eager":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        return model, optimizer, lambda x, y, g: eager_epoch(model, optimizer, x, y, generator=g)
    optimizer = make_optimizer(model, DemoConfig())
    forward = (torch.compile(model) if variant == "fast+compile" else
               training_forward(model, DemoConfig(precision="bfloat16")) if variant == "fast-bf16" else None)
    return model, optimizer, lambda x, y, g: train_epoch(model, optimizer, x, y, batch_size=100, l2=1e-4,
                                                         generator=g, forward=forward)


def _timed(fn, *args) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def measure(models, variants, n_images: int, rounds: int) -> dict:
    """Images per second of each (model, variant), the variants in turn within each round; with ``keras``
    among the variants, also each other variant's ratio to it, round by round (``x_keras``)."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n_images, 1, 28, 28, generator=gen), torch.randint(0, 10, (n_images,), generator=gen)
    setups, results = {}, {}
    for name in models:
        for variant in variants:
            _, _, epoch = setups[name, variant] = _setup(name, variant)
            warm_s, _, _ = _timed(epoch, x[:500], y[:500], gen)  # warm-up (and compile) on 5 batches
            results[f"{name}/{variant}"] = {"warmup_s": warm_s, "wall": [], "cpu": []}
    for _ in range(rounds):
        for (name, variant), (_, _, epoch) in setups.items():
            wall, cpu, out = _timed(epoch, x, y, gen)
            r = results[f"{name}/{variant}"]
            r["wall"].append(n_images / wall)
            r["cpu"].append(n_images / cpu)
            if variant.startswith("keras"):
                r.setdefault("epoch_wall", []).append(n_images / out)
    for key, r in results.items():
        r.update(best_images_per_s=max(r["wall"]), median_images_per_s=statistics.median(r["wall"]),
                 best_images_per_cpu_s=max(r["cpu"]))
        name, variant = key.split("/")
        peer = "keras-bf16" if variant == "fast-bf16" and "keras-bf16" in variants else "keras"
        if peer in variants and not variant.startswith("keras"):
            keras_rate = results[f"{name}/{peer}"].get("epoch_wall") or results[f"{name}/{peer}"]["wall"]
            r["x_keras"] = [a / b for a, b in zip(r["wall"], keras_rate)]
            r["x_keras_median"] = statistics.median(r["x_keras"])
            r["x_keras_peer"] = peer
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=6000, help="images per timed epoch (batches of 100)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="drsn-cw,resnet")
    p.add_argument("--variants", nargs="+", default=["eager", "fast", "keras"],
                   choices=("eager", "fast", "fast+compile", "fast-bf16", "keras", "keras-bf16"))
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    variants = list(args.variants) + (["fast+compile"] if args.compile and "fast+compile" not in args.variants else [])
    if any(v.startswith("keras") for v in variants) and not keras_available():
        print("keras variants skipped: Keras 3 with the PyTorch backend is not installed (pip install -e '.[bench]')")
        variants = [v for v in variants if not v.startswith("keras")]
    load_before = os.getloadavg()
    results = measure(args.models.split(","), variants, args.images, args.rounds)
    for key, r in results.items():
        vs = f", x{r['x_keras_median']:.2f} {r['x_keras_peer']}" if "x_keras_median" in r else ""
        print(f"{key:>24}: best {r['best_images_per_s']:7.0f} img/s, median {r['median_images_per_s']:7.0f}, "
              f"{r['best_images_per_cpu_s']:7.0f} img/CPU-s (warm-up {r['warmup_s']:.1f} s){vs}")
    write_json(args.out, {"batch_size": 100, "images_per_round": args.images, "rounds": args.rounds,
                          "threads": args.threads, "load_average_before": load_before,
                          "load_average_after": os.getloadavg(), "results": results,
                          "machine": machine_info(), "versions": library_versions(),
                          "code_revision": code_revision()})
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
