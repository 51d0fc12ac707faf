"""Executes notebooks/mnist_demo.ipynb end to end with tiny settings (real MNIST needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "mnist_demo.ipynb"


def test_mnist_demo_notebook_runs(mnist_dir, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install .[dev])")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install .[dev])")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install .[dev])")
    monkeypatch.setenv("FAULTDIAG_MNIST", str(mnist_dir))
    monkeypatch.setenv("FAULTDIAG_NB_LIMIT", "300")
    monkeypatch.setenv("FAULTDIAG_NB_EPOCHS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "300 images, 1 epochs" in text and "drsn-cw - resnet: test accuracy" in text
    assert "set to zero by soft thresholding" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # samples, learning curves, accuracy bars, thresholds
