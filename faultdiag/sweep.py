"""Sweeps: models × noise kinds × SNRs × seeds, one sub-run ("cell") per training.

Protocols:

- ``train-clean`` (WDCNN): one training per model × seed on clean windows, scored at every
  kind × SNR (and clean), with and without AdaBN as ``sweep.adabn`` says. Cell id
  ``clean-seed<seed>``.
- ``matched`` (DRSN paper): one training per model × kind × SNR × seed with training noise of
  that kind at that SNR (``noise.train`` ``fixed`` or ``fresh``; ``clean`` becomes ``fixed``),
  scored at the same kind × SNR. Cell id ``<kind>_<snr>dB-seed<seed>``.

Every cell lives in ``out_dir/cells/<model>/<cell-id>/`` (checkpoint, training log, resolved
config, ``result.json``). A cell whose ``result.json`` exists with the same training config is
not trained again, so a killed sweep picks up where it stopped; evaluations it lacks (new SNRs)
are computed from its checkpoint. A data folder that moved (``data.data_dir`` differs, the data
fingerprint does not) counts as the same config. The sweep then writes the aggregate files (see
:func:`write_reports`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from faultdiag import report
from faultdiag.config import RunConfig, config_to_dict
from faultdiag.errors import ConfigError, DataError
from faultdiag.evaluate import evaluate_snrs, load_model
from faultdiag.provenance import atomic_write, code_revision, library_versions, machine_info, write_json

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
TIDY_COLUMNS = ("model", "protocol", "kind", "snr_db", "adabn", "seed", "accuracy", "balanced_accuracy", "macro_f1")
# Keys that do not change what a cell learns (excluded when checking a finished cell).
_NEUTRAL = {"sweep": None, "device": None, "train": ("threads", "eval_batch_size")}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training of the sweep and the conditions (kind, snr_db or None, adabn) it is scored at."""

    model: str
    cell_id: str
    seed: int
    config: RunConfig
    conditions: tuple[tuple[str, float | None, bool], ...]

    def directory(self, out_dir: Path) -> Path:
        return out_dir / "cells" / self.model / self.cell_id


def _snr_id(snr_db: float) -> str:
    return f"{snr_db:g}".replace("-", "m").replace(".", "p")


def _cells_for(cfg: RunConfig, model: str, seed: int) -> list[Cell]:
    """The cells of one model and seed; each cell's config is the sweep narrowed to that cell."""
    sw, rep = cfg.sweep, dataclasses.replace
    one = rep(sw, models=(model,), seeds=(seed,))
    base = rep(cfg, seed=seed, model=rep(cfg.model, name=model), sweep=one)
    if sw.protocol == "train-clean":
        noise = rep(cfg.noise, train="clean", train_snr_db=None)
        grid = [("clean", None)] + [(k, float(s)) for k in sw.kinds for s in sw.snrs_db]
        conds = tuple((k, s, a) for a in sw.adabn for k, s in grid)
        return [Cell(model, f"clean-seed{seed}", seed, rep(base, noise=noise), conds)]
    mode = cfg.noise.train if cfg.noise.train != "clean" else "fixed"
    cells = []
    for kind in sw.kinds:
        for snr in map(float, sw.snrs_db):
            noise = rep(cfg.noise, kind=kind, train=mode, train_snr_db=snr)
            cell_cfg = rep(base, noise=noise, sweep=rep(one, kinds=(kind,), snrs_db=(snr,)))
            conds = tuple((kind, snr, a) for a in sw.adabn)
            cells.append(Cell(model, f"{kind}_{_snr_id(snr)}dB-seed{seed}", seed, cell_cfg, conds))
    return cells


def plan_cells(cfg: RunConfig) -> list[Cell]:
    """The cells of ``cfg.sweep`` in run order (seed-major, then model)."""
    if cfg.sweep.protocol == "train-clean" and cfg.noise.train != "clean":
        log.warning("protocol train-clean trains on clean windows; noise.train = %r is not used", cfg.noise.train)
    sw = cfg.sweep
    return [cell for seed in sw.seeds for model in sw.models for cell in _cells_for(cfg, model, int(seed))]


