"""Download the public data sets (CWRU, MNIST) with resume, progress bar and SHA-256 checks.

Checksum policy: a file is kept only when its SHA-256 equals the published one. CWRU publishes
no checksums; the catalogue carries the SHA-256 of the 61 files verified in
../shared/data/MANIFEST.md. A file without a known checksum is refused unless
``allow_unverified=True`` (CLI ``--allow-unverified``); it is then kept and its SHA-256 logged
at WARNING level so it can be pinned. By default :func:`download_dataset` fetches only files
with a known checksum. urllib only: no extra dependency.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import file_sha256

__all__ = ["RemoteFile", "DATASETS", "download_file", "download_dataset"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 16
_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name under the mirror's base URL and its SHA-256 (None: unknown)."""

    name: str
    sha256: str | None


def _cwru_files() -> tuple[RemoteFile, ...]:
    from faultdiag.data.cwru_catalogue import catalogue

    df = catalogue()
    return tuple(RemoteFile(f"{n}.mat", sha or None) for n, sha in zip(df.number, df.sha256))


_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: name -> {"mirrors": base URLs tried in order, "files": RemoteFile tuple (CWRU: every catalogue number)}
DATASETS: dict[str, dict] = {
    "cwru": {
        "mirrors": ("https://engineering.case.edu/sites/default/files/",),
        "files": _cwru_files(),
    },
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        "files": tuple(RemoteFile(n, s) for n, s in _MNIST_SHA256.items()),
    },
}


def _fetch(url: str, part: Path, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range from its current size)."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "faultdiag"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to fetch: the part is complete
            return
        raise DataError(f"Could not download {url}: HTTP {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"Could not download {url}: {getattr(exc, 'reason', exc)}.") from None
    with resp:
        if start and resp.status != 206:  # the server ignored the range: start again
            log.info("%s does not resume downloads; fetching it whole.", url)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length else None
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
        ) as bar:
            try:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
            except OSError as exc:
                raise DataError(f"Download of {url} broke off ({exc}); run again to resume.") from None


def download_file(
    url: str, dest: str | Path, sha256: str | None, *, progress: bool = True, allow_unverified: bool = False
) -> Path:
    """Download ``url`` to ``dest``, verified, atomically; returns ``dest``.

    The bytes go to ``dest.part`` first; an existing ``.part`` is resumed with an HTTP Range
    request. The finished file must have SHA-256 ``sha256``: otherwise ``.part`` is removed
    and :class:`DataError` names the file, the expected and the actual checksum. Then it is
    renamed to ``dest``. A ``dest`` already present with the right checksum is not fetched again.
    ``sha256=None`` (unknown) is refused unless ``allow_unverified`` (see module doc).
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if expected is None and not allow_unverified:
        raise ConfigError(f"No published SHA-256 for {dest.name} ({url}); refusing an unverifiable download. "
                          "Pass allow_unverified=True (CLI --allow-unverified) to accept it.")
    if dest.exists():
        got = file_sha256(dest)
        if expected is None or got == expected:
            log.info("%s is already present%s; skipped.", dest, "" if expected is None else " and verified")
            return dest
        raise DataError(f"{dest} is present but its SHA-256 is {got}, not the expected {expected}; "
                        "delete it to download it again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, progress)
    got = file_sha256(part)
    if expected is not None and got != expected:
        part.unlink()
        raise DataError(f"Downloaded {dest.name} from {url} has SHA-256 {got}, expected {expected}; "
                        "the file was removed.")
    if expected is None:
        log.warning("Kept %s without a published checksum; its SHA-256 is %s.", dest.name, got)
    os.replace(part, dest)
    return dest


def _select(name: str, spec: dict, files: Sequence[str] | None, allow_unverified: bool) -> list[RemoteFile]:
    if files is None:
        return [f for f in spec["files"] if f.sha256 or allow_unverified]
    by_name = {f.name: f for f in spec["files"]}
    wanted = [f"{f}.mat" if f.isdigit() else f for f in map(str, files)]
    unknown = [f for f in wanted if f not in by_name]
    if unknown:
        raise ConfigError(f"The 'files' parameter names {unknown}, which the '{name}' data set does not have.")
    return [by_name[f] for f in wanted]


def download_dataset(
    name: str,
    dest: str | Path,
    base_url: str | Sequence[str] | None = None,
    files: Sequence[str] | None = None,
    *,
    progress: bool = True,
    allow_unverified: bool = False,
) -> list[Path]:
    """Download data set ``name`` (a key of :data:`DATASETS`) into folder ``dest``.

    Args:
        base_url: mirror base URL(s) to use instead of the data set's own, tried in order.
        files: file names to fetch (for CWRU also numbers: ``97`` or ``"97.mat"``); default:
            every file with a known checksum (all of them with ``allow_unverified``).

    Returns the paths of the files, in order. Each file is tried at every mirror in turn; a file
    no mirror could deliver is reported in one :class:`DataError` after the others were fetched.
    """
    if name not in DATASETS:
        raise ConfigError(f"The data set name must be one of {sorted(DATASETS)}; got {name!r}.")
    spec = DATASETS[name]
    mirrors = [base_url] if isinstance(base_url, str) else list(base_url or spec["mirrors"])
    dest = Path(dest)
    paths, failures = [], []
    for remote in _select(name, spec, files, allow_unverified):
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + remote.name
            try:
                paths.append(download_file(url, dest / remote.name, remote.sha256, progress=progress,
                                           allow_unverified=allow_unverified))
                break
            except DataError as exc:
                log.warning("%s", exc)
                errors.append(str(exc))
        else:
            failures.append(f"{remote.name}: " + " | ".join(errors))
    if failures:
        raise DataError(f"Could not download {len(failures)} file(s) of '{name}' into {dest}:\n" + "\n".join(failures))
    return paths
