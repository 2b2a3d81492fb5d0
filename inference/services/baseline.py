"""The CPU baseline: YASA's staging plus measured waveforms, and a rationale built from them.

Pure analysis (no Django). `analyse_night` measures a whole recording once; `explain_epoch` turns
the measurements of one epoch into the SleepVLM output object (spec/sleepvlm.md). The stage is the
one of YASA's shipped classifier; the rule ids are cited only when the measurements meet the
criteria written out in `rule_criteria` (one function per rule, spec/rules.md). The rationale describes
the signal and the rules only, as SleepVLM's do: the stage's origin (`origin_note`), its probability and
a stage the rules contradict (`rule_conflict`) are stored on the prediction, never in the text raters rate.

Measurements (signals are the prepared derivations: µV, 100 Hz, EEG/EOG band-passed 0.3–35 Hz):
- stage and its probability: `yasa.SleepStaging` (EEG C4-M1, else F4-M1, else O2-M1; EOG LOC, else
  ROC; EMG Chin EMG), on the epochs' span;
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
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import signal as sps
from scipy.stats import rankdata

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, EPOCH_SECONDS, RULE_IDS, TARGET_SFREQ

BASELINE_VERSION = "2"  # 2: origin and rule conflict left out of the rationale

SF = TARGET_SFREQ
WIN_S = 2  # band-power windows
WIN = WIN_S * SF
WINS_PER_EPOCH = EPOCH_SECONDS // WIN_S  # 15
HALF_WINDOWS = WINS_PER_EPOCH // 2 + 1  # "more than half the epoch": 8 of 15 windows

# Thresholds (criteria are written out in rule_criteria and in the rationale).
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

EEG_FOR_STAGING = ("C4-M1", "F4-M1", "O2-M1")
EEG_CENTRAL = ("C4-M1", "F4-M1", "O2-M1")
EEG_FRONTAL = ("F4-M1", "C4-M1", "O2-M1")
EEG_ALL = ("F4-M1", "C4-M1", "O2-M1")
OCCIPITAL = "O2-M1"
EMG = "Chin EMG"

YASA_STAGES = {"WAKE": "W", "W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "R", "R": "R"}
RULE_STAGE = {"W.1": "W", "W.2": "W", "W.3": "W", "N1.1": "N1", "N1.2": "N1", "N2.1": "N2", "N2.2": "N2",
              "N2.3": "N2", "N3.1": "N3", "R.1": "R", "R.2": "R", "MBM.1": "W"}


@dataclass(frozen=True)
class Event:
    """One detected waveform: onset/offset in seconds from the start of the analysed span."""

    start: float
    end: float
    freq_hz: float = 0.0
    amp_uv: float = 0.0


@dataclass
class NightAnalysis:
    n_epochs: int
    stage: list[str]
    probability: np.ndarray  # probability of YASA's stage, per epoch
    proba: dict[str, np.ndarray]  # per stage (W, N1, N2, N3, R)
    contiguous: np.ndarray  # epoch i directly follows epoch i-1
    channels: dict[str, str | None]  # role -> derivation used (None: missing)
    staging_channels: tuple[str, ...]
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


# ------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------


def analyse_night(signals: np.ndarray, derivations: Sequence[str], epoch_starts: Sequence[int]) -> NightAnalysis:
    """Measure every epoch of one recording (signals: rows in `derivations` order, µV, 100 Hz)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    derivations = list(derivations)
    starts = np.asarray(epoch_starts, dtype=np.int64)
    n_ep = len(starts)
    if n_ep == 0:
        raise ValueError("no epochs to analyse")
    used = [d for d in DERIVATIONS if d in derivations]
    data = _epoch_span(signals, starts, [derivations.index(d) for d in used])
    x = {d: data[k] for k, d in enumerate(used)}
    contiguous = np.zeros(n_ep, bool)
    contiguous[1:] = np.diff(starts) == EPOCH_SAMPLES

    def pick(order):
        return next((d for d in order if d in x), None)

    eeg_stage, central, frontal = pick(EEG_FOR_STAGING), pick(EEG_CENTRAL), pick(EEG_FRONTAL)
    if eeg_stage is None:
        raise ValueError("no EEG derivation (F4-M1, C4-M1 or O2-M1): YASA cannot stage this recording")
    eog = pick(("LOC", "ROC"))
    emg = EMG if EMG in x else None
    occipital = OCCIPITAL if OCCIPITAL in x else None
    eye_pair = "LOC" in x and "ROC" in x
    channels = {"staging_eeg": eeg_stage, "staging_eog": eog, "staging_emg": emg, "spindles": central,
                "slow_waves": frontal, "theta": central, "alpha": occipital, "eyes": "LOC/ROC" if eye_pair else None,
                "chin": emg}
    missing = _missing_notes(x, central, frontal, eye_pair, occipital, emg)
    timings["prepare"] = time.perf_counter() - t0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yasa_logger = logging.getLogger("yasa")
        level = yasa_logger.level
        yasa_logger.setLevel(logging.ERROR)
        try:
            t = time.perf_counter()
            stage, probability, proba = _stage(x, eeg_stage, eog, emg, n_ep)
            timings["staging"] = time.perf_counter() - t
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
        finally:
            yasa_logger.setLevel(level)

    t = time.perf_counter()
    alpha_win = theta_win = None
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
    timings["total"] = time.perf_counter() - t0

    return NightAnalysis(
        n_epochs=n_ep, stage=stage, probability=probability, proba=proba, contiguous=contiguous,
        channels=channels, staging_channels=tuple(c for c in (eeg_stage, eog, emg) if c), missing=missing,
        sw_share=sw_share, sw_waves=sw_waves, kcomplexes=kcomplexes, spindles=spindles,
        rems=rems, blinks=blinks, sems=sems, alpha_windows=alpha_win, theta_windows=theta_win,
        night_alpha_windows=None if alpha_flags is None else int(alpha_flags.sum()),
        chin_level=chin_level, chin_percentile=chin_pct, chin_ratio=chin_ratio, chin_floor=chin_floor,
        mbm_windows=mbm, seconds=timings,
    )


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


