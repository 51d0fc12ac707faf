"""``faultdiag models``: the model zoo, with parameter counts and MACs per input."""

from __future__ import annotations

import argparse
import json

# One input per preset: (shape without batch axis, classes).
PRESET_INPUTS = {
    "paper": ((1, 2048), 10),
    "seed-mnist": ((1, 28, 28), 10),
    "wide": ((1, 2048), 10),
}
ANCHOR_INPUT = ((1, 2048), 10)  # the WDCNN / TICNN papers' windows; the anchors have no presets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the models and presets with their size and cost",
        description="List every model x preset with its parameter count and multiply-accumulates "
                    "(Conv/Linear only) for one input: paper and wide 1x2048, seed-mnist 1x28x28; then "
                    "the anchors wdcnn and ticnn (no presets) once each for 1x2048; 10 classes.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def model_table() -> list[dict]:
    """One row per shrinkage model x preset, then one per anchor (preset None): model, preset,
    dims, input, classes, params, macs."""
    from faultdiag.models.networks import ANCHOR_NAMES, PRESETS, SHRINKAGE_NAMES, build_model, model_summary

    cases = [(name, preset, *PRESET_INPUTS.get(preset, ((1, 2048), 10)))
             for preset in PRESETS for name in SHRINKAGE_NAMES]
    cases += [(name, None, *ANCHOR_INPUT) for name in ANCHOR_NAMES]
    rows = []
    for name, preset, shape, classes in cases:
        kwargs = {"preset": preset} if preset is not None else {}
        model = build_model(name, dims=len(shape) - 1, num_classes=classes, seed=0, **kwargs)
        rows.append({"model": name, "preset": preset, "dims": len(shape) - 1,
                     "input": "x".join(map(str, shape)), "classes": classes, **model_summary(model, shape)})
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'model':<9} {'preset':<11} {'input':<9} {'params':>9} {'MACs':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<9} {r['preset'] or '-':<11} {r['input']:<9} {r['params']:>9,} {r['macs']:>12,}")
    return 0
