"""The HIT-SM bearing data (Harbin Institute of Technology): rig, speed and state from the path.

Layout (as published in ``hitwzc/Bearing-datasets``, folder names in any spelling)::

    <data_dir>/<rig>/<state>_<rpm>.mat      e.g. spectraquest_mfs/IR2_600.mat, self_built/Normal_1200.mat

``rig`` is the folder name, lower case, non-alphanumerics as ``_`` and a trailing ``_dataset``
dropped (``SpectraQuest MFS dataset`` → ``spectraquest_mfs``, ``Self-built dataset`` →
``self_built``). ``state``: ``Normal``, ``IR2``/``IR5``/``IR8``, ``OR2``/``OR5``/``OR8`` (inner- or
outer-race defect over 2, 5 or 8 degrees of the raceway). Each file holds one 262,144-sample
vector whose variable name varies from file to file; it is read as channel ``acc``. The rate,
51.2 kHz, is stated in the data set's read-me only, not in the files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Sequence

from faultdiag.data.recording import Recording
from faultdiag.errors import DataError

__all__ = ["HITSM_FS_HZ", "HITSM_STATES", "HitsmFile", "parse_hitsm_path", "find_hitsm", "read_hitsm"]

log = logging.getLogger(__name__)

HITSM_FS_HZ = 51200.0
HITSM_STATES = ("Normal", "IR2", "IR5", "IR8", "OR2", "OR5", "OR8")

_NAME = re.compile(r"^(normal|ir[258]|or[258])_(\d+)\.mat$", re.IGNORECASE)


@dataclass(frozen=True)
class HitsmFile:
    """One HIT-SM file: ``path``, ``key`` (relative to the data folder), ``rig``, ``state``, ``rpm``."""

    path: Path
    key: str
    rig: str
    state: str
    rpm: int


def rig_name(folder: str) -> str:
    """``"SpectraQuest MFS dataset"`` → ``"spectraquest_mfs"``."""
    name = re.sub(r"[^a-z0-9]+", "_", folder.lower()).strip("_")
    return re.sub(r"_dataset$", "", name)


def parse_hitsm_path(path: str | Path) -> tuple[str, str, int] | None:
    """``(rig, state, rpm)`` from a HIT-SM path, or None when its name is not ``<state>_<rpm>.mat``."""
    path = Path(path)
    match = _NAME.match(path.name)
    if match is None:
        return None
    state = next(s for s in HITSM_STATES if s.lower() == match.group(1).lower())
    return rig_name(path.parent.name), state, int(match.group(2))


def find_hitsm(data_dir: str | Path, rigs: Sequence[str] = (), speeds_rpm: Sequence[int] = ()) -> list[HitsmFile]:
    """The HIT-SM files under ``data_dir``, keeping ``rigs`` and ``speeds_rpm`` (empty = all), sorted.

    Raises:
        DataError: the folder is missing or holds no HIT-SM file; a rig or speed asked for is absent.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"The HIT-SM folder '{root}' (data.data_dir) does not exist; point data.data_dir at the "
                        "folder holding the rig folders (spectraquest_mfs/, self_built/).")
    found = []
    for path in sorted(root.rglob("*.mat")):
        parsed = parse_hitsm_path(path)
        if parsed is not None:
            key = PurePosixPath(path.relative_to(root).as_posix()).as_posix()
            found.append(HitsmFile(path, key, *parsed))
    if not found:
        raise DataError(f"No HIT-SM file (<rig>/<state>_<rpm>.mat, state one of {list(HITSM_STATES)}) under '{root}'.")
    all_rigs, all_speeds = sorted({f.rig for f in found}), sorted({f.rpm for f in found})
    wanted_rigs = [rig_name(r) for r in rigs]
    for name, wanted, present in (("data.rigs", wanted_rigs, all_rigs), ("data.speeds_rpm", list(speeds_rpm), all_speeds)):
        missing = [w for w in wanted if w not in present]
        if missing:
            raise DataError(f"The '{name}' parameter names {missing}, which '{root}' does not hold; it holds {present}.")
    return [f for f in found if (not wanted_rigs or f.rig in wanted_rigs) and (not speeds_rpm or f.rpm in speeds_rpm)]


def read_hitsm(file: HitsmFile, label: str | None = None) -> Recording:
    """One HIT-SM recording at 51.2 kHz, channel ``acc``, labelled with its state (or ``label``), with
    ``rig``, ``rpm`` and ``state`` in its metadata."""
    from faultdiag.data.readers import read_recording

    rec = read_recording(file.path, fs_hz=HITSM_FS_HZ)
    if rec.signal.shape[0] != 1:
        raise DataError(f"The HIT-SM file '{file.path}' holds {rec.signal.shape[0]} signals ({list(rec.channels)}); "
                        "expected one vector.")
    meta = dict(rec.meta, rig=file.rig, rpm=float(file.rpm), rpm_source="file name", state=file.state,
                variable=rec.channels[0], key=file.key)
    return replace(rec, channels=("acc",), label=label or file.state, meta=meta)
