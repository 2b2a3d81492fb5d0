"""Waveform measurements of a prepared recording: one module that the baseline's rationales
(inference.services.baseline) and the rationale evidence check (inference.services.evidence) both read.

Pure analysis (no Django). `measure_night` measures every epoch of a recording once.
Signals are the prepared derivations: µV, 100 Hz, EEG/EOG band-passed 0.3–35 Hz.
- slow waves: `yasa.sw_detect` on the frontal EEG (F4-M1, else C4-M1, else O2-M1), 0.5–2 Hz,
  >= 75 µV peak-to-peak; the share of each epoch covered by detected waves;
- K-complexes: a detected slow wave lasting >= 0.5 s with no other slow wave within 3 s of its
  negative peak (isolated) and, where O2-M1 exists, no alpha-dominant window from its onset to 1 s
  after its end (a proxy for "not linked to an arousal");
- spindles: `yasa.spindles_detect` on the central EEG (C4-M1, else F4-M1, else O2-M1; 12–15 Hz);
- eye movements (needs LOC and ROC): `yasa.rem_detect`; an event that is short (<= 0.5 s) and
  symmetric (rise/fall slope ratio 0.67–1.5) is reported as blink-like, the others as rapid eye
  movements; slow eye movements: deflections of (LOC − ROC)/2 low-passed at 1 Hz, >= 15 µV, whose
  initial deflection (10 % of the peak to the peak) lasts >= 0.5 s, not within 1.5 s of a
  rem_detect event;
- alpha: 2-s windows where 8–13 Hz power on O2-M1 exceeds the 0.5–4, 4–8 and 13–30 Hz power;
- theta-rich (LAMF) activity: 2-s windows where 4–8 Hz carries >= 25 % of the 0.5–30 Hz power on the
  central EEG;
- chin EMG level: median of the epoch's 1-s RMS values; its percentile among the night's epochs and
  its ratio to the night's lowest level (5th percentile); "low" = at or below the 25th percentile
  and at most 2x the lowest level;
- major body movement: 2-s windows where every EEG derivation's RMS exceeds 5x its night median.
"""
from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, EPOCH_SECONDS, TARGET_SFREQ

SF = TARGET_SFREQ
WIN_S = 2  # band-power windows
WIN = WIN_S * SF
WINS_PER_EPOCH = EPOCH_SECONDS // WIN_S  # 15
HALF_WINDOWS = WINS_PER_EPOCH // 2 + 1  # "more than half the epoch": 8 of 15 windows

# Thresholds (the baseline's rule_criteria and the evidence check read them).
SW_SHARE_N3 = 0.20  # N3.1: slow waves for at least 20% of the epoch
SW_FREQ = (0.5, 2.0)
SW_PTP_UV = 75.0
KC_ISOLATION_S = 3.0
KC_MIN_DURATION_S = 0.5
KC_AROUSAL_S = 1.0
SPINDLE_FREQ = (12.0, 15.0)
BLINK_MAX_S = 0.5
BLINK_SLOPE_RATIO = (0.67, 1.5)
SEM_LOWPASS_HZ = 1.0
SEM_MIN_UV = 15.0
SEM_MIN_DEFLECTION_S = 0.5
SEM_REM_GUARD_S = 1.5
THETA_SHARE = 0.25
CHIN_LOW_PERCENTILE = 25.0
CHIN_LOW_RATIO = 2.0
CHIN_FLOOR_PERCENTILE = 5.0
MBM_RMS_FACTOR = 5.0
NIGHT_ALPHA_MIN_WINDOWS = 15  # the recording "shows alpha": >= 30 s of alpha-dominant windows

EEG_CENTRAL = ("C4-M1", "F4-M1", "O2-M1")
EEG_FRONTAL = ("F4-M1", "C4-M1", "O2-M1")
EEG_ALL = ("F4-M1", "C4-M1", "O2-M1")
OCCIPITAL = "O2-M1"
EMG = "Chin EMG"


@dataclass(frozen=True)
class Event:
    """One detected waveform: onset/offset in seconds from the start of the analysed span."""

    start: float
    end: float
    freq_hz: float = 0.0
    amp_uv: float = 0.0