def _stage(x, eeg, eog, emg, n_ep):
    import mne
    import yasa

    names = [c for c in (eeg, eog, emg) if c]
    types = ["eeg"] + (["eog"] if eog else []) + (["emg"] if emg else [])
    info = mne.create_info(names, float(SF), types, verbose=False)
    raw = mne.io.RawArray(np.vstack([x[c] for c in names]) * 1e-6, info, verbose=False)
    hyp = yasa.SleepStaging(raw, eeg_name=eeg, eog_name=eog, emg_name=emg).predict()
    labels = [YASA_STAGES[str(v)] for v in np.asarray(hyp.hypno.values)]
    table = hyp.proba
    proba = {YASA_STAGES[str(c)]: table[c].to_numpy(dtype=float) for c in table.columns}
    probability = np.array([proba[s][i] for i, s in enumerate(labels)])
    if len(labels) != n_ep:
        raise RuntimeError(f"YASA staged {len(labels)} epochs, expected {n_ep}")
    return labels, probability, proba


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


# ------------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------------


@dataclass
class EpochFacts:
    """What the rule criteria read for one epoch (derived from NightAnalysis)."""

    stage: str
    prev_stage: str | None
    next_stage: str | None
    n3: bool
    sw_share: float
    first_half: list[tuple[str, Event, bool]]  # (kind, event, in previous epoch)
    spindle_or_k: bool
    rems: bool | None
    blinks: bool | None
    sems: bool | None
    low_chin: bool | None
    alpha_windows: int | None
    theta_windows: int
    night_alpha: bool | None
    mbm: bool


