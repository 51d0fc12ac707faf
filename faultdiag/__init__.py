"""faultdiag: machine-fault diagnosis from vibration signals with Deep Residual Shrinkage Networks."""

__version__ = "0.1.0"
