"""The cells of a sweep: one training each, with the conditions it is scored at.

Protocols:

- ``train-clean`` (WDCNN): one training per model × seed on clean windows, scored at every
  kind × SNR (and clean), with and without AdaBN as ``sweep.adabn`` says. Cell id
  ``clean-seed<seed>``.
- ``train-mixed``: one training per model × seed with noise whose SNR is drawn per window from
  ``noise.train_snr_range_db`` (``noise.train = "mixed"``), scored like ``train-clean``. Cell id
  ``mixed-seed<seed>``.
- ``matched`` (DRSN paper): one training per model × kind × SNR × seed with training noise of
  that kind at that SNR (``noise.train`` ``fixed`` or ``fresh``; others become ``fixed``),
  scored at the same kind × SNR. Cell id ``<kind>_<snr>dB-seed<seed>``.
- ``cross-domain``: one training per model × task × adaptation method × seed; task ``"A>B"``
  trains on the recordings whose ``data.domain`` is in A and is scored (clean, with and without
  AdaBN as ``sweep.adabn`` says) on the test regions of those in B; ``[adapt]`` ``method`` is each
  of ``sweep.adapt`` in turn. Cell id ``<A>to<B>-<method>-seed<seed>`` (``1to2-coral-seed0``).

Every cell's config is the sweep's narrowed to that cell (one model, seed, and for ``matched`` one
kind and SNR), so a cell's ``config.toml`` reruns exactly that training.  A sweep may mix the
shrinkage family with the anchors (``wdcnn``, ``ticnn``): each cell keeps only the ``[model]``
keys that apply to its network (:func:`model_section`), and says so in the log.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from faultdiag.config import ModelConfig, RunConfig

__all__ = ["Cell", "plan_cells", "snr_id", "model_section"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training of the sweep and the conditions (kind, snr_db or None, adabn) it is scored at."""

    model: str
    cell_id: str
    seed: int
    config: RunConfig
    conditions: tuple[tuple[str, float | None, bool], ...]
    task: str = ""

    def directory(self, out_dir: Path) -> Path:
        return Path(out_dir) / "cells" / self.model / self.cell_id


def snr_id(snr_db: float) -> str:
    """``-2.5`` → ``m2p5``: an SNR as it appears in file and cell names."""
    return f"{snr_db:g}".replace("-", "m").replace(".", "p")


def model_section(model: ModelConfig, name: str) -> ModelConfig:
    """``model`` for network ``name`` in a sweep that mixes families: the keys that do not apply to
    ``name`` go back to their defaults (logged).  An anchor is the published architecture: ``wdcnn``
    keeps no key; ``ticnn`` keeps the ``kernel_dropout`` (and ``kernel_dropout_masks``) of a ``[model]``
    section that is TICNN's own (``model.name = "ticnn"``), and otherwise, where ``[model]`` holds another
    network's recipe, its paper's rate (:data:`~faultdiag.models.anchors.TICNN_KERNEL_DROPOUT`, written out;
    one mask per batch); a model without shrinkage (``resnet``, ``convnet``) drops ``stem_shrinkage``."""
    from faultdiag.models.anchors import TICNN_KERNEL_DROPOUT
    from faultdiag.models.networks import ANCHOR_NAMES

    if name in ANCHOR_NAMES:
        own = model.kernel_dropout if model.name == "ticnn" else TICNN_KERNEL_DROPOUT
        masks = model.kernel_dropout_masks if model.name == "ticnn" else None
        section = ModelConfig(name=name, kernel_dropout=own if name == "ticnn" else None,
                              kernel_dropout_masks=masks if name == "ticnn" else None)
    elif name in ("resnet", "convnet"):  # no shrinkage: no stem shrinkage either
        section = dataclasses.replace(model, name=name, stem_shrinkage=None)
    else:
        section = dataclasses.replace(model, name=name)
    dropped = [f.name for f in dataclasses.fields(model) if f.name != "name"
               and getattr(model, f.name) != getattr(section, f.name)]
    if dropped:
        log.info("sweep: [model] keys %s do not apply to %s; left at their defaults", dropped, name)
    return section


