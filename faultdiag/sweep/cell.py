"""One sweep cell: train it (unless finished), score its conditions, write its ``result.json``.

Every cell lives in ``out_dir/cells/<model>/<cell-id>/`` (checkpoint, training log, resolved
config, ``result.json``). A cell whose ``result.json`` exists with the same training config
(:func:`faultdiag.config.config_diff`) is not trained again, so a killed sweep picks up where it
stopped; evaluations it lacks (new SNRs) are computed from its checkpoint. A data folder that
moved (``data.data_dir`` differs, the data fingerprint does not) counts as the same config.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from faultdiag.config import RunConfig, config_diff, config_to_dict, training_key
from faultdiag.errors import ConfigError, DataError
from faultdiag.evaluate import evaluate_snrs, load_model
from faultdiag.provenance import code_revision, library_versions, write_json
from faultdiag.sweep.plan import Cell

__all__ = ["RESULT_FILE", "PreparedCache", "run_cell", "read_result", "cond_key"]

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


def read_result(path: Path) -> dict | None:
    """A cell's ``result.json``, or ``None`` where it has none yet."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"The sweep result file '{path}' is unreadable ({exc}); "
                        f"delete it to rerun that cell.") from None


def cond_key(kind: str, snr_db: float | None, adabn: bool) -> tuple:
    return (kind, None if snr_db is None else round(float(snr_db), 6), bool(adabn))


class PreparedCache:
    """The last prepared data set, keyed by its data and front-end config (windows are the expensive
    part; :func:`faultdiag.training.prepare` depends on ``cfg.data`` and ``cfg.frontend`` only, so
    every model, kind and seed of a sweep shares one)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.value: Any = None

    def get(self, cfg: RunConfig) -> Any:
        from faultdiag.training import prepare

        d = config_to_dict(cfg)
        key = json.dumps([d["data"], d["frontend"]], sort_keys=True)
        if key != self.key:
            self.key, self.value = None, None  # free the old windows first
            self.value, self.key = prepare(cfg), key
        return self.value


def _data_moved(old: dict, cfg: RunConfig, cache: PreparedCache) -> bool:
    """True if a finished cell differs from ``cfg`` only in ``data.data_dir`` and the data read from
    the new folder has the fingerprint (file names and SHA-256) the cell recorded: data that moved."""
    recorded = (old.get("data_fingerprint") or {}).get("digest")
    saved = json.loads(json.dumps(old.get("training_key", {})))
    saved.get("data", {})["data_dir"] = cfg.data.data_dir
    if recorded is None or config_diff(saved, config_to_dict(cfg)):
        return False
    return getattr(cache.get(cfg), "fingerprint", {}).get("digest") == recorded


def _evaluate(model: torch.nn.Module, prepared: Any, cell: Cell, missing: list[tuple]) -> list[dict]:
    """Score ``missing`` conditions: per AdaBN flag, per kind, clean once."""
    cfg = cell.config
    rows: list[dict] = []
    for adabn in dict.fromkeys(a for _, _, a in missing):
        conds = [(k, s) for k, s, a in missing if a == adabn]
        by_kind: dict[str, list[float]] = {}
        for k, s in conds:
            if k != "clean":
                by_kind.setdefault(k, []).append(s)
        include_clean = any(k == "clean" for k, _ in conds)
        for i, kind in enumerate(list(by_kind) or [cfg.noise.kind]):
            rows += evaluate_snrs(model, prepared, split="test", kinds=(kind,), snrs_db=tuple(by_kind.get(kind, ())),
                                  seed=cell.seed, adabn=adabn, include_clean=include_clean and i == 0,
                                  per=cfg.noise.per, batch_size=cfg.train.eval_batch_size, device=cfg.device)
    return rows


def _train(cell: Cell, cell_dir: Path, cache: PreparedCache, resume: bool, progress: bool) -> tuple[Any, Any, dict]:
    from faultdiag.training import run

    prepared = cache.get(cell.config)
    t0 = time.perf_counter()
    result = run.train_model(cell.config, cell_dir, prepared=prepared, resume=resume, progress=progress)
    info = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "train_wall_s": round(time.perf_counter() - t0, 3)}
    return result.model, prepared, info


def _class_table(prepared: Any, old: dict | None) -> list[dict] | None:
    from faultdiag.training.prepare import Prepared, class_table

    return class_table(prepared) if isinstance(prepared, Prepared) else (old or {}).get("class_table")


def run_cell(cell: Cell, out_dir: Path, cache: PreparedCache, *, resume: bool = False,
             progress: bool = True) -> tuple[dict, str]:
    """Train (unless finished) and score one cell; return its result dict and what was done:
    ``"trained"``, ``"scored"`` (trained before, new conditions scored) or ``"skipped"``."""
    cell_dir = cell.directory(out_dir)
    old = read_result(cell_dir / RESULT_FILE)
    changes = "; ".join(config_diff(old.get("training_key", {}), config_to_dict(cell.config))[:5]) if old else ""
    if changes and _data_moved(old, cell.config, cache):
        log.info("%s: data.data_dir moved to %r; same data fingerprint, the cell stands", cell_dir, cell.config.data.data_dir)
        changes = ""
    if changes:
        raise ConfigError(f"The sweep cell '{cell_dir}' was trained with a different config ({changes}); "
                          f"use a new --out folder or delete that cell.")
    done = {cond_key(e["kind"], e["snr_db"], e["adabn"]): e for e in (old or {}).get("evaluations", [])}
    missing = [c for c in cell.conditions if cond_key(*c) not in done]
    if old is not None and not missing:
        return old, "skipped"
    if old is None:
        model, prepared, info = _train(cell, cell_dir, cache, resume, progress)
    else:  # trained before; only new conditions to score
        if cell.config.train.threads:
            torch.set_num_threads(cell.config.train.threads)
        model, prepared = load_model(cell_dir / "checkpoint.pt")[0], cache.get(cell.config)
        info = {k: old.get(k) for k in ("best_epoch", "epochs_run", "train_wall_s")}
    for row in _evaluate(model, prepared, cell, missing):
        done[cond_key(row["kind"], row["snr_db"], row["adabn"])] = row
    result = {
        "model": cell.model, "protocol": cell.config.sweep.protocol, "cell": cell.cell_id, "seed": cell.seed,
        "task": cell.task, "adapt": cell.config.adapt.method,
        **info, "config": config_to_dict(cell.config), "training_key": training_key(cell.config),
        "data_fingerprint": getattr(prepared, "fingerprint", None), "class_table": _class_table(prepared, old),
        "front_end": prepared.inputs.front_end.to_dict(),
        "band_choice": prepared.band_choice.to_dict() if prepared.band_choice is not None else None,
        "code_revision": code_revision(),
        "versions": library_versions(), "evaluations": list(done.values()),
    }
    write_json(cell_dir / RESULT_FILE, result)
    return result, "trained" if old is None else "scored"