@dataclass(kw_only=True)
class NightMeasurements:
    """Every epoch's measurements (per-epoch arrays and event lists, epoch i at index i)."""

    n_epochs: int
    contiguous: np.ndarray  # epoch i directly follows epoch i-1
    channels: dict[str, str | None]  # role -> derivation used (None: missing)
    missing: list[str]  # what could not be measured, in words
    # slow waves
    sw_share: np.ndarray
    sw_waves: list[list[Event]]
    # K-complexes and spindles (by onset epoch)
    kcomplexes: list[list[Event]]
    spindles: list[list[Event]]
    # eyes (None when not measurable)
    rems: list[list[Event]] | None
    blinks: list[list[Event]] | None
    sems: list[list[Event]] | None
    # band windows (None when the derivation is missing)
    alpha_windows: np.ndarray | None
    theta_windows: np.ndarray | None
    night_alpha_windows: int | None
    # chin EMG (None when missing)
    chin_level: np.ndarray | None
    chin_percentile: np.ndarray | None
    chin_ratio: np.ndarray | None
    chin_floor: float | None
    # artefact
    mbm_windows: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def night_has_alpha(self) -> bool | None:
        if self.night_alpha_windows is None:
            return None
        return self.night_alpha_windows >= NIGHT_ALPHA_MIN_WINDOWS

    def low_chin(self, i: int) -> bool | None:
        if self.chin_level is None:
            return None
        return bool(self.chin_percentile[i] <= CHIN_LOW_PERCENTILE and self.chin_ratio[i] <= CHIN_LOW_RATIO)

    def movement(self, i: int) -> bool:
        """Major body movement: every EEG derivation obscured over more than half the epoch."""
        return bool(self.mbm_windows[i] >= HALF_WINDOWS)

    def first_half_events(self, i: int) -> list[tuple[str, Event, bool]]:
        """(kind, event, in the previous epoch) of the spindles and K-complexes that start N2 in epoch i: in its
        first half, or in the last half of the previous epoch where that one directly precedes it."""
        events = [(kind, ev, False) for kind, evs in (("Spindle", self.spindles[i]), ("K-complex", self.kcomplexes[i]))
                  for ev in evs if ev.start - i * EPOCH_SECONDS < EPOCH_SECONDS / 2]
        if i > 0 and self.contiguous[i]:
            events += [(kind, ev, True)
                       for kind, evs in (("Spindle", self.spindles[i - 1]), ("K-complex", self.kcomplexes[i - 1]))
                       for ev in evs if ev.start - (i - 1) * EPOCH_SECONDS >= EPOCH_SECONDS / 2]
        return events


@dataclass(frozen=True)
class Span:
    """The epochs laid end to end, by derivation, and the derivation that plays each role."""

    x: dict[str, np.ndarray]
    starts: np.ndarray
    central: str | None
    frontal: str | None

    def pick(self, order: Sequence[str]) -> str | None:
        return next((d for d in order if d in self.x), None)


def epoch_span(signals: np.ndarray, derivations: Sequence[str], epoch_starts: Sequence[int]) -> Span:
    """The recording's epochs laid end to end (rows in `derivations` order, µV, 100 Hz)."""
    derivations = list(derivations)
    starts = np.asarray(epoch_starts, dtype=np.int64)
    if len(starts) == 0:
        raise ValueError("no epochs to analyse")
    used = [d for d in DERIVATIONS if d in derivations]
    data = _epoch_span(signals, starts, [derivations.index(d) for d in used])
    x = {d: data[k] for k, d in enumerate(used)}
    return Span(x, starts, next((d for d in EEG_CENTRAL if d in x), None), next((d for d in EEG_FRONTAL if d in x), None))


