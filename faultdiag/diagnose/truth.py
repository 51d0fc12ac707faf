"""Known labels and speeds for diagnosed files, and how well the verdicts match the labels.

A file's true label, first found wins: the ``--info`` CSV's ``label``; the label the training data's
rule gives it (``data.label_from`` of a ``files`` model applied under the folder passed to
``diagnose``; the state of a HIT-SM name for a ``hitsm`` model; the folder name for a model of
simulated data, whose files ``faultdiag data simulate`` writes in class folders); the label the file
states (CWRU catalogue, a ``label`` variable or attribute). Only a label that is one of the model's
classes counts from the rule or the file, so that a folder named ``week48`` is not a "true" label.

:func:`summarize` turns the rows with a known label into accuracy and a confusion matrix.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from faultdiag.errors import DataError

__all__ = ["InfoTable", "read_info", "truth_rule", "summarize"]


class InfoTable:
    """An ``--info`` CSV (columns ``file`` and ``rpm`` and/or ``label``; paths relative to the CSV)."""

    def __init__(self, path: str | Path) -> None:
        from faultdiag.data.labels import read_file_table

        self.table = read_file_table(path, (), "--info")
        if not {"rpm", "label"} & set(self.table.columns):
            raise DataError(f"The --info file '{path}' needs a column 'rpm' and/or 'label' besides 'file'; got "
                            f"{list(self.table.columns)}.")

    def lookup(self, path: Path) -> tuple[float | None, str | None]:
        """``(rpm, label)`` of ``path`` (None where the CSV has no row or an empty cell)."""
        row = self.table.row(path)
        if row is None:
            return None, None
        rpm = row.get("rpm") or None
        if rpm is not None:
            try:
                rpm = float(rpm)
            except ValueError:
                rpm = math.nan
            if not (math.isfinite(rpm) and rpm > 0):
                raise DataError(f"The --info file '{self.table.path}' gives rpm {row.get('rpm')!r} for "
                                f"'{row['file']}'; it must be a positive number.")
        return rpm, (row.get("label") or None)


def read_info(path: str | Path | None) -> InfoTable | None:
    return InfoTable(path) if path else None


def truth_rule(config: dict[str, Any], class_names: Sequence[str]) -> Callable[[Path, Path | None], tuple[str | None, float | None]]:
    """``rule(path, root) -> (label or None, rpm or None)`` from the training config (module docstring)."""
    from faultdiag.data.hitsm import parse_hitsm_path
    from faultdiag.data.labels import label_of, parse_label_from

    data = (config or {}).get("data", {})
    source = data.get("source")
    classes = set(class_names)
    try:
        rule = parse_label_from(data.get("label_from"), data.get("labels")) if source == "files" else None
    except Exception:  # noqa: BLE001 - a labels CSV gone since training: no rule, the other sources remain
        rule = None
    if source == "hitsm" and data.get("label_from"):
        rule = parse_label_from(data["label_from"], None)

    def apply(path: Path, root: Path | None) -> tuple[str | None, float | None]:
        rel = PurePosixPath(path.relative_to(root).as_posix()) if root is not None else PurePosixPath(path.name)
        label, rpm = None, None
        if source == "hitsm" and (parsed := parse_hitsm_path(path)) is not None:
            label, rpm = parsed[1], float(parsed[2])
        if rule is not None:
            try:
                label = label_of(rule, rel, path)
            except DataError:
                label = None
        elif source == "simulated":
            label = path.parent.name
        return (label if label in classes else None), rpm

    return apply


def summarize(df: pd.DataFrame, class_names: Sequence[str]) -> dict[str, Any] | None:
    """Accuracy and confusion matrix over the diagnosed rows whose ``true`` label is known, else None.

    Returns ``{"n_files", "n_correct", "accuracy", "labels" (confusion row order: the model's
    classes, then other true labels), "predicted" (column order), "confusion" (rows true, columns
    predicted, file counts), "per_class" ({label: {"n", "correct"}})}``.
    """
    if "true" not in df.columns:
        return None
    known = df[df["true"].notna() & df["error"].isna()]
    if known.empty:
        return None
    labels = list(class_names) + sorted(set(known["true"]) - set(class_names))
    cols = list(class_names)
    conf = np.zeros((len(labels), len(cols)), dtype=int)
    for t, p in zip(known["true"], known["predicted"]):
        conf[labels.index(t), cols.index(p)] += 1
    correct = int((known["true"] == known["predicted"]).sum())
    per_class = {lab: {"n": int(conf[i].sum()), "correct": int(conf[i, cols.index(lab)]) if lab in cols else 0}
                 for i, lab in enumerate(labels) if conf[i].sum()}
    return {"n_files": int(len(known)), "n_correct": correct, "accuracy": correct / len(known), "labels": labels,
            "predicted": cols, "confusion": conf.tolist(), "per_class": per_class}
