"""BatchNorm statistics of the kept model against ones re-estimated on the clean training windows, same cells.

    python -m benchmarks.bn_recalibration RUN_DIR [--models drsn-cw ticnn] [--seeds 0 1 2] [--rates 0.3 0.5] [--out FILE]

A model trained with dropout on its first convolution's kernel weights (TICNN's interference, the DRSN
recipe's ``kernel_dropout``) keeps BatchNorm running statistics gathered while training, each batch with
another random mask of those weights; in eval mode every weight is used, so the statistics may not fit what
the layers then see (the "variance shift" between dropout and BatchNorm), and the running average follows
the last few batches of each epoch. This re-scores the train-clean cells of a finished WDCNN-protocol sweep
(``RUN_DIR/cells/<model>/clean-seed<N>``) on their clean test windows and with white Gaussian noise at
-4 ... 10 dB (the evaluator's own noise seeds), without AdaBN, for the kept checkpoint (``checkpoint.pt``,
which must reproduce the cell's own ``result.json``, recorded beside it) and for the same weights with every
BatchNorm's statistics re-estimated in eval mode (dropout off) on the cell's clean *training* windows
(:func:`faultdiag.evaluate.adabn` applied to training data: nothing of the test windows is used, so the
protocol stays train-clean), and a third time with the statistics re-estimated the same way but in training
mode (kernel dropout on, a new mask per batch of ``train.batch_size`` windows, as while training): the
cumulative average over all the training windows instead of the running average of the last batches.
``--rates`` adds one such training-mode re-estimation per rate with the kernel-dropout rate set to that
value instead of the trained one (``training_mode_rates`` in the row): how far the statistics alone move a
model along the trade between strong-noise and clean accuracy. With AdaBN the statistics are re-estimated
on the test windows anyway, so only the rows without it can differ. One JSON line per cell in ``--out`` (default
``benchmarks/results/bn_recalibration.jsonl``), about a minute a cell.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

import faultdiag.evaluate as ev
from benchmarks import cells
from benchmarks.cells import SNRS_DB
from faultdiag.config import load_config
from faultdiag.models.anchors import KernelDropoutConv1d
from faultdiag.provenance import code_revision, machine_info
from faultdiag.training import prepare

OUT = Path(__file__).resolve().parent / "results" / "bn_recalibration.jsonl"


def reestimate_in_training_mode(model: nn.Module, X: torch.Tensor, batch_size: int, seed: int) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are the cumulative average over ``X`` in training mode."""
    out = copy.deepcopy(model).train()
    bns = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)  # the kernel-dropout masks
        for i in range(0, len(X) - 1, batch_size):
            out(X[order[i:i + batch_size]])
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return out.eval()


def with_kernel_dropout(model: nn.Module, rate: float) -> nn.Module:
    """A copy of ``model`` whose kernel-dropout convolutions drop at ``rate`` while training."""
    out = copy.deepcopy(model)
    layers = [m for m in out.modules() if isinstance(m, KernelDropoutConv1d)]
    if not layers:
        raise ValueError("--rates: the model has no kernel-dropout convolution")
    for m in layers:
        m.p = float(rate)
    return out


def score_cell(cell: Path, prepared=None, rates=()) -> tuple[dict, object]:
    cfg = load_config(cell / "config.toml", [])
    prepared = prepared if prepared is not None else prepare(cfg)
    kept, _ = ev.load_model(cell / "checkpoint.pt")
    train_x = ev.noisy_inputs(prepared, "gaussian", None, split="train")
    recalibrated = ev.adabn(kept, train_x, seed=cfg.seed)
    in_training_mode = reestimate_in_training_mode(kept, train_x, cfg.train.batch_size, cfg.seed)
    row = {"cell": str(cell), "seed": cfg.seed, "snrs_db": ["clean", *SNRS_DB]}

    def accuracies(model: nn.Module) -> list[float]:
        rows = ev.evaluate_snrs(model, prepared, snrs_db=SNRS_DB, adabn=False, seed=cfg.seed, include_clean=True)
        return [round(100 * r["accuracy"], 2) for r in rows]

    for name, model in (("kept", kept), ("recalibrated", recalibrated), ("training_mode", in_training_mode)):
        row[name] = accuracies(model)
    if rates:
        row["training_mode_rates"] = {str(rate): accuracies(reestimate_in_training_mode(
            with_kernel_dropout(kept, rate), train_x, cfg.train.batch_size, cfg.seed)) for rate in rates}
    own = json.loads((cell / "result.json").read_text())["evaluations"]
    row["cell_result"] = [round(100 * e["accuracy"], 2) for e in own if not e["adabn"]]
    row.update(data_fingerprint=prepared.fingerprint.get("digest"), code_revision=code_revision(),
               machine=machine_info())
    return row, prepared


def main(argv: list[str] | None = None) -> list[dict]:
    keys = ("cell", "kept", "recalibrated", "training_mode", "training_mode_rates", "cell_result")
    rates = {"--rates": dict(nargs="+", type=float, default=(), metavar="P",
                             help="also re-estimate in training mode with the kernel-dropout rate set to P")}
    return cells.main(argv, __doc__.splitlines()[0], OUT, score_cell,
                      lambda row: json.dumps({k: row[k] for k in keys if k in row}), options=rates)


if __name__ == "__main__":
    main()
