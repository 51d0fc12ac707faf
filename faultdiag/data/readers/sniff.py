"""Recognising a recording file by its content (magic bytes), the extension only breaking ties.

Formats: ``mat5`` (text header "MATLAB 5.0 MAT-file"), ``mat73`` (text header "MATLAB 7.3
MAT-file" and the HDF5 signature at offset 512), ``hdf5`` (HDF5 signature at offset 0 or after a
user block), ``npy`` (``\\x93NUMPY``), ``npz`` (a zip archive holding ``.npy`` members) and ``csv``
(decodable text whose lines split into the same number of fields on ``,`` ``;`` tab or
whitespace). A text preamble before the table (instrument, date, units ...) is recognised by
:func:`locate_table`: the table starts at the first run of numeric rows, or the header just above it.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import Counter
from pathlib import Path

from faultdiag.errors import DataError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMATS = ("csv", "mat5", "mat73", "hdf5", "npy", "npz")
TEXT_EXTENSIONS = (".csv", ".tsv", ".txt", ".dat")
WHITESPACE = r"\s+"

_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 50
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf|infinity)$", re.I)


def check_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path; DataError when it is missing, not a file, or empty."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"The recording file {path} does not exist.")
    if not path.is_file():
        raise DataError(f"The recording path {path} is not a file (it is a folder or special file).")
    if path.stat().st_size == 0:
        raise DataError(f"The recording file {path} is empty (0 bytes).")
    return path


def sniff_format(path: str | os.PathLike) -> str:
    """Return the format of ``path``, one of ``FORMATS``, judged by the bytes it starts with.

    Raises:
        DataError: the file is missing or empty, or its content is none of the known formats.
    """
    path = check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(path)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(b"MATLAB 7.3 MAT-file"):
        if head[512:520] != HDF5_SIGNATURE:
            raise DataError(
                f"{path} has a MATLAB 7.3 header but no HDF5 signature at byte 512; the file is "
                "truncated or damaged."
            )
        return "mat73"
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "mat5"
    if head.startswith(b"MATLAB"):
        raise DataError(f"{path} is a MAT-file of an unsupported version (header {head[:40]!r}); "
                        "save it as MAT v5 (-v7) or v7.3.")
    for offset in (512, 1024, 2048, 4096):
        if head[offset:offset + 8] == HDF5_SIGNATURE:
            return "hdf5"
    if sniff_text(path, head) is not None:
        return "csv"
    raise DataError(
        f"{path} is not a recognised recording file: it starts with {head[:16]!r}; expected MAT v5, "
        "MAT v7.3, HDF5, .npy, .npz or delimited text (CSV/TSV)."
    )


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} starts like a zip (.npz) archive but cannot be opened: {exc}.") from exc
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    raise DataError(f"{path} is a zip archive but not an .npz of arrays; its members are {names[:10]}.")


def decode_text(head: bytes) -> str | None:
    """Decode the start of a file as UTF-8 (or Latin-1); None when it looks binary."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end
            text = head.decode("latin-1")
        else:
            text = head[: exc.start].decode("utf-8-sig")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f")
    return None if controls else text


def sample_lines(text: str, at_eof: bool) -> list[str]:
    """Up to ``_SNIFF_LINES`` non-blank lines of ``text``; a cut last line is dropped."""
    lines = text.splitlines()
    if not at_eof and lines:
        lines = lines[:-1]
    return [ln for ln in lines if ln.strip()][:_SNIFF_LINES]


def is_number(field: str) -> bool:
    return bool(_NUMBER.match(field.strip().strip("\"'")))


def sniff_delimiter(lines: list[str], suffix: str = "") -> str | None:
    """The field separator of ``lines``: ``\t``, ``;``, ``,`` or ``WHITESPACE``; None if unclear.

    A separator qualifies when at least half of the lines hold it the same (non-zero) number of
    times, so that a ragged row is reported by the parser rather than hiding the separator; the
    most consistent one wins. ``;`` wins ties over ``,`` (decimal commas); the extension breaks
    the tie between tab and comma.
    """
    if not lines:
        return None
    order = [";", ",", "\t"] if suffix == ".csv" else [";", "\t", ","]
    best, best_share = None, 0.5
    for sep in order:
        counts = Counter(ln.count(sep) for ln in lines)
        mode, hits = counts.most_common(1)[0]
        if mode > 0 and hits / len(lines) > best_share - 1e-9 and (best is None or hits / len(lines) > best_share):
            best, best_share = sep, hits / len(lines)
    if best is not None:
        return best
    if len({len(ln.split()) for ln in lines}) == 1:
        return WHITESPACE
    return None


def split_fields(line: str, sep: str) -> list[str]:
    """The fields of ``line`` split on ``sep`` (``WHITESPACE`` splits on runs of blanks)."""
    if sep == WHITESPACE:
        return line.split()
    import csv

    return [f.strip() for f in next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])]


def _numeric_row(line: str, sep: str, n_fields: int) -> bool:
    fields = split_fields(line, sep)
    return len(fields) >= n_fields and all(is_number(f) for f in fields[:n_fields] if f) and any(fields)


def locate_table(raw_lines: list[str], suffix: str = "") -> tuple[str | None, int]:
    """``(separator, index of the first table line)`` in ``raw_lines`` (blank lines included).

    The separator is judged on the last up to 50 non-blank lines (the data). The table starts at
    the first non-blank line that is either a numeric row followed by another, or a non-numeric
    line with at least as many fields as the numeric row that follows it (the header). Lines before
    it are a preamble. ``(None, 0)`` when there is no separator.
    """
    body = [ln for ln in raw_lines if ln.strip()]
    sep = sniff_delimiter(body[-_SNIFF_LINES:], suffix)
    if sep is None:
        return None, 0
    n_fields = Counter(len(split_fields(ln, sep)) for ln in body[-_SNIFF_LINES:]).most_common(1)[0][0]
    idx = [i for i, ln in enumerate(raw_lines) if ln.strip()]
    for i, nxt in zip(idx, idx[1:]):
        if not _numeric_row(raw_lines[nxt], sep, n_fields):
            continue
        if _numeric_row(raw_lines[i], sep, n_fields):
            return sep, i
        filled = sum(1 for f in split_fields(raw_lines[nxt], sep) if f)  # rows may end with a delimiter
        if len(split_fields(raw_lines[i], sep)) >= filled:
            return sep, i
    return sep, 0


def sniff_text(path: Path, head: bytes | None = None) -> str | None:
    """The delimiter of a text recording (after any preamble), or None when ``path`` is not delimited text."""
    if head is None:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    text = decode_text(head)
    if text is None:
        return None
    raw = text.splitlines()
    if len(head) >= _SNIFF_BYTES and raw:
        raw = raw[:-1]  # a line cut by the sample
    sep, start = locate_table(raw, path.suffix.lower())
    if sep is not None and start:
        sep = sniff_delimiter(sample_lines("\n".join(raw[start:]), True), path.suffix.lower()) or sep
    lines = [ln for ln in raw if ln.strip()]
    if sep is None and path.suffix.lower() in TEXT_EXTENSIONS and lines:
        sep = ","  # the extension says text; the parser will report what is wrong with it
    return sep