def epoch_facts(a: NightAnalysis, i: int) -> EpochFacts:
    prev_ok = i > 0 and bool(a.contiguous[i])
    next_ok = i + 1 < a.n_epochs and bool(a.contiguous[i + 1])
    first_half = [(kind, ev, False) for kind, evs in (("Spindle", a.spindles[i]), ("K-complex", a.kcomplexes[i]))
                  for ev in evs if ev.start - i * EPOCH_SECONDS < EPOCH_SECONDS / 2]
    if prev_ok:
        first_half += [(kind, ev, True)
                       for kind, evs in (("Spindle", a.spindles[i - 1]), ("K-complex", a.kcomplexes[i - 1]))
                       for ev in evs if ev.start - (i - 1) * EPOCH_SECONDS >= EPOCH_SECONDS / 2]
    return EpochFacts(
        stage=a.stage[i],
        prev_stage=a.stage[i - 1] if prev_ok else None,
        next_stage=a.stage[i + 1] if next_ok else None,
        n3=bool(a.sw_share[i] >= SW_SHARE_N3),
        sw_share=float(a.sw_share[i]),
        first_half=first_half,
        spindle_or_k=bool(a.spindles[i] or a.kcomplexes[i]),
        rems=None if a.rems is None else bool(a.rems[i]),
        blinks=None if a.blinks is None else bool(a.blinks[i]),
        sems=None if a.sems is None else bool(a.sems[i]),
        low_chin=a.low_chin(i),
        alpha_windows=None if a.alpha_windows is None else int(a.alpha_windows[i]),
        theta_windows=int(a.theta_windows[i]),
        night_alpha=a.night_has_alpha,
        mbm=bool(a.mbm_windows[i] >= HALF_WINDOWS),
    )


def rule_criteria(f: EpochFacts) -> dict[str, bool]:
    """Each rule id -> whether this epoch's measurements meet its criterion (spec/rules.md)."""
    alpha_half = f.alpha_windows is not None and f.alpha_windows >= HALF_WINDOWS
    theta_half = f.theta_windows >= HALF_WINDOWS
    chin_low = f.low_chin is True
    chin_not_low = f.low_chin is False
    no_spk = not f.spindle_or_k
    met: dict[str, bool] = {}
    # W: alpha over more than half; blinks with chin not at its lowest; REMs with chin not low
    met["W.1"] = alpha_half
    met["W.2"] = bool(f.blinks) and not chin_low
    met["W.3"] = bool(f.rems) and chin_not_low
    # N1: LAMF (theta-rich windows over more than half), no spindle/K-complex, no N3, chin not low, no REMs
    n1_common = no_spk and not f.n3 and not chin_low and not f.rems and not alpha_half
    met["N1.1"] = (f.night_alpha is True and f.alpha_windows is not None and theta_half and n1_common
                   and f.prev_stage in (None, "W", "N1"))
    met["N1.2"] = f.night_alpha is False and (theta_half or bool(f.sems)) and n1_common
    # N2
    met["N2.1"] = bool(f.first_half) and not f.n3
    # continue N2: follows N2 without a spindle/K-complex that would start N2 again (N2.1 not met)
    met["N2.2"] = (f.prev_stage == "N2" and not met["N2.1"] and not f.n3 and not alpha_half and not met["W.3"]
                   and not (f.rems and chin_low))
    met["N2.3"] = f.prev_stage == "N3" and not f.n3 and f.stage not in ("W", "R")
    # N3
    met["N3.1"] = f.n3
    # R: REMs + low chin + LAMF (no spindles/K-complexes, no slow-wave activity, no alpha over half)
    lamf = no_spk and not f.n3 and not alpha_half
    met["R.1"] = bool(f.rems) and chin_low and lamf
    met["R.2"] = f.prev_stage == "R" and chin_low and lamf and not f.rems
    # transitions: the previous epoch's stage ends because this epoch meets another stage's criteria
    met["N2.4"] = f.prev_stage == "N2" and (met["W.1"] or met["W.3"] or met["N3.1"] or met["R.1"])
    n1_evidence = chin_not_low and (theta_half or bool(f.sems)) and no_spk and not f.n3
    met["R.3"] = f.prev_stage == "R" and (met["W.1"] or met["W.3"] or met["N3.1"] or n1_evidence
                                          or (f.spindle_or_k and f.rems is False))
    # major body movement: EEG obscured over more than half; then the other criteria are not assessed
    if f.mbm:
        met = {r: False for r in met}
        met["MBM.1"] = bool(f.alpha_windows) or (f.prev_stage == "W" and f.next_stage == "W")
        met["MBM.2"] = not met["MBM.1"]
    else:
        met["MBM.1"] = met["MBM.2"] = False
    return {r: bool(met.get(r, False)) for r in RULE_IDS}