def _once_per_seed(cfg: RunConfig, base: RunConfig, model: str, seed: int) -> Cell:
    """The one cell of ``train-clean`` / ``train-mixed``: scored clean and at every kind × SNR."""
    rep, sw = dataclasses.replace, cfg.sweep
    if sw.protocol == "train-clean":
        noise, name = rep(cfg.noise, train="clean", train_snr_db=None), "clean"
    else:
        noise, name = rep(cfg.noise, train="mixed", train_snr_db=None), "mixed"
    grid = [("clean", None)] + [(k, float(s)) for k in sw.kinds for s in sw.snrs_db]
    conds = tuple((k, s, a) for a in sw.adabn for k, s in grid)
    return Cell(model, f"{name}-seed{seed}", seed, rep(base, noise=noise), conds)


def _cross_domain(cfg: RunConfig, base) -> list[Cell]:
    """The cells of ``cross-domain``: seed, task, adaptation method, model."""
    rep, sw = dataclasses.replace, cfg.sweep
    if cfg.data.domain is None:
        from faultdiag.errors import ConfigError

        raise ConfigError("Protocol 'cross-domain' needs 'data.domain', the recording attribute the tasks' values "
                          "refer to (e.g. 'load_hp' for CWRU); got None.")
    cells = []
    for seed in map(int, sw.seeds):
        for task in sw.tasks:
            src, tgt = (tuple(v.strip() for v in side.split(",")) for side in task.split(">"))
            for method in sw.adapt:
                for model in sw.models:
                    one = base(model, seed, tasks=(task,), adapt=(method,))
                    cell_cfg = rep(one, noise=rep(cfg.noise, train="clean", train_snr_db=None),
                                   data=rep(cfg.data, train_domains=src, test_domains=tgt),
                                   adapt=rep(cfg.adapt, method=method))
                    name = f"{'+'.join(src)}to{'+'.join(tgt)}-{method}-seed{seed}"
                    cells.append(Cell(model, name, seed, cell_cfg, tuple(("clean", None, a) for a in sw.adabn),
                                      task=f"{','.join(src)}>{','.join(tgt)}"))
    return cells


def plan_cells(cfg: RunConfig) -> list[Cell]:
    """The cells of ``cfg.sweep`` in run order: seed-major, then (``matched``) SNR and kind, then model,
    so that a sweep stopped early has whole conditions (every model) rather than whole models."""
    sw, rep = cfg.sweep, dataclasses.replace
    if sw.protocol == "train-clean" and cfg.noise.train != "clean":
        log.warning("protocol train-clean trains on clean windows; noise.train = %r is not used", cfg.noise.train)

    def base(model: str, seed: int, **sweep_changes) -> RunConfig:
        one = rep(sw, models=(model,), seeds=(seed,), **sweep_changes)
        return rep(cfg, seed=seed, model=model_section(cfg.model, model), sweep=one)

    if sw.protocol == "cross-domain":
        return _cross_domain(cfg, base)
    if sw.protocol != "matched":
        return [_once_per_seed(cfg, base(m, int(s)), m, int(s)) for s in sw.seeds for m in sw.models]
    mode = cfg.noise.train if cfg.noise.train in ("fixed", "fresh") else "fixed"
    cells = []
    for seed in map(int, sw.seeds):
        for snr in map(float, sw.snrs_db):
            for kind in sw.kinds:
                for model in sw.models:
                    noise = rep(cfg.noise, kind=kind, train=mode, train_snr_db=snr)
                    cell_cfg = rep(base(model, seed, kinds=(kind,), snrs_db=(snr,)), noise=noise)
                    cells.append(Cell(model, f"{kind}_{snr_id(snr)}dB-seed{seed}", seed, cell_cfg,
                                      tuple((kind, snr, a) for a in sw.adabn)))
    return cells