def training_key(cfg: RunConfig) -> dict[str, Any]:
    """The parts of ``cfg`` that determine what a cell learns (for the finished-cell check)."""
    d = config_to_dict(cfg)
    for section, keys in _NEUTRAL.items():
        if keys is None:
            d.pop(section, None)
        else:
            for k in keys:
                d[section].pop(k, None)
    return d


def _read_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"The sweep result file '{path}' is unreadable ({exc}); "
                        f"delete it to rerun that cell.") from None


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} → {vb!r}")
    return out


def _without_data_dir(key: dict) -> dict:
    return {**key, "data": {k: v for k, v in key.get("data", {}).items() if k != "data_dir"}}


def _same_data_elsewhere(old: dict, key: dict, cache: _PreparedCache, cfg: RunConfig) -> bool:
    """True if a finished cell differs from ``key`` only in ``data.data_dir`` and the data read from
    the new folder has the fingerprint (file names and SHA-256) the cell recorded: data that moved."""
    recorded = (old.get("data_fingerprint") or {}).get("digest")
    if recorded is None or _diff(_without_data_dir(old.get("training_key", {})), _without_data_dir(key)):
        return False
    return getattr(cache.get(cfg), "fingerprint", {}).get("digest") == recorded


def _cond_key(kind: str, snr_db: float | None, adabn: bool) -> tuple:
    return (kind, None if snr_db is None else round(float(snr_db), 6), bool(adabn))


