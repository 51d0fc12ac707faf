"""Nothing from a config, data or checkpoint file is ever executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import faultdiag
from faultdiag.checkpoint import load_checkpoint
from faultdiag.errors import DataError

PACKAGE = Path(faultdiag.__file__).parent
FORBIDDEN = {
    "pickle.load": re.compile(r"\bpickle\.loads?\("),
    "eval(": re.compile(r"(?<![\w.])eval\("),
    "exec(": re.compile(r"(?<![\w.])exec\("),
    "weights_only=False": re.compile(r"weights_only\s*=\s*False"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load": re.compile(r"\byaml\.(unsafe_)?load\("),
}


def _code_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path, n, line


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_package_never_unpickles_or_executes(name):
    hits = [f"{p.relative_to(PACKAGE)}:{n}: {line.strip()}" for p, n, line in _code_lines() if FORBIDDEN[name].search(line)]
    assert not hits, hits


def test_every_torch_load_is_weights_only():
    calls = [(p, n, line) for p, n, line in _code_lines() if re.search(r"\btorch\.load\(", line)]
    assert calls, "expected the checkpoint loader"
    for p, n, line in calls:
        assert "weights_only=True" in line, f"{p.relative_to(PACKAGE)}:{n}: {line.strip()}"


class _Payload:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (print, ("pwned",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "faultdiag-checkpoint", "evil": _Payload()}, path)
    with pytest.raises(DataError, match="evil.pt"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
