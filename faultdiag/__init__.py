"""faultdiag: machine-fault diagnosis from vibration signals with Deep Residual Shrinkage Networks.

The public API, imported lazily so that ``import faultdiag`` and ``faultdiag --help`` stay fast:

- ``build_model(name, **kwargs)``: DRSN-CW, DRSN-CS, ResNet and ConvNet, 1D or 2D; the WDCNN and TICNN anchors (1D).
- ``read_recording(path, ...)`` and ``Recording``: vibration recordings from CSV/MAT/HDF5/NumPy files.
- ``load_config(path, overrides)``, ``train_model(cfg, out_dir)``, ``run_sweep(cfg, out_dir)``.
- ``diagnose(model_path, paths, ...)``: verdicts on new recordings as a pandas DataFrame.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "faultdiag.models.networks",
    "Recording": "faultdiag.data.recording",
    "read_recording": "faultdiag.data.readers",
    "load_config": "faultdiag.config",
    "train_model": "faultdiag.training",
    "run_sweep": "faultdiag.sweep",
    "diagnose": "faultdiag.diagnose",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'faultdiag' has no attribute {name!r}")