def measure_night(span: Span) -> NightMeasurements:
    """Measure every epoch of the span (waveform detectors quietened)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    x, n_ep = span.x, len(span.starts)
    central, frontal = span.central, span.frontal
    if central is None:
        raise ValueError("no EEG derivation (F4-M1, C4-M1 or O2-M1) to measure")
    contiguous = np.zeros(n_ep, bool)
    contiguous[1:] = np.diff(span.starts) == EPOCH_SAMPLES
    emg = EMG if EMG in x else None
    occipital = OCCIPITAL if OCCIPITAL in x else None
    eye_pair = "LOC" in x and "ROC" in x
    channels = {"spindles": central, "slow_waves": frontal, "theta": central, "alpha": occipital,
                "eyes": "LOC/ROC" if eye_pair else None, "chin": emg}
    missing = _missing_notes(x, central, frontal, eye_pair, occipital, emg)
    with quiet_yasa():
        t = time.perf_counter()
        sw_share, sw_waves, all_waves = _slow_waves(x[frontal], n_ep)
        timings["slow_waves"] = time.perf_counter() - t
        t = time.perf_counter()
        spindles = _spindles(x[central], n_ep)
        timings["spindles"] = time.perf_counter() - t
        t = time.perf_counter()
        rems = blinks = sems = None
        if eye_pair:
            rems, blinks, sems = _eyes(x["LOC"], x["ROC"], n_ep)
        timings["eyes"] = time.perf_counter() - t

    t = time.perf_counter()
    alpha_win = None
    alpha_flags = None
    if occipital:
        alpha_flags = _alpha_windows(x[occipital])
        alpha_win = alpha_flags.reshape(n_ep, WINS_PER_EPOCH).sum(1)
    theta_win = _theta_windows(x[central]).reshape(n_ep, WINS_PER_EPOCH).sum(1)
    kcomplexes = _kcomplexes(all_waves, alpha_flags, n_ep)
    chin_level = chin_pct = chin_ratio = None
    chin_floor = None
    if emg:
        chin_level, chin_pct, chin_ratio, chin_floor = _chin(x[emg], n_ep)
    mbm = _artefact_windows([x[d] for d in EEG_ALL if d in x], n_ep)
    timings["bands_chin_artefact"] = time.perf_counter() - t
    timings["measurements"] = time.perf_counter() - t0

    return NightMeasurements(
        n_epochs=n_ep, contiguous=contiguous, channels=channels, missing=missing,
        sw_share=sw_share, sw_waves=sw_waves, kcomplexes=kcomplexes, spindles=spindles,
        rems=rems, blinks=blinks, sems=sems, alpha_windows=alpha_win, theta_windows=theta_win,
        night_alpha_windows=None if alpha_flags is None else int(alpha_flags.sum()),
        chin_level=chin_level, chin_percentile=chin_pct, chin_ratio=chin_ratio, chin_floor=chin_floor,
        mbm_windows=mbm, seconds=timings,
    )


@contextmanager
def quiet_yasa():
    """Warnings and YASA's log below ERROR silenced for the block."""
    logger = logging.getLogger("yasa")
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


def _epoch_span(signals: np.ndarray, starts: np.ndarray, rows: list[int]) -> np.ndarray:
    """The epochs laid end to end (float64, rows as given); zero-padded past the end of the signal."""
    n_ep = len(starts)
    n_samples = signals.shape[1]
    out = np.zeros((len(rows), n_ep * EPOCH_SAMPLES), dtype=np.float64)
    if n_ep > 1 and np.all(np.diff(starts) == EPOCH_SAMPLES):
        a = int(starts[0])
        b = min(n_samples, a + n_ep * EPOCH_SAMPLES)
        out[:, : max(0, b - a)] = signals[rows, a:b]
        return out
    for k, s in enumerate(starts):
        a, b = int(s), min(n_samples, int(s) + EPOCH_SAMPLES)
        if b > a:
            out[:, k * EPOCH_SAMPLES : k * EPOCH_SAMPLES + (b - a)] = signals[rows, a:b]
    return out


def _missing_notes(x, central, frontal, eye_pair, occipital, emg) -> list[str]:
    """What could not be measured, or was measured on a substitute derivation, in words."""
    notes = []
    if "C4-M1" not in x:
        notes.append(f"no C4-M1, so spindles and theta were measured on {central} instead")
    if "F4-M1" not in x:
        notes.append(f"no F4-M1, so slow waves and K-complexes were measured on {frontal} instead")
    if occipital is None:
        notes.append("occipital alpha could not be measured (no O2-M1)")
    if not eye_pair:
        have = [d for d in ("LOC", "ROC") if d in x]
        why = f"only {have[0]} is present" if have else "no LOC or ROC"
        notes.append(f"rapid eye movements, blinks and slow eye movements could not be measured "
                     f"(needs LOC and ROC; {why})")
    if emg is None:
        notes.append("chin EMG level could not be measured (no Chin EMG)")
    return notes