# ------------------------------------------------------------------------------------------------
# Explanation
# ------------------------------------------------------------------------------------------------


def explain_epoch(analysis: NightAnalysis, i: int) -> dict:
    """The SleepVLM output object for epoch i: rationale, cited rule ids, YASA's stage."""
    a = analysis
    f = epoch_facts(a, i)
    met = rule_criteria(f)
    rules = [r for r in RULE_IDS if met[r]]
    t0 = i * EPOCH_SECONDS
    ch = a.channels
    parts: list[str] = []

    if f.mbm:
        parts.append(f"Movement artefact: every EEG derivation exceeds 5x its night-median RMS in "
                     f"{int(a.mbm_windows[i])} of 15 2-s windows, so the measurements below are unreliable "
                     "and no other rule is assessed.")
    # slow waves
    waves = a.sw_waves[i]
    pct = _floor_pct(f.sw_share)
    if waves:
        parts.append(f"Slow waves (0.5–2 Hz, ≥ 75 µV p-p) on {ch['slow_waves']} fill {pct}% of the epoch: "
                     f"{len(waves)} wave{'s' if len(waves) != 1 else ''}, median "
                     f"{np.median([w.freq_hz for w in waves]):.1f} Hz, "
                     f"up to {max(w.amp_uv for w in waves):.0f} µV p-p.")
    else:
        parts.append(f"No slow waves ≥ 75 µV p-p on {ch['slow_waves']} (0% of the epoch).")
    # spindles and K-complexes in this epoch
    sp, kc = a.spindles[i], a.kcomplexes[i]
    parts += _event_list("Spindle", ch["spindles"], sp, t0)
    parts += _event_list("K-complex", ch["slow_waves"], kc, t0)
    if not sp and not kc:
        parts.append(f"No spindles on {ch['spindles']} and no K-complexes on {ch['slow_waves']}.")
    prev_events = [(k, e) for k, e, in_prev in f.first_half if in_prev]
    if prev_events and not any(not in_prev for _, _, in_prev in f.first_half):
        t_prev = (i - 1) * EPOCH_SECONDS
        for kind, ev in prev_events[:2]:
            where = ch["spindles"] if kind == "Spindle" else ch["slow_waves"]
            parts.append(f"{kind} on {where} in the last half of the previous epoch at "
                         f"{ev.start - t_prev:.1f}–{ev.end - t_prev:.1f} s "
                         f"({ev.freq_hz:.1f} Hz, {ev.amp_uv:.0f} µV p-p).")
    # alpha and theta
    if f.alpha_windows is not None:
        parts.append(f"Alpha (8–13 Hz) dominates {ch['alpha']} in {f.alpha_windows} of 15 2-s windows.")
    parts.append(f"Theta (4–8 Hz) carries ≥ 25% of the {ch['theta']} power in {f.theta_windows} of 15 2-s windows.")
    # eyes
    if a.rems is not None:
        parts.append(_eye_sentence("Rapid eye movements", a.rems[i], t0)
                     or "No rapid eye movements on LOC/ROC.")
        if a.blinks[i]:
            parts.append(_eye_sentence("Blink-like deflections (short, symmetric)", a.blinks[i], t0, durations=True))
        if a.sems[i]:
            s = a.sems[i]
            parts.append(f"Slow eye movement{'s' if len(s) > 1 else ''} on LOC/ROC at "
                         + _join([f"{e.start - t0:.1f}–{e.end - t0:.1f} s" for e in s[:3]])
                         + f" (initial deflection up to {max(e.freq_hz for e in s):.1f} s, "
                           f"up to {max(e.amp_uv for e in s):.0f} µV).")
    # chin
    if a.chin_level is not None:
        verdict = "low" if f.low_chin else "not low"
        parts.append(f"Chin EMG {verdict}: {a.chin_level[i]:.1f} µV (median 1-s RMS), at the "
                     f"{_ordinal(int(round(a.chin_percentile[i])))} percentile of the night and "
                     f"{a.chin_ratio[i]:.1f}x its lowest level ({a.chin_floor:.1f} µV).")
    if a.missing:
        parts.append("Channels: " + "; ".join(a.missing) + ".")

    # rules
    if rules:
        parts.append("Rules met: " + " ".join(_rule_reason(r, f, a, i) for r in rules))
    else:
        parts.append("No rule criterion is met by the measurements.")
    return {"reasoning_text": " ".join(parts), "applicable_rules": rules, "sleep_stage": f.stage}


