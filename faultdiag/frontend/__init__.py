"""The signal-processing front end: raw windows (+ noise) -> front end -> standardise -> model.

* :mod:`~faultdiag.frontend.filters` -- zero-phase Butterworth band-pass of windows (FFT, any device).
* :mod:`~faultdiag.frontend.spectral` -- magnitude and envelope spectra as model inputs.
* :mod:`~faultdiag.frontend.spec` -- :class:`FrontEnd` (what to apply, for checkpoints) and
  :func:`apply_front_end` (the one function the pipeline calls).
* :mod:`~faultdiag.frontend.band_select` -- :func:`choose_band` from clean training windows.
* :mod:`~faultdiag.frontend.plot` -- :func:`plot_band_choice` (imports matplotlib on use).
"""

from faultdiag.frontend.band_select import METHODS, BandChoice, candidate_bands, choose_band
from faultdiag.frontend.filters import analytic_bandpass, bandpass, bandpass_gain
from faultdiag.frontend.spec import FRONT_END_KINDS, FrontEnd, apply_front_end
from faultdiag.frontend.spectral import envelope_spectrum, magnitude_spectrum, spectrum_freqs_hz

__all__ = [
    "FRONT_END_KINDS", "FrontEnd", "apply_front_end", "bandpass", "analytic_bandpass", "bandpass_gain",
    "magnitude_spectrum", "envelope_spectrum", "spectrum_freqs_hz", "METHODS", "BandChoice",
    "candidate_bands", "choose_band",
]
