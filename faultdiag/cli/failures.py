"""Failures as the command line prints them: each file's path once, one line per distinct reason."""

from __future__ import annotations

from typing import Iterable

GROUP_AT = 3
"""Files sharing a reason are listed on one line from this many on."""


def _reason(file: str, error: str) -> str:
    """``error`` without a leading mention of ``file`` (readers start their messages with the path)."""
    text = str(error)
    for prefix in (f"{file}: ", f"{file} "):
        if text.startswith(prefix):
            return text[len(prefix):]
    head, _, rest = text.partition(" ")
    if rest and head.rstrip(":").replace("\\", "/").endswith(file.replace("\\", "/")):
        return rest  # the message starts with the file's full path
    return text


def failure_lines(failures: Iterable[tuple[str, str]], prefix: str) -> list[str]:
    """``"<prefix>: <file>: <reason>"`` per failure (the message alone when it names the file); files with one
    reason in common share a line (``"<prefix>: 42 files (a.mat, b.mat, ...): <reason>"``)."""
    groups: dict[str, list[str]] = {}
    lines = []
    for file, error in failures:
        reason = _reason(file, error)
        if file in reason:  # the message names the file itself, mid-sentence: print it as it is
            lines.append(f"{prefix}: {reason}")
        else:
            groups.setdefault(reason, []).append(file)
    for reason, files in groups.items():
        if len(files) >= GROUP_AT:
            shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
            lines.append(f"{prefix}: {len(files)} files ({shown}): {reason}")
        else:
            lines += [f"{prefix}: {f}: {reason}" for f in files]
    return lines