def origin_note(analysis: NightAnalysis) -> str:
    """Where the baseline's stage comes from (stored on the prediction, never in the rationale)."""
    return f"YASA classifier ({', '.join(analysis.staging_channels)})"


def rule_conflict(stage: str, rule_ids: Sequence[str]) -> str:
    """The stages the cited rules point to when they exclude `stage` ("N2", "N1/N2"); empty when they agree,
    point nowhere (transition and movement rules) or there is no stage."""
    implied = {RULE_STAGE[r] for r in rule_ids if r in RULE_STAGE}
    if not stage or not implied or stage in implied:
        return ""
    return "/".join(s for s in ("W", "N1", "N2", "N3", "R") if s in implied)


# Version 1 rationales ended with the stage's origin and the rule conflict; the migrations move them into
# the prediction's fields.
LEGACY_ORIGIN = re.compile(r"\s*Stage (?:W|N1|N2|N3|R) from the (YASA classifier \([^)]*\)), probability [01]\.\d+\."
                           r"(?: The cited rules point to [A-Z0-9/]+ instead\.)?\s*$")


def split_legacy_rationale(text: str) -> tuple[str, str]:
    """(rationale without its origin sentences, origin note) of a version-1 baseline rationale; other text
    comes back unchanged with an empty note."""
    match = LEGACY_ORIGIN.search(text)
    if match is None:
        return text, ""
    body = text[:match.start()].replace("; stage from the classifier only.", ".")
    return body.replace("(yasa.rem_detect needs LOC and ROC;", "(needs LOC and ROC;"), match.group(1)


def _floor_pct(share: float) -> int:
    return int(np.floor(share * 100 + 1e-9))


def _event_list(kind: str, channel: str, events: list[Event], t0: float, limit: int = 3) -> list[str]:
    out = [f"{kind} on {channel} at {e.start - t0:.1f}–{e.end - t0:.1f} s ({e.freq_hz:.1f} Hz, {e.amp_uv:.0f} µV p-p)."
           for e in events[:limit]]
    if len(events) > limit:
        out.append(f"{len(events) - limit} more {kind.lower()}{'s' if len(events) - limit > 1 else ''} "
                   f"later in the epoch, up to {max(e.amp_uv for e in events[limit:]):.0f} µV p-p.")
    return out


