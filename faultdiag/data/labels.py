"""Where a recording's class label comes from (``data.label_from``), and warnings when labels look wrong.

Rules, applied to each file's path *relative to its data root* (the folder named in ``data.paths``,
or ``data.data_dir``):

- ``parent`` (default without ``data.labels``): the folder the file sits in;
- ``folder:N``: the N-th folder below the root (``folder:1`` is the first level); negative N counts
  up from the file (``folder:-1`` is ``parent``, ``folder:-2`` the folder above it);
- ``regex:<pattern>``: the named group ``label`` (else group 1) of the pattern searched in the
  relative path, written with ``/`` (``regex:^(?P<label>[A-Za-z]+)\\d*_`` labels ``rig/IR2_600.mat``
  as ``IR``); a file the pattern does not match is an error;
- ``csv`` (default with ``data.labels``): the ``label`` column of the CSV file ``data.labels``
  (columns ``file,label``). Its ``file`` entries are paths relative to the folder of the CSV itself
  (or absolute); a bare file name matches a file of that name anywhere, as long as only one has it.
  The CSV may sit inside the data folder: it is never read as a recording.

:func:`label_warnings` looks at the labels a layout gives and says when they look wrong.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from faultdiag.errors import ConfigError, DataError

__all__ = ["LabelRule", "FileTable", "parse_label_from", "label_of", "read_file_table", "label_warnings"]


@dataclass(frozen=True)
class FileTable:
    """A CSV with a ``file`` column: rows by resolved path and, for bare names, by name."""

    path: Path
    by_path: dict[Path, dict[str, str]]
    by_name: dict[str, dict[str, str]]
    columns: tuple[str, ...]
    used_names: Counter = field(default_factory=Counter, compare=False)

    def row(self, file: Path) -> dict[str, str] | None:
        """The row of ``file``: by its resolved path, else by its bare name."""
        hit = self.by_path.get(file.resolve())
        if hit is None and file.name in self.by_name:
            self.used_names[file.name] += 1
            hit = self.by_name[file.name]
        return hit

    def ambiguous_names(self) -> list[str]:
        """Bare names in the CSV that matched more than one file (call after every lookup)."""
        return sorted(n for n, count in self.used_names.items() if count > 1)


def read_file_table(path: str | Path, required: Sequence[str], where: str) -> FileTable:
    """Read a CSV with a ``file`` column and the ``required`` columns (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"The file '{path}' ({where}) does not exist.") from None
    columns = tuple(c.strip() for c in (rows[0].keys() if rows else ()))
    need = ("file", *required)
    if not rows or not set(need) <= set(columns):
        raise DataError(f"The file '{path}' ({where}) must be a CSV with columns {', '.join(need)}; "
                        f"got {list(columns) if rows else 'no rows'}.")
    by_path, by_name = {}, {}
    for row in rows:
        clean = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name = clean["file"]
        if "/" in name or "\\" in name or (path.parent / name).exists():
            target = Path(name) if Path(name).is_absolute() else path.parent / name
            by_path[target.resolve()] = clean
        elif name in by_name:
            raise DataError(f"The file '{path}' ({where}) lists '{name}' twice; give paths relative to the CSV.")
        else:
            by_name[name] = clean
    return FileTable(path, by_path, by_name, columns)


@dataclass(frozen=True)
class LabelRule:
    """A parsed ``data.label_from``: ``kind`` is ``parent``, ``folder``, ``regex`` or ``csv``."""

    kind: str
    level: int = -1
    pattern: re.Pattern | None = None
    table: FileTable | None = None

    def describe(self) -> str:
        if self.kind == "folder":
            return f"folder:{self.level}"
        if self.kind == "regex":
            return f"regex:{self.pattern.pattern}"
        return f"csv {self.table.path}" if self.kind == "csv" else "parent"


def parse_label_from(text: str | None, labels_csv: str | None = None) -> LabelRule:
    """The rule ``text`` names (None: ``csv`` when ``labels_csv`` is given, else ``parent``)."""
    if text is None:
        text = "csv" if labels_csv else "parent"
    head, _, rest = str(text).partition(":")
    head = head.strip().lower()
    if head == "parent" and not rest:
        return LabelRule("parent")
    if head == "folder":
        try:
            level = int(rest)
        except ValueError:
            level = 0
        if level == 0:
            raise ConfigError(f"The 'data.label_from' value 'folder:N' needs a non-zero int N (1 = first folder "
                              f"below the data root, -1 = the file's own folder); got {text!r}.")
        return LabelRule("folder", level=level)
    if head == "regex":
        try:
            pattern = re.compile(rest)
        except re.error as exc:
            raise ConfigError(f"The 'data.label_from' regex {rest!r} does not compile: {exc}.") from None
        if "label" not in pattern.groupindex and pattern.groups < 1:
            raise ConfigError(f"The 'data.label_from' regex {rest!r} needs a group (?P<label>...) or (...).")
        return LabelRule("regex", pattern=pattern)
    if head == "csv" and not rest:
        if not labels_csv:
            raise ConfigError("The 'data.label_from' value 'csv' needs 'data.labels', a CSV with columns file,label.")
        return LabelRule("csv", table=read_file_table(labels_csv, ("label",), "data.labels"))
    raise ConfigError(f"The 'data.label_from' parameter must be 'parent', 'folder:N', 'regex:<pattern>' or 'csv'; "
                      f"got {text!r}.")


