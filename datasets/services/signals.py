"""Signal preparation before drawing (rendering.md), as named, versioned profiles.

A profile turns one derivation (µV, native rate) into the 100-Hz trace the images are drawn from.
Each recording stores the profile it was prepared with, so its images stay reproducible when a
later profile sits beside this one.

- `sleepvlm-v1` (current): the authors' released pipeline, quirks included: Butterworth band-pass
  in (b, a) form with the edges normalised by Nyquist and clamped to [1e-3, 0.999], `filtfilt`;
  notch Q = 20 at the mains frequency on every channel, EMG included; linear interpolation to 100 Hz
  with no anti-alias filter (chin EMG keeps its aliased power above 50 Hz, as in training).
- `platform-v0`: this platform's first preparation (second-order sections, notch Q = 30 only where
  it falls inside the band, polyphase resampling), kept for recordings imported before v1.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from datasets.constants import EMG_DERIVATIONS, EOG_DERIVATIONS, SIGNAL_VIEW_CHOICES, TARGET_SFREQ
from datasets.exceptions import InputError

# scipy.signal is imported in the functions that filter: it brings scipy.stats, ~75 MB in every process that
# imports this module for its constants only (web workers, release builds).

EEG_BAND = (0.3, 35.0)
EMG_BAND = (10.0, 100.0)
CHANNEL_KINDS = ("EEG", "EOG", "EMG")
NOTCH_Q = 30.0  # platform-v0 and the clinical view (sleepvlm-v1 keeps the authors' Q = 20)
CURRENT_PROFILE = "sleepvlm-v1"
LEGACY_PROFILE = "platform-v0"


def band_for(derivation: str) -> tuple[float, float]:
    return EMG_BAND if derivation in EMG_DERIVATIONS else EEG_BAND


def channel_kind(derivation: str) -> str:
    return "EMG" if derivation in EMG_DERIVATIONS else "EOG" if derivation in EOG_DERIVATIONS else "EEG"


def aasm_filters(mains_hz: float) -> dict[str, dict[str, float]]:
    """The AASM recommended viewing filters per channel kind (agreement.md): the bands above, notch at the mains."""
    return {kind: {"high_pass": band[0], "low_pass": band[1], "notch": mains_hz}
            for kind, band in (("EEG", EEG_BAND), ("EOG", EEG_BAND), ("EMG", EMG_BAND))}


def checked_signal_view(view, switchable) -> tuple[str, bool]:
    """A campaign's signal view setting (which view raters start with, and whether they may switch), or InputError."""
    if view not in dict(SIGNAL_VIEW_CHOICES):
        raise InputError(f"unknown signal view {view!r}; expected one of {', '.join(dict(SIGNAL_VIEW_CHOICES))}")
    return view, bool(switchable)


def resampled_length(n_samples: int, sfreq: float) -> int:
    """Samples at 100 Hz after linear-interpolation resampling (the authors' round(n * 100 / fs))."""
    return int(round(n_samples * TARGET_SFREQ / sfreq))


def _sleepvlm_v1(x: np.ndarray, sfreq: float, derivation: str, mains_hz: float) -> tuple[np.ndarray, list[str]]:
    from scipy import signal
    notes = []
    nyquist = sfreq / 2
    low, high = band_for(derivation)
    edges = np.clip([low / nyquist, high / nyquist], 1e-3, 0.999)
    if edges[1] < high / nyquist:
        notes.append(f"{derivation}: upper band edge clamped to 0.999 × Nyquist ({0.999 * nyquist:g} Hz), "
                     f"as the authors' pipeline does at {sfreq:g} Hz")
    b, a = signal.butter(4, edges, btype="bandpass")
    y = signal.filtfilt(b, a, x)
    if mains_hz < nyquist:
        b, a = signal.iirnotch(mains_hz, 20.0, fs=sfreq)
        y = signal.filtfilt(b, a, y)
    else:
        notes.append(f"{derivation}: no {mains_hz:g} Hz notch, at or above Nyquist ({nyquist:g} Hz)")
    if sfreq != TARGET_SFREQ:
        n = y.size
        y = np.interp(np.linspace(0, n - 1, resampled_length(n, sfreq)), np.arange(n), y)
    return y, notes


def _platform_v0(x: np.ndarray, sfreq: float, derivation: str, mains_hz: float) -> tuple[np.ndarray, list[str]]:
    from scipy import signal
    notes = []
    low, high = band_for(derivation)
    nyquist = sfreq / 2
    if high >= nyquist:
        high = round(0.9 * nyquist, 1)
        notes.append(f"{derivation}: upper band edge lowered to {high} Hz (sampled at {sfreq:g} Hz)")
    y = signal.sosfiltfilt(butterworth_sos(low, high, sfreq), x)
    if mains_hz < nyquist and mains_hz < high * 1.2:
        y = _notch(y, mains_hz, sfreq)
    if sfreq != TARGET_SFREQ:
        ratio = Fraction(TARGET_SFREQ / sfreq).limit_denominator(1000)
        y = signal.resample_poly(y, ratio.numerator, ratio.denominator)
    return y, notes


