"""Shared fixtures. Real data lives in ../shared/data (next to the checkout); tests that need it
skip with a clear reason where it is absent, so the suite passes on a fresh machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FAULTDIAG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the real data is not there."""
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FAULTDIAG_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cwru_dir(shared_data: Path) -> Path:
    path = shared_data / "cwru"
    if not any(path.glob("*.mat")):
        pytest.skip(f"no CWRU .mat files in {path}")
    return path


@pytest.fixture(scope="session")
def mnist_dir(shared_data: Path) -> Path:
    path = shared_data / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {path}")
    return path
