"""What a model takes as input, and the one function that makes it from raw windows.

An :class:`InputSpec` is fixed when training data is prepared and travels in the checkpoint, so
that training, evaluation and diagnosis turn raw (possibly noisy) windows into model input the
same way: the window geometry (rate, length, hop, channels), the front end (band-pass or
spectra, :mod:`faultdiag.frontend`, its band chosen on clean training windows) and the
normalisation fitted on the front end's output of the training windows only::

    raw (N, C, L) -> front end -> (N, C, L') -> normalise -> model input (N, C, L')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from faultdiag.data.normalize import NORMALIZE_MODES, Standardizer, to_model_input
from faultdiag.errors import ConfigError
from faultdiag.frontend.spec import FrontEnd, apply_front_end

__all__ = ["InputSpec"]


@dataclass(frozen=True, eq=False)
class InputSpec:
    """Window geometry and normalisation of a model's input.

    Attributes:
        fs_hz: sampling rate of the windows (recordings are resampled to it).
        window_len: samples per window ``L``; ``hop``: samples between training windows.
        channels: channel names, in the order of the input's ``C`` axis.
        normalize: ``global`` (``standardizer`` fitted on training windows), ``window`` or ``none``.
        standardizer: the fitted :class:`~faultdiag.data.normalize.Standardizer`, or ``None``.
        front_end: the :class:`~faultdiag.frontend.FrontEnd` applied before normalising.
    """

    fs_hz: float
    window_len: int
    hop: int
    channels: tuple[str, ...]
    normalize: str = "global"
    standardizer: Standardizer | None = None
    front_end: FrontEnd = FrontEnd()

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"The 'normalize' parameter must be one of {', '.join(map(repr, NORMALIZE_MODES))}; "
                              f"got {self.normalize!r}.")
        if self.normalize == "global" and self.standardizer is None:
            raise ConfigError("An InputSpec with normalize='global' needs a fitted standardizer; got None.")
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))

    def features(self, X_raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw windows ``(N, C, L)`` → the front end's output ``(N, C, L')``, not normalised."""
        return apply_front_end(torch.as_tensor(X_raw), self.front_end)

    def transform(self, X_raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw windows ``(N, C, L)`` → float32 model input ``(N, C, L')``."""
        return to_model_input(self.features(X_raw), self.standardizer, self.normalize)

    def normalizer_dict(self) -> dict[str, Any]:
        """``{"normalize": ..., "standardizer": to_dict() or None}``, as checkpoints store it."""
        std = self.standardizer.to_dict() if self.standardizer is not None else None
        return {"normalize": self.normalize, "standardizer": std}

    def to_key(self) -> dict[str, Any]:
        """Everything that decides the model input, as plain values (to compare two specs)."""
        return {"fs_hz": self.fs_hz, "window_len": self.window_len, "channels": list(self.channels),
                "normalizer": self.normalizer_dict(), "front_end": self.front_end.to_dict()}

    @classmethod
    def from_stored(cls, *, fs_hz: float, window_len: int, hop: int, channels: Any,
                    normalizer: dict[str, Any] | None, front_end: dict[str, Any] | None = None) -> "InputSpec":
        """The spec from a checkpoint's entries (``normalizer`` as :meth:`normalizer_dict` wrote it,
        ``front_end`` as ``FrontEnd.to_dict``; checkpoints written before front ends existed have none)."""
        normalizer = normalizer or {}
        std = normalizer.get("standardizer")
        return cls(fs_hz=float(fs_hz), window_len=int(window_len), hop=int(hop), channels=tuple(channels),
                   normalize=normalizer.get("normalize", "global"),
                   standardizer=Standardizer.from_dict(std) if std is not None else None,
                   front_end=FrontEnd.from_dict(front_end) if front_end else FrontEnd())