def _eye_sentence(kind: str, events: list[Event], t0: float, durations: bool = False) -> str:
    if not events:
        return ""
    times = _join([f"{e.start - t0:.1f} s" for e in events[:6]]) + (", …" if len(events) > 6 else "")
    extra = ""
    if durations:
        lo, hi = (f"{fn(e.end - e.start for e in events):.1f}" for fn in (min, max))
        extra = f"{lo} s long, " if lo == hi else f"{lo}–{hi} s long, "
    return (f"{kind} on LOC/ROC: {len(events)} event{'s' if len(events) != 1 else ''} starting at {times} "
            f"({extra}up to {max(e.amp_uv for e in events):.0f} µV).")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _rule_reason(rule: str, f: EpochFacts, a: NightAnalysis, i: int) -> str:
    t0 = i * EPOCH_SECONDS
    pct = _floor_pct(f.sw_share)
    evidence = []
    if rule == "W.1":
        text = f"alpha in {f.alpha_windows} of 15 windows, more than half the epoch"
    elif rule == "W.2":
        text = "blink-like eye deflections with chin EMG not at its lowest level"
    elif rule == "W.3":
        text = "rapid eye movements with chin EMG not low"
    elif rule == "N1.1":
        text = (f"the recording shows alpha, {a.night_alpha_windows} alpha-dominant windows in the night; here alpha "
                f"is attenuated ({f.alpha_windows} of 15 windows) and theta-rich activity fills {f.theta_windows} "
                "of 15 windows, without spindles, K-complexes or REMs, chin EMG not low")
    elif rule == "N1.2":
        what = []
        if f.theta_windows >= HALF_WINDOWS:
            what.append(f"theta-rich activity in {f.theta_windows} of 15 windows")
        if f.sems:
            what.append("slow eye movements")
        text = "the recording shows no alpha; " + " and ".join(what)
    elif rule == "N2.1":
        for kind, ev, in_prev in f.first_half[:2]:
            base = (i - 1) * EPOCH_SECONDS if in_prev else t0
            where = "in the last half of the previous epoch" if in_prev else "in the first half of this epoch"
            evidence.append(f"{'K-complex' if kind == 'K-complex' else 'spindle'} at {ev.start - base:.1f} s {where}")
        text = "; ".join(evidence) + f"; slow waves {pct}%, below 20%"
    elif rule == "N2.2":
        text = ("follows N2, no spindle or K-complex in the first half of the epoch or the last half of the "
                f"previous one, slow waves {pct}%, below 20%, no alpha or REM criterion")
    elif rule == "N2.3":
        text = f"follows N3, slow waves {pct}%, below 20%, stage not W or R"
    elif rule == "N2.4":
        text = "follows N2 and meets " + _met_of(f, ("W.1", "W.3", "N3.1", "R.1")) + ", ending N2"
    elif rule == "N3.1":
        text = f"slow waves fill {pct}% of the epoch, at least 20%"
    elif rule == "R.1":
        text = "rapid eye movements with low chin EMG, no spindles, K-complexes or slow-wave activity"
    elif rule == "R.2":
        text = "follows R, chin EMG still low, no spindles, K-complexes or slow-wave activity, no REMs in this epoch"
    elif rule == "R.3":
        met = rule_criteria(f)
        why = [r for r in ("W.1", "W.3", "N3.1") if met[r]]
        reasons = [f"{r} criteria" for r in why]
        if f.low_chin is False and (f.theta_windows >= HALF_WINDOWS or f.sems) and not f.spindle_or_k and not f.n3:
            reasons.append("chin EMG no longer low with N1 criteria")
        if f.spindle_or_k and f.rems is False:
            reasons.append("spindles or K-complexes without REMs")
        text = "follows R; " + ", ".join(reasons) + ", ending R"
    elif rule == "MBM.1":
        text = "major body movement with alpha in the epoch or W on both sides"
    elif rule == "MBM.2":
        text = (f"major body movement without alpha or W on both sides; the following epoch is "
                f"{f.next_stage or 'not available'}")
    else:  # pragma: no cover - every rule id has a branch
        text = ""
    return f"{rule} ({text})."


def _met_of(f: EpochFacts, rules: tuple[str, ...]) -> str:
    met = rule_criteria(f)
    names = {"W.1": "W.1 (alpha)", "W.3": "W.3 (REMs, chin not low)", "N3.1": "N3.1 (slow waves)",
             "R.1": "R.1 (REMs, low chin)"}
    return " and ".join(names[r] for r in rules if met[r])