def butterworth_sos(high_pass: float | None, low_pass: float | None, sfreq: float) -> np.ndarray | None:
    """4th-order Butterworth in second-order sections: band-pass, high-pass or low-pass by the edges given."""
    from scipy import signal
    if high_pass and low_pass:
        return signal.butter(4, [high_pass, low_pass], btype="bandpass", fs=sfreq, output="sos")
    if high_pass or low_pass:
        return signal.butter(4, high_pass or low_pass, btype="highpass" if high_pass else "lowpass", fs=sfreq, output="sos")
    return None


def _notch(y: np.ndarray, mains_hz: float, sfreq: float) -> np.ndarray:
    from scipy import signal
    b, a = signal.iirnotch(mains_hz, NOTCH_Q, fs=sfreq)
    return signal.filtfilt(b, a, y, axis=-1)


def clinical_filter(x: np.ndarray, sfreq: float, high_pass: float, low_pass: float, notch: float
                    ) -> tuple[np.ndarray, dict[str, float]]:
    """A technologist's filters on a native-rate trace (the platform-v0 chain without resampling): zero-phase
    Butterworth high- and low-pass, notch Q = 30; 0 turns one off, a low-pass or notch at or above Nyquist is
    left out. Returns the trace and the filters applied."""
    from scipy import signal
    nyquist = sfreq / 2
    applied = {"high_pass": high_pass if 0 < high_pass < nyquist else 0.0,
               "low_pass": low_pass if 0 < low_pass < nyquist else 0.0,
               "notch": notch if 0 < notch < nyquist else 0.0}
    y = np.asarray(x, dtype=np.float64)
    sos = butterworth_sos(applied["high_pass"], applied["low_pass"], sfreq)
    if sos is not None:
        y = signal.sosfiltfilt(sos, y, axis=-1)
    if applied["notch"]:
        y = _notch(y, applied["notch"], sfreq)
    return y, applied


PROFILES = {CURRENT_PROFILE: _sleepvlm_v1, LEGACY_PROFILE: _platform_v0}
PROFILE_DESCRIPTIONS = {
    CURRENT_PROFILE: "the SleepVLM authors' pipeline: band-pass (b, a) with clamped edges, notch Q = 20 on every "
                     "channel, linear-interpolation resampling to 100 Hz",
    LEGACY_PROFILE: "band-pass (second-order sections), notch Q = 30 inside the band, polyphase resampling to 100 Hz",
}


def prepare(x_uv: np.ndarray, sfreq: float, derivation: str, mains_hz: float,
            profile: str = CURRENT_PROFILE) -> tuple[np.ndarray, list[str]]:
    """Filter one derivation (µV) and bring it to 100 Hz under `profile` (float32, notes)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown preparation profile {profile!r}; known: {', '.join(PROFILES)}")
    y, notes = PROFILES[profile](np.asarray(x_uv, dtype=np.float64), sfreq, derivation, mains_hz)
    return y.astype(np.float32), notes


def prepare_all(sources: Sequence[Callable[[], np.ndarray]], sfreq: float, derivations: Sequence[str],
                mains_hz: float, profile: str = CURRENT_PROFILE,
                prepared: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """Prepare every derivation (`sources[i]()` gives derivation i's µV) on a few threads: scipy's filters
    release the GIL, and a source is read only when its thread starts, so memory holds a few at a time.
    (n, samples) float32 cut to the shortest, and the notes in derivation order; `prepared(i)` is called
    here, on the calling thread, as derivation i is ready (an unknown profile fails as in `prepare`)."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(derivations), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(lambda s, d: prepare(s(), sfreq, d, mains_hz, profile), source, derivation)
                   for source, derivation in zip(sources, derivations)]
        rows, notes = [], []
        for i, future in enumerate(futures):
            row, row_notes = future.result()
            rows.append(row)
            notes += row_notes
            if prepared:
                prepared(i)
    length = min(len(r) for r in rows)
    return np.stack([r[:length] for r in rows]), notes


def minimum_sfreq(derivation: str) -> float:
    """Lowest usable sampling rate: EEG/EOG need 35 Hz below Nyquist; chin EMG needs room above 10 Hz."""
    return 4 * EMG_BAND[0] if derivation in EMG_DERIVATIONS else 2 * EEG_BAND[1]
