"""Signal preparation before drawing (rendering.md): band-pass, notch, resample to 100 Hz."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from datasets.constants import EMG_DERIVATIONS, TARGET_SFREQ

EEG_BAND = (0.3, 35.0)
EMG_BAND = (10.0, 100.0)
NOTCH_Q = 30.0


def band_for(derivation: str) -> tuple[float, float]:
    return EMG_BAND if derivation in EMG_DERIVATIONS else EEG_BAND


def prepare(x_uv: np.ndarray, sfreq: float, derivation: str, mains_hz: float) -> tuple[np.ndarray, list[str]]:
    """Filter one derivation (µV) as rendering.md says and resample it to 100 Hz (float32)."""
    notes = []
    low, high = band_for(derivation)
    nyquist = sfreq / 2
    if high >= nyquist:
        high = round(0.9 * nyquist, 1)
        notes.append(f"{derivation}: upper band edge lowered to {high} Hz (sampled at {sfreq:g} Hz)")
    sos = signal.butter(4, [low, high], btype="bandpass", fs=sfreq, output="sos")
    y = signal.sosfiltfilt(sos, np.asarray(x_uv, dtype=np.float64))
    if mains_hz < nyquist and mains_hz < high * 1.2:
        b, a = signal.iirnotch(mains_hz, NOTCH_Q, fs=sfreq)
        y = signal.filtfilt(b, a, y)
    if sfreq != TARGET_SFREQ:
        ratio = Fraction(TARGET_SFREQ / sfreq).limit_denominator(1000)
        y = signal.resample_poly(y, ratio.numerator, ratio.denominator)
    return y.astype(np.float32), notes


def minimum_sfreq(derivation: str) -> float:
    """Lowest usable sampling rate: EEG/EOG need 35 Hz below Nyquist; chin EMG needs room above 10 Hz."""
    return 4 * EMG_BAND[0] if derivation in EMG_DERIVATIONS else 2 * EEG_BAND[1]
