"""MNIST in its original IDX files (gzip-compressed or raw).

IDX layout (big-endian): two zero bytes, a type code (``0x08`` = unsigned byte), the number of
dimensions ``d``, then ``d`` int32 sizes, then the data in C order. MNIST images have magic 2051
(``0x00000803``, shape ``(N, 28, 28)``), labels magic 2049 (``0x00000801``, shape ``(N,)``).
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faultdiag.errors import DataError

log = logging.getLogger(__name__)

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# Role → file stem; each may sit in the folder as ``<stem>.gz`` or as raw ``<stem>``.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"Cannot read IDX file '{path}': {exc.strerror or exc}.") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"IDX file '{path}' is a damaged or truncated gzip stream: {exc}.") from exc


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw, detected by its first bytes) into a numpy array.

    Returns an array of the header's shape, e.g. ``(N, 28, 28)`` uint8 for MNIST images, ``(N,)``
    uint8 for labels. Raises ``DataError`` naming the file when the magic number is not an IDX
    one (or not ``expected_magic``) or the data are shorter or longer than the header says.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"IDX file '{path}' is too short for a header: {len(data)} bytes.")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"File '{path}' is not an IDX file: magic number {magic} (0x{magic:08x}).")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"IDX file '{path}' has magic number {magic}; expected {expected_magic}.")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"IDX file '{path}' is truncated inside its header ({len(data)} bytes).")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected_len = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_len:
        what = "truncated" if len(data) < expected_len else "longer than its header says"
        raise DataError(
            f"IDX file '{path}' is {what}: header shape {shape} needs {expected_len} bytes; "
            f"got {len(data)}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


@dataclass(frozen=True)
class MnistData:
    """The four MNIST arrays and the files they came from.

    ``train_images`` ``(60000, 28, 28)`` uint8, ``train_labels`` ``(60000,)`` int64,
    ``test_images`` ``(10000, 28, 28)`` uint8, ``test_labels`` ``(10000,)`` int64;
    ``files`` maps each role (``train_images``, ...) to its path.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    files: dict[str, Path] = field(default_factory=dict)

    def file_sha256s(self) -> dict[str, str]:
        """SHA-256 of each source file, keyed by file name (the data fingerprint)."""
        from faultdiag.provenance import file_sha256

        return {path.name: file_sha256(path) for path in self.files.values()}


def find_mnist_files(data_dir: str | os.PathLike) -> dict[str, Path] | None:
    """Paths of the four IDX files in ``data_dir`` (``.gz`` preferred), or None if any is missing."""
    data_dir = Path(data_dir)
    found = {}
    for role, stem in MNIST_FILES.items():
        candidates = [data_dir / f"{stem}.gz", data_dir / stem, data_dir / stem.replace("-idx", ".idx")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[role] = path
    return found


def _check_pair(images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:
        raise DataError(
            f"IDX file '{img_path}' must hold uint8 images of shape (N, 28, 28); "
            f"got {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"IDX file '{lbl_path}' must hold uint8 labels (N,); got {labels.dtype} {labels.shape}.")
    if len(images) != len(labels):
        raise DataError(
            f"MNIST image/label count mismatch: '{img_path}' has {len(images)} images but "
            f"'{lbl_path}' has {len(labels)} labels."
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"IDX file '{lbl_path}' has label {int(labels.max())}; MNIST labels are 0-9.")


def load_mnist(data_dir: str | os.PathLike, *, download: bool = False) -> MnistData:
    """Read the four MNIST IDX files from ``data_dir`` (gzip or raw).

    With ``download=True`` missing files are fetched with
    ``faultdiag.data.download.download_dataset("mnist", data_dir)`` (checksummed).
    """
    data_dir = Path(data_dir)
    files = find_mnist_files(data_dir)
    if files is None and download:
        try:
            from faultdiag.data.download import download_dataset
        except ImportError as exc:
            raise DataError(f"MNIST files are missing in '{data_dir}' and downloading is unavailable.") from exc
        log.info("downloading MNIST into %s", data_dir)
        download_dataset("mnist", data_dir)
        files = find_mnist_files(data_dir)
    if files is None:
        names = ", ".join(f"{stem}[.gz]" for stem in MNIST_FILES.values())
        raise DataError(f"MNIST files not found in '{data_dir}': need {names}.")
    arrays = {
        role: read_idx(path, expected_magic=IMAGES_MAGIC if role.endswith("images") else LABELS_MAGIC)
        for role, path in files.items()
    }
    for split in ("train", "test"):
        _check_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                    files[f"{split}_images"], files[f"{split}_labels"])
    log.info("read MNIST from %s: %d train, %d test", data_dir,
             len(arrays["train_labels"]), len(arrays["test_labels"]))
    return MnistData(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        files=files,
    )