def _by_epoch(events: list[Event], n_ep: int) -> list[list[Event]]:
    out: list[list[Event]] = [[] for _ in range(n_ep)]
    for ev in events:
        k = int(ev.start // EPOCH_SECONDS)
        if 0 <= k < n_ep:
            out[k].append(ev)
    return out


def _slow_waves(x, n_ep):
    import yasa

    res = yasa.sw_detect(x, SF, freq_sw=SW_FREQ, amp_ptp=(SW_PTP_UV, 350), verbose="ERROR")
    df = res.summary() if res is not None else None
    n = n_ep * EPOCH_SAMPLES
    if df is None or df.empty:
        return np.zeros(n_ep), [[] for _ in range(n_ep)], []
    start = np.clip(np.round(df["Start"].to_numpy() * SF).astype(np.int64), 0, n)
    end = np.clip(np.round(df["End"].to_numpy() * SF).astype(np.int64), 0, n)
    step = np.zeros(n + 1, np.int32)
    np.add.at(step, start, 1)
    np.add.at(step, end, -1)
    covered = np.cumsum(step[:-1]) > 0
    share = covered.reshape(n_ep, EPOCH_SAMPLES).mean(1)
    waves = [Event(float(s), float(e), float(f), float(p))
             for s, e, f, p in zip(df["Start"], df["End"], df["Frequency"], df["PTP"])]
    per_epoch: list[list[Event]] = [[] for _ in range(n_ep)]
    for w, neg in zip(waves, df["NegPeak"].to_numpy()):  # every epoch the wave overlaps
        k0, k1 = int(w.start // EPOCH_SECONDS), int(min(w.end, n_ep * EPOCH_SECONDS - 1e-6) // EPOCH_SECONDS)
        for k in range(max(0, k0), min(n_ep - 1, k1) + 1):
            per_epoch[k].append(w)
    all_waves = list(zip(waves, df["NegPeak"].to_numpy(dtype=float)))
    return share, per_epoch, all_waves


def _kcomplexes(all_waves, alpha_flags, n_ep):
    if not all_waves:
        return [[] for _ in range(n_ep)]
    neg = np.array([t for _, t in all_waves])
    gap_prev = np.diff(neg, prepend=-np.inf)
    gap_next = np.diff(neg, append=np.inf)
    isolated = (gap_prev > KC_ISOLATION_S) & (gap_next > KC_ISOLATION_S)
    out = []
    n_win = n_ep * WINS_PER_EPOCH
    for (w, _), iso in zip(all_waves, isolated):
        if not iso or (w.end - w.start) < KC_MIN_DURATION_S:
            continue
        if alpha_flags is not None:  # arousal proxy: alpha from the onset to 1 s after the end
            a = int(w.start // WIN_S)
            b = min(n_win - 1, int((w.end + KC_AROUSAL_S) // WIN_S))
            if alpha_flags[a : b + 1].any():
                continue
        out.append(w)
    return _by_epoch(out, n_ep)


def _spindles(x, n_ep):
    import yasa

    res = yasa.spindles_detect(x, SF, freq_sp=SPINDLE_FREQ, verbose="ERROR")
    df = res.summary() if res is not None else None
    if df is None or df.empty:
        return [[] for _ in range(n_ep)]
    events = [Event(float(s), float(e), float(f), float(a))
              for s, e, f, a in zip(df["Start"], df["End"], df["Frequency"], df["Amplitude"])]
    return _by_epoch(events, n_ep)


def _eyes(loc, roc, n_ep):
    import yasa

    res = yasa.rem_detect(loc, roc, SF, verbose="ERROR")
    df = res.summary() if res is not None else None
    rems, blinks, guard = [], [], []
    if df is not None and not df.empty:
        ratio = (df["LOCAbsRiseSlope"] / df["LOCAbsFallSlope"]).to_numpy()
        blink_like = (df["Duration"].to_numpy() <= BLINK_MAX_S) & (ratio >= BLINK_SLOPE_RATIO[0]) & (
            ratio <= BLINK_SLOPE_RATIO[1])
        amp = np.maximum(df["LOCAbsValPeak"].to_numpy(), df["ROCAbsValPeak"].to_numpy())
        for s, e, a, b in zip(df["Start"].to_numpy(), df["End"].to_numpy(), amp, blink_like):
            (blinks if b else rems).append(Event(float(s), float(e), 0.0, float(a)))
            guard.append((s, e))
    # slow eye movements on the conjugate (anti-phase) component
    from scipy import signal as sps  # here, as yasa: scipy.signal brings scipy.stats (~75 MB a process)

    d = (loc - roc) / 2.0
    sos = sps.butter(2, SEM_LOWPASS_HZ, "lowpass", fs=SF, output="sos")
    a = np.abs(sps.sosfiltfilt(sos, d))
    near = np.zeros(len(a) + 1, np.int32)
    for s, e in guard:
        near[max(0, int((s - SEM_REM_GUARD_S) * SF))] += 1
        near[min(len(a), int((e + SEM_REM_GUARD_S) * SF))] -= 1
    near = np.cumsum(near[:-1]) > 0
    peaks, _ = sps.find_peaks(a, height=SEM_MIN_UV, prominence=SEM_MIN_UV, distance=SF // 2)
    sems = []
    for p in peaks:
        if near[p]:
            continue
        h = a[p]
        lo = max(0, p - 5 * SF)
        below = np.flatnonzero(a[lo : p + 1] < 0.1 * h)
        onset = lo + (below[-1] if len(below) else 0)
        if (p - onset) / SF >= SEM_MIN_DEFLECTION_S:
            after = np.flatnonzero(a[p:] < 0.1 * h)
            offset = p + (after[0] if len(after) else len(a) - 1 - p)
            sems.append(Event(onset / SF, offset / SF, (p - onset) / SF, float(h)))  # freq_hz: deflection s
    return _by_epoch(rems, n_ep), _by_epoch(blinks, n_ep), _by_epoch(sems, n_ep)


def _window_power(x):
    w = x.reshape(-1, WIN)
    w = w - w.mean(1, keepdims=True)
    spec = np.abs(np.fft.rfft(w * np.hanning(WIN), axis=1)) ** 2
    f = np.fft.rfftfreq(WIN, 1.0 / SF)

    def band(lo, hi):
        return spec[:, (f >= lo) & (f < hi)].sum(1)

    return band


def _alpha_windows(x):
    band = _window_power(x)
    alpha = band(8.0, 13.0)
    return (alpha > band(0.5, 4.0)) & (alpha > band(4.0, 8.0)) & (alpha > band(13.0, 30.0))


def _theta_windows(x):
    band = _window_power(x)
    total = band(0.5, 30.0)
    return band(4.0, 8.0) >= THETA_SHARE * np.maximum(total, 1e-12)


def _chin(x, n_ep):
    rms = np.sqrt((x.reshape(n_ep, EPOCH_SECONDS, SF) ** 2).mean(2))
    level = np.median(rms, axis=1)
    if n_ep > 1:
        from scipy.stats import rankdata

        pct = 100.0 * (rankdata(level, method="average") - 1) / (n_ep - 1)
    else:
        pct = np.zeros(1)
    floor = float(np.percentile(level, CHIN_FLOOR_PERCENTILE))
    ratio = level / max(floor, 1e-9)
    return level, pct, ratio, floor


def _artefact_windows(eeg, n_ep):
    flags = None
    for x in eeg:
        rms = np.sqrt((x.reshape(-1, WIN) ** 2).mean(1))
        hit = rms > MBM_RMS_FACTOR * max(float(np.median(rms)), 1e-9)
        flags = hit if flags is None else flags & hit
    return flags.reshape(n_ep, WINS_PER_EPOCH).sum(1)