class _PreparedCache:
    """The last prepared data set, keyed by its data config (windows are the expensive part;
    :func:`faultdiag.prepare.prepare` depends on ``cfg.data`` only, so every model, kind and seed
    of a sweep shares one)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.value: Any = None

    def get(self, cfg: RunConfig) -> Any:
        from faultdiag.prepare import prepare

        key = json.dumps(config_to_dict(cfg)["data"], sort_keys=True)
        if key != self.key:
            self.key, self.value = None, None  # free the old windows first
            self.value, self.key = prepare(cfg), key
        return self.value


def _evaluate(model: torch.nn.Module, prepared: Any, cell: Cell, missing: list[tuple]) -> list[dict]:
    cfg = cell.config
    rows: list[dict] = []
    for adabn in dict.fromkeys(a for _, _, a in missing):
        conds = [(k, s) for k, s, a in missing if a == adabn]
        by_kind: dict[str, list[float]] = {}
        for k, s in conds:
            if k != "clean":
                by_kind.setdefault(k, []).append(s)
        include_clean = any(k == "clean" for k, _ in conds)
        kinds = list(by_kind) or [cfg.noise.kind]
        for i, kind in enumerate(kinds):
            rows += evaluate_snrs(
                model, prepared, split="test", kinds=(kind,), snrs_db=tuple(by_kind.get(kind, ())),
                seed=cell.seed, adabn=adabn, include_clean=include_clean and i == 0, per=cfg.noise.per,
                normalize=cfg.data.normalize, batch_size=cfg.train.eval_batch_size, device=cfg.device)
    return rows


def _train_cell(cell: Cell, cell_dir: Path, cache: _PreparedCache, resume: bool,
                progress: bool) -> tuple[Any, Any, dict]:
    from faultdiag.train import train_model

    prepared = cache.get(cell.config)
    t0 = time.perf_counter()
    result = train_model(cell.config, cell_dir, prepared=prepared, resume=resume, progress=progress)
    info = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "train_wall_s": round(time.perf_counter() - t0, 3)}
    return result.model, prepared, info


def _load_cell_model(cell_dir: Path, cfg: RunConfig) -> torch.nn.Module:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    return load_model(cell_dir / "checkpoint.pt")[0]


def run_cell(cell: Cell, out_dir: Path, cache: _PreparedCache, *, resume: bool = False,
             progress: bool = True) -> tuple[dict, str]:
    """Train (unless finished) and score one cell; return its result dict and what was done:
    ``"trained"``, ``"scored"`` (trained before, new conditions scored) or ``"skipped"``."""
    cell_dir = cell.directory(out_dir)
    key = training_key(cell.config)
    old = _read_result(cell_dir / RESULT_FILE)
    changes = "; ".join(_diff(old.get("training_key", {}), key)[:5]) if old is not None else ""
    if changes and _same_data_elsewhere(old, key, cache, cell.config):
        log.info("%s: data.data_dir moved to %r; same data fingerprint, the cell stands", cell_dir, cell.config.data.data_dir)
        changes = ""
    if changes:  # a key absent from an older cell's record counts as None (options added since)
        raise ConfigError(f"The sweep cell '{cell_dir}' was trained with a different config ({changes}); "
                          f"use a new --out folder or delete that cell.")
    done = {_cond_key(e["kind"], e["snr_db"], e["adabn"]): e for e in (old or {}).get("evaluations", [])}
    missing = [c for c in cell.conditions if _cond_key(*c) not in done]
    if old is not None and not missing:
        return old, "skipped"
    if old is None:
        model, prepared, info = _train_cell(cell, cell_dir, cache, resume, progress)
    else:  # trained before; only new conditions to score
        model, prepared = _load_cell_model(cell_dir, cell.config), cache.get(cell.config)
        info = {k: old.get(k) for k in ("best_epoch", "epochs_run", "train_wall_s")}
    for row in _evaluate(model, prepared, cell, missing):
        done[_cond_key(row["kind"], row["snr_db"], row["adabn"])] = row
    result = {
        "model": cell.model, "protocol": cell.config.sweep.protocol, "cell": cell.cell_id, "seed": cell.seed,
        **info, "config": config_to_dict(cell.config), "training_key": key,
        "data_fingerprint": getattr(prepared, "fingerprint", None), "code_revision": code_revision(),
        "versions": library_versions(), "evaluations": list(done.values()),
    }
    write_json(cell_dir / RESULT_FILE, result)
    return result, "trained" if old is None else "scored"


def tidy_rows(result: dict, cell: Cell) -> list[dict]:
    """The tidy rows (``TIDY_COLUMNS``) of the conditions ``cell`` asks for."""
    wanted = {_cond_key(*c) for c in cell.conditions}
    rows = []
    for e in result["evaluations"]:
        if _cond_key(e["kind"], e["snr_db"], e["adabn"]) in wanted:
            rows.append({"model": result["model"], "protocol": result["protocol"], "kind": e["kind"],
                         "snr_db": float("nan") if e["snr_db"] is None else float(e["snr_db"]),
                         "adabn": bool(e["adabn"]), "seed": int(result["seed"]),
                         **{m: float(e[m]) for m in ("accuracy", "balanced_accuracy", "macro_f1")}})
    return rows


def run_sweep(
    cfg: RunConfig, out_dir: str | Path, *, progress: bool = True, resume: bool = False,
    on_cell: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Run (or finish) the sweep ``cfg.sweep`` in ``out_dir`` and write the aggregate reports.

    Args:
        progress: tqdm bars during training.
        resume: continue a cell whose training was interrupted from its ``last.pt``
            (finished cells are always skipped).
        on_cell: called after each cell with ``{"index", "total", "model", "cell", "status",
            "result"}``, status ``trained`` | ``scored`` | ``skipped`` (the CLI prints from it).
    Returns:
        The tidy results table (``TIDY_COLUMNS``), one row per model × kind × SNR × AdaBN × seed.
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    cells = plan_cells(cfg)
    cache = _PreparedCache()
    rows, results, n_trained = [], [], 0
    for i, cell in enumerate(cells):
        log.info("cell %d/%d: %s %s", i + 1, len(cells), cell.model, cell.cell_id)
        result, status = run_cell(cell, out_dir, cache, resume=resume, progress=progress)
        n_trained += status == "trained"
        rows += tidy_rows(result, cell)
        results.append(result)
        if on_cell is not None:
            on_cell({"index": i + 1, "total": len(cells), "model": cell.model, "cell": cell.cell_id,
                     "status": status, "result": result})
    df = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    write_reports(df, results, cfg, out_dir, wall_s=time.perf_counter() - t0, n_trained=n_trained)
    return df


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


def _confusion_plots(results: list[dict], out_dir: Path) -> list[str]:
    """For each model (first seed, no AdaBN): the lowest SNR of the first kind, and clean."""
    written, seen = [], set()
    for result in results:
        if result["model"] in seen:
            continue
        seen.add(result["model"])
        evals = [e for e in result["evaluations"] if not e["adabn"]]
        noisy = sorted((e for e in evals if e["kind"] != "clean"), key=lambda e: (e["kind"], e["snr_db"]))
        picks = ([noisy[0]] if noisy else []) + [e for e in evals if e["kind"] == "clean"][:1]
        for e in picks:
            cond = "clean" if e["snr_db"] is None else f"{e['kind']}_{_snr_id(e['snr_db'])}dB"
            path = out_dir / f"confusion_{result['model']}_{cond}.png"
            classes = list(e["per_class"])  # class names, in index order
            level = "" if e["snr_db"] is None else f" {e['snr_db']:g} dB"
            title = f"{result['model']}, {e['kind']}{level}, seed {result['seed']}"
            report.plot_confusion(e["confusion"], classes, path, title=title)
            written.append(path.name)
    return written


def write_reports(df: pd.DataFrame, results: list[dict], cfg: RunConfig, out_dir: Path, *,
                  wall_s: float, n_trained: int) -> dict[str, Path]:
    """``results.csv`` (tidy), ``summary.csv/.md/.json`` (mean ± std over seeds),
    ``accuracy_vs_snr.png``, ``confusion_*.png`` and ``sweep.json`` (provenance)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = report.summary_table(df)
    fingerprints = {json.dumps(r.get("data_fingerprint"), sort_keys=True, default=str): r.get("data_fingerprint")
                    for r in results}
    provenance = {"config": config_to_dict(cfg), "seeds": list(cfg.sweep.seeds),
                  "data_fingerprint": list(fingerprints.values()),
                  "code_revision": code_revision(), "versions": library_versions()}
    names = ("results.csv", "summary.csv", "summary.md", "summary.json", "accuracy_vs_snr.png", "sweep.json")
    paths = {name: out_dir / name for name in names}
    _write_csv(df, paths["results.csv"])
    _write_csv(summary, paths["summary.csv"])
    with atomic_write(paths["summary.md"], "w", encoding="utf-8") as fh:
        fh.write(f"# Sweep: protocol {cfg.sweep.protocol}, seeds {list(cfg.sweep.seeds)}\n\n")
        digests = ", ".join(str((f or {}).get("digest")) for f in provenance["data_fingerprint"])
        fh.write(f"Code revision `{provenance['code_revision']}`, data fingerprint `{digests}`. "
                 f"Mean ± std (ddof=1) over seeds; metric in percent of test windows.\n\n")
        fh.write(report.to_markdown(summary))
    write_json(paths["summary.json"], {**provenance, "summary": json.loads(summary.to_json(orient="records"))})
    report.plot_accuracy_vs_snr(df, paths["accuracy_vs_snr.png"])
    confusions = _confusion_plots(results, out_dir)
    write_json(paths["sweep.json"], {**provenance, "machine": machine_info(), "wall_s": round(wall_s, 3),
                                     "cells": [f"cells/{r['model']}/{r['cell']}" for r in results],
                                     "cells_trained": n_trained, "confusion_plots": confusions})
    return paths
