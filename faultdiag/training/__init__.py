"""Training: prepared windows → batch sources → the fit loop → checkpoint.

- :mod:`~faultdiag.training.prepare`: ``[data]`` → raw windows per split and the model's input spec.
- :mod:`~faultdiag.training.batches`: :class:`BatchSource` (memory or cache; clean, fixed, fresh or
  mixed-SNR noise; an augmentation hook).
- :mod:`~faultdiag.training.loop`: :func:`fit` (a model, an optimiser, sources, a ``TrainConfig``;
  extra loss terms as :class:`LossTerm`).
- :mod:`~faultdiag.training.state`: ``last.pt``, resume, ``train_log.csv``.
- :mod:`~faultdiag.training.run`: :func:`train_model`, one whole run with its files.
"""

from faultdiag.training.batches import Batch, BatchSource, training_noise
from faultdiag.training.loop import LossTerm, fit
from faultdiag.training.prepare import Prepared, prepare
from faultdiag.training.run import TrainResult, resolve_device, train_model

__all__ = ["Prepared", "prepare", "Batch", "BatchSource", "training_noise", "LossTerm", "fit",
           "TrainResult", "train_model", "resolve_device"]