def label_of(rule: LabelRule, rel: PurePosixPath, path: Path) -> str:
    """The label of the file ``path`` whose path relative to its data root is ``rel``.

    Raises:
        DataError: the rule gives no label for this file (named, with the rule).
    """
    folders = rel.parts[:-1]
    if rule.kind == "parent":
        return path.parent.name if not folders else folders[-1]
    if rule.kind == "folder":
        idx = rule.level - 1 if rule.level > 0 else len(folders) + rule.level
        if not 0 <= idx < len(folders):
            raise DataError(f"The file '{path}' lies {len(folders)} folder(s) below its data root, so "
                            f"data.label_from = 'folder:{rule.level}' gives it no label.")
        return folders[idx]
    if rule.kind == "regex":
        match = rule.pattern.search(rel.as_posix())
        label = (match.group("label") if "label" in rule.pattern.groupindex else match.group(1)) if match else None
        if not label:
            raise DataError(f"The file '{rel.as_posix()}' (in {path.parent}) does not match data.label_from = "
                            f"'regex:{rule.pattern.pattern}' (or its label group is empty).")
        return label
    row = rule.table.row(path)
    if row is None or not row.get("label"):
        raise DataError(f"The file '{path}' has no row in the labels file '{rule.table.path}' (data.labels); add a "
                        "row 'file,label' for it (file relative to the CSV's folder).")
    return row["label"]


def _tokens(stem: str) -> set[str]:
    parts = [p for p in re.split(r"[^A-Za-z0-9@.]+", stem.lower()) if p]
    return set(parts) | {m for p in parts for m in re.findall(r"[a-z]+", p)}


def label_warnings(entries: Sequence[tuple[PurePosixPath, str]], rule: LabelRule) -> list[str]:
    """Warnings about labels that look wrong for ``entries`` ``(path relative to root, label)``.

    Checked: a single label; the same file names under several labels while the names differ in
    words within a label (the labels look like a grouping, e.g. rigs, and the names like classes;
    ``1.mat``, ``2.mat`` in every class folder is fine); every class holding files whose names carry
    another class's name; every label also naming folders at another depth of the layout.
    """
    if not entries:
        return []
    labels = sorted({lab for _, lab in entries})
    how = f"data.label_from = '{rule.describe()}'"
    out = []
    if len(labels) == 1:
        out.append(f"every recording got the label '{labels[0]}' ({how}); training needs two classes or more.")
        return out
    under: dict[str, set[str]] = defaultdict(set)
    words: dict[str, set[frozenset]] = defaultdict(set)  # the words in names, per label
    for rel, lab in entries:
        under[rel.name].add(lab)
        words[lab].add(frozenset(re.findall(r"[a-z]+", PurePosixPath(rel.name).stem.lower())))
    shared = [n for n, labs in under.items() if len(labs) > 1]
    names_say_more = any(len(w) > 1 for w in words.values())  # not just 1.mat, 2.mat ... in every class
    if names_say_more and len(shared) * 2 >= len(under):
        example = shared[0]
        out.append(f"{len(shared)} of {len(under)} file names (e.g. '{example}') occur under several labels "
                   f"{sorted(under[example])} ({how}): the labels look like a grouping (rig, session, speed), not "
                   "classes; if the class is in the file name, use data.label_from = 'regex:<pattern>'.")
    lower = {lab.lower(): lab for lab in labels}
    carrying: dict[str, tuple[str, str]] = {}
    for rel, lab in entries:
        others = [lower[t] for t in _tokens(PurePosixPath(rel.name).stem) if t in lower and lower[t] != lab]
        if others and lab not in carrying:
            carrying[lab] = (rel.as_posix(), others[0])
    if len(carrying) == len(labels):
        ex_lab, (ex_path, ex_other) = next(iter(carrying.items()))
        out.append(f"every class holds files whose names carry another class's name (e.g. '{ex_path}' is labelled "
                   f"'{ex_lab}' but its name says '{ex_other}'; {how}): are the labels taken from the right place?")
    if rule.kind in ("parent", "folder"):
        elsewhere = set()
        for rel, lab in entries:
            folders = rel.parts[:-1]
            k = len(folders) - 1 if rule.kind == "parent" else (rule.level - 1 if rule.level > 0 else len(folders) + rule.level)
            elsewhere |= {f for i, f in enumerate(folders) if i != k}
        if set(labels) <= elsewhere:
            out.append(f"every label also names folders at another depth of the layout ({how}): the labels may come "
                       "from the wrong folder level; see data.label_from = 'folder:N'.")
    return out


def describe_entries(entries: Sequence[tuple[Any, str]]) -> str:
    """``"IR (6), Normal (3)"``: labels and their file counts."""
    counts = Counter(lab for _, lab in entries)
    return ", ".join(f"{lab} ({n})" for lab, n in sorted(counts.items()))
