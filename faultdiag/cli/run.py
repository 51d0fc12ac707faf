"""``faultdiag train``, ``faultdiag evaluate`` and ``faultdiag sweep``: the experiment commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from faultdiag.config import NOISE_KINDS

_CONFIG_HELP = ("TOML run config with sections [data], [noise], [model], [train], [sweep] and top-level "
                "seed/device (e.g. configs/quickstart.toml). Without it the built-in defaults are used.")
_SET_HELP = ("override one config key, SECTION.KEY=VALUE in TOML syntax; repeatable. Examples: "
             "--set train.epochs=5 --set sweep.snrs_db=[-4,0,4] --set model.name=resnet. "
             "Command line > config file > defaults. An unknown key is an error that lists the valid keys.")
_DEVICE_HELP = "where to run: auto (CUDA when available, else CPU), cpu or cuda"
_PROGRESS_HELP = "no progress bars (for logs and CI)"


def _common(p: argparse.ArgumentParser, *, out_help: str, seed_help: str, resume_help: str | None) -> None:
    p.add_argument("--config", metavar="TOML", help=_CONFIG_HELP)
    p.add_argument("--out", metavar="DIR", help=out_help)
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help=_SET_HELP)
    p.add_argument("--seed", type=int, metavar="N", help=seed_help)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help=_DEVICE_HELP + " (default: the config's device)")
    if resume_help:
        p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--no-progress", action="store_true", help=_PROGRESS_HELP)


def register(subparsers: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("train", formatter_class=fmt, help="train one model from a config", description=(
        "Train the config's [model] on the config's [data] with [noise] training noise and [train]\n"
        "settings. Writes DIR/checkpoint.pt (best validation epoch), DIR/last.pt (for --resume),\n"
        "DIR/train_log.csv, the resolved config and DIR/metrics.json (clean test metrics)."),
        epilog="example: faultdiag train --config configs/quickstart.toml --set model.name=resnet --out runs/resnet")
    _common(p, out_help="output folder (default: runs/train-<config name>)",
            seed_help="seed of weights, batch order and noise (overrides the config's seed)",
            resume_help=("continue an interrupted training from DIR/last.pt (model, optimiser and RNG states, "
                         "epoch), giving the same result as an uninterrupted run; the config must be the same"))
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("evaluate", formatter_class=fmt, help="score a checkpoint at a list of SNRs", description=(
        "Score a trained checkpoint on the test split of the config's data (the checkpoint's own\n"
        "config when --config is not given), clean and with noise of each kind at each SNR. Noise\n"
        "is drawn from a generator seeded by (seed, kind, SNR): numbers repeat exactly. Inputs are\n"
        "normalised with the checkpoint's own normalisation statistics."),
        epilog="example: faultdiag evaluate --model runs/resnet/checkpoint.pt --snrs -4 0 4 --kinds gaussian pink --adabn")
    p.add_argument("--model", required=True, nargs="+", metavar="CKPT", help=(
        "checkpoint file written by train or sweep; several: their ensemble (mean class probabilities), "
        "e.g. the seeds of one model"))
    _common(p, out_help="output folder (default: <checkpoint folder>/evaluation)",
            seed_help="seed of the evaluation noise (default: the config's seed)", resume_help=None)
    p.add_argument("--snrs", nargs="+", type=float, metavar="DB", help="SNRs in dB (default: the config's sweep.snrs_db)")
    p.add_argument("--kinds", nargs="+", choices=NOISE_KINDS, help="noise kinds (default: sweep.kinds)")
    p.add_argument("--adabn", action="store_true", help=(
        "also score with AdaBN: BatchNorm statistics re-estimated on each unlabelled noisy test set "
        "(rows marked +AdaBN next to the plain ones)"))
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split to score (default: test)")
    p.set_defaults(func=_cmd_evaluate)

    p = subparsers.add_parser("sweep", formatter_class=fmt, help="train and score models x noise kinds x SNRs x seeds", description=(
        "Run the config's [sweep]: sweep.models x sweep.kinds x sweep.snrs_db x sweep.seeds under\n"
        "sweep.protocol 'train-clean' (train once per model and seed, test at every SNR) or 'matched'\n"
        "(train and test at each SNR), with and without AdaBN as sweep.adabn says. One sub-folder per\n"
        "training in DIR/cells/; finished cells are skipped, so rerunning a killed sweep finishes it.\n"
        "Writes results.csv (tidy), summary.csv/.md/.json (mean +- std over seeds),\n"
        "accuracy_vs_snr.png (cross-domain: accuracy_per_task.png), confusion_*.png and sweep.json\n"
        "(config, data fingerprint, revision)."),
        epilog="example: faultdiag sweep --config configs/quickstart.toml --out runs/quick")
    _common(p, out_help="output folder (default: runs/sweep-<config name>)",
            seed_help="run this one seed instead of sweep.seeds",
            resume_help=("also continue a cell whose training was interrupted from its last.pt (finished "
                         "cells are always skipped; without --resume an unfinished cell trains afresh)"))
    p.add_argument("--jobs", type=int, default=1, metavar="N", help=(
        "train N cells at a time, each in its own process with one CPU thread (or sharing the GPU); "
        "finished cells are skipped. Default 1: cells in turn, in this process"))
    p.set_defaults(func=_cmd_sweep)


def _load(args: argparse.Namespace, base: dict | None = None) -> Any:
    """The run config: defaults < file (or ``base``, a saved config) < --set < --seed/--device."""
    from faultdiag.config import config_from_dict, load_config

    if args.config is None and base is not None:
        cfg = config_from_dict(base, where=f"the config saved in {args.model[0]}", overrides=args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
    if args.device is not None:
        cfg = dataclasses.replace(cfg, device=args.device)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    return cfg


def _out_dir(args: argparse.Namespace, command: str) -> Path:
    if args.out:
        return Path(args.out)
    return Path("runs") / f"{command}-{Path(args.config).stem if args.config else 'defaults'}"


def format_class_table(rows: list[dict[str, Any]]) -> str:
    """:func:`faultdiag.training.prepare.class_table` as aligned text: class, then recordings/windows per split."""
    head = ["class", "recordings (train/val/test)", "windows train", "val", "test"]
    body = [[r["class"], f"{r['recordings_train']}/{r['recordings_val']}/{r['recordings_test']}",
             str(r["windows_train"]), str(r["windows_val"]), str(r["windows_test"])] for r in rows]
    total = ["total", "", *(str(sum(r[f"windows_{s}"] for r in rows)) for s in ("train", "val", "test"))]
    cells = [head, *body, total]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(head))).rstrip()
                     for c in cells)


def _print_classes(prepared: Any) -> None:
    """What the training will see: rate, window, channels and the per-class table (before training)."""
    from faultdiag.training.prepare import class_table

    inputs = prepared.inputs
    print(f"data: {len(prepared.class_names)} classes at {inputs.fs_hz:g} Hz, windows of {inputs.window_len} samples "
          f"({inputs.window_len / inputs.fs_hz * 1000:.3g} ms), channels {list(inputs.channels)}")
    print(format_class_table(class_table(prepared)), flush=True)


def _print_table(df: pd.DataFrame) -> None:
    from faultdiag import report

    print(report.to_text(report.summary_table(df)))


def _cmd_train(args: argparse.Namespace) -> int:
    from faultdiag.distributed import context_from_env
    from faultdiag.evaluate import score_training, tidy
    from faultdiag.training import train_model

    from faultdiag.training.prepare import prepare

    cfg = _load(args)
    out = _out_dir(args, "train")
    prepared = prepare(cfg)
    if context_from_env().is_main:
        _print_classes(prepared)
    result = train_model(cfg, out, prepared=prepared, resume=args.resume, progress=not args.no_progress)
    if not context_from_env().is_main:  # torchrun: rank 0 scores and writes the results
        return 0
    rows = score_training(result, cfg, out)
    print(f"trained {cfg.model.name}: best epoch {result.best_epoch} of {len(result.history)} run")
    _print_table(tidy(rows, cfg.model.name, "train"))
    print(f"\ncheckpoint: {result.checkpoint_path}\nlog:        {out / 'train_log.csv'}\nmetrics:    {out / 'metrics.json'}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from faultdiag.checkpoint import load_checkpoint
    from faultdiag.evaluate import evaluate_checkpoint

    ckpt = load_checkpoint(args.model[0])
    cfg = _load(args, base=ckpt.config)
    out = Path(args.out) if args.out else Path(args.model[0]).parent / "evaluation"
    kinds, snrs = tuple(args.kinds or cfg.sweep.kinds), tuple(args.snrs if args.snrs is not None else cfg.sweep.snrs_db)
    df, rows = evaluate_checkpoint(args.model, cfg, out, kinds=kinds, snrs_db=snrs, adabn=args.adabn, split=args.split)
    models = args.model[0] if len(args.model) == 1 else f"{len(args.model)} checkpoints (ensemble)"
    print(f"{ckpt.model_name} from {models} on the {args.split} split ({rows[0]['n']} windows):")
    _print_table(df)
    print(f"\nwrote {out / 'evaluation.csv'}, {out / 'evaluation.json'}, {out / 'accuracy_vs_snr.png'}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from faultdiag.sweep import run_sweep
    from faultdiag.sweep.cell import PreparedCache
    from faultdiag.sweep.reports import plot_name

    cfg = _load(args)
    cache = PreparedCache()
    _print_classes(cache.get(cfg))
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, sweep=dataclasses.replace(cfg.sweep, seeds=(args.seed,)))
    out = _out_dir(args, "sweep")

    def on_cell(info: dict) -> None:
        state = {"trained": "trained and scored", "scored": "new conditions scored from its checkpoint",
                 "skipped": "finished before, skipped", "failed": f"FAILED: {info.get('error')}"}[info["status"]]
        print(f"[{info['index']}/{info['total']}] {info['model']} {info['cell']}: {state}", file=sys.stderr, flush=True)

    df = run_sweep(cfg, out, progress=not args.no_progress, resume=args.resume, on_cell=on_cell, jobs=args.jobs,
                   cache=cache)
    print(f"sweep: protocol {cfg.sweep.protocol}, models {', '.join(cfg.sweep.models)}, seeds {list(cfg.sweep.seeds)}")
    _print_table(df)
    print(f"\nresults: {out / 'results.csv'}, {out / 'summary.md'}\nplot:    {out / plot_name(cfg)}\n"
          f"cells:   {out / 'cells'}")
    return 0
