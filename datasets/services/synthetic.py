"""Synthetic, physiologically plausible PSG nights (MASS-style channels, Sleep-EDF-style hypnogram).

The generator is deterministic for a seed and fully vectorised: continuous 1/f background and
band-limited rhythms are drawn once for the whole night in the frequency domain and shaped by
stage envelopes that cross-fade over a few seconds at epoch boundaries; discrete graphoelements
(spindles, K-complexes, vertex waves, sawtooth waves, blinks, saccades, slow and rapid eye
movements, EMG twitches) are added as short templates. Values are in microvolts.

Waveform definitions follow spec/rules.md (AASM v3): alpha 8-13 Hz occipital, theta 4-7 Hz,
spindles 12-14 Hz central 0.5-2 s, K-complexes >= 0.5 s biphasic frontal > 75 uV, slow waves
0.5-2 Hz > 75 uV p-p frontal, sawtooth 2-6 Hz central, REMs initial deflection < 0.5 s.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, EPOCH_SECONDS, STAGES
from datasets.services.signals import prepare

CHANNELS = (
    "EEG F4-CLE",
    "EEG C4-CLE",
    "EEG O2-CLE",
    "EOG Left Horiz",
    "EOG Right Horiz",
    "EMG Chin",
)
F4, C4, O2, LOC, ROC, CHIN = CHANNELS
EEG_CHANNELS = (F4, C4, O2)

# Stage label -> Sleep-EDF / MASS EDF+ annotation text (spec/stage-codes.md).
SLEEP_EDF_LABELS = {
    "W": "Sleep stage W",
    "N1": "Sleep stage 1",
    "N2": "Sleep stage 2",
    "N3": "Sleep stage 3",
    "R": "Sleep stage R",
}

MAINS_HZ = 50.0  # mains interference as in MASS (spec/rendering.md: 50 Hz notch for MASS)
_KPS = 4  # envelope knots per second (0.25-s resolution)
_W, _N1, _N2, _N3, _R = range(5)


@dataclass
class SyntheticNight:
    """A synthetic night: signals in microvolts keyed by channel name, one stage per 30-s epoch."""

    signals: dict[str, np.ndarray]
    sfreq: float
    stages: list[str]
    seed: int = 0
    sw_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def n_epochs(self) -> int:
        return len(self.stages)

    @property
    def duration_s(self) -> float:
        return self.n_epochs * EPOCH_SECONDS

    def stage_counts(self) -> dict[str, int]:
        return {s: self.stages.count(s) for s in STAGES}


# --------------------------------------------------------------------------------------------
# Hypnogram
# --------------------------------------------------------------------------------------------

_N3_MIN = (40.0, 26.0, 12.0, 5.0, 0.0, 0.0)  # N3 minutes per cycle
_R_MIN = (9.0, 15.5, 20.5, 25.5, 29.5, 31.5)  # R minutes per cycle (lengthening)


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    hyp_ss, sig_ss = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(hyp_ss), np.random.default_rng(sig_ss)


def make_hypnogram(hours: float = 8.0, seed: int = 0) -> list[str]:
    """Return a realistic hypnogram (one label W/N1/N2/N3/R per 30-s epoch) for ``seed``.

    Sleep latency 10-20 min, ~90-min cycles with N3 front-loaded and lengthening R periods,
    N1 at transitions, brief awakenings between cycles, and a final awakening.
    """
    rng = _rngs(seed)[0]
    n = max(1, int(round(hours * 3600 / EPOCH_SECONDS)))
    lat = int(rng.integers(22, 41))
    final = int(rng.integers(26, 46))
    if n < 480:  # naps / short recordings: keep latency and final wake proportionate
        lat, final = min(lat, max(2, n // 10)), min(final, max(2, n // 10))
    if n < lat + final + 40:  # too short for a night: latency, then N1/N2 (and N3 if room)
        lat = min(lat, max(1, n // 4))
        rest = n - lat
        n1 = min(rest, 4)
        n2 = min(rest - n1, 20)
        n3 = rest - n1 - n2
        return ["W"] * lat + ["N1"] * n1 + ["N2"] * n2 + ["N3"] * n3
    sp = n - lat - final
    nc = int(np.clip(round(sp / 180), 1, 6))
    w = rng.uniform(0.88, 1.12, nc)
    bounds = np.round(np.cumsum(w) / w.sum() * sp).astype(int)
    lengths = np.diff(np.concatenate([[0], bounds]))
    waso_cycle = int(rng.integers(nc // 2, nc - 1)) if nc >= 3 else -1

    def arousals(block: list[str], p: float) -> list[str]:
        """Break a light-sleep block with an arousal (W) followed by N1, with probability p."""
        if len(block) > 14 and rng.random() < p:
            k = int(rng.integers(4, len(block) - 8))
            aw, n1 = int(rng.integers(1, 3)), int(rng.integers(2, 4))
            block[k : k + aw + n1] = ["W"] * aw + ["N1"] * n1
        return block

    seq = ["W"] * lat
    prev_awake = True
    for i, c in enumerate(lengths):
        last = i == nc - 1
        if i == 0:
            n1_in = int(rng.integers(5, 9))
        else:
            n1_in = int(rng.integers(3, 6)) if prev_awake else int(rng.integers(0, 2))
        n3 = int(round(_N3_MIN[i] * 2 * rng.uniform(0.85, 1.15)))
        r = int(round(_R_MIN[i] * 2 * rng.uniform(0.85, 1.15)))
        n1_pre_r = int(rng.integers(1, 5))
        if last:
            w_end = 0
        elif i == waso_cycle:
            w_end = int(rng.integers(8, 17))
        elif rng.random() < 0.85:
            w_end = int(rng.integers(2, 8))
        else:
            w_end = 0
        n1_post_r = 0 if (w_end or last) else int(rng.integers(2, 5))
        fixed = n1_in + n1_pre_r + w_end + n1_post_r
        n2 = c - fixed - n3 - r
        min_n2 = int(0.3 * c)
        if n2 < min_n2:  # short cycle: shrink N3 and R proportionally
            k = max(0.0, (c - fixed - min_n2) / max(1, n3 + r))
            n3, r = int(n3 * k), int(r * k)
            n2 = c - fixed - n3 - r
        n2_desc = int(round(n2 * rng.uniform(0.5, 0.65)))
        n2_asc = n2 - n2_desc

        block = ["N1"] * n1_in
        if i == 0 and n2_desc > 20:  # unstable sleep onset: N2 interrupted by N1
            k = int(rng.integers(3, 8))
            block += ["N2"] * k + ["N1"] * int(rng.integers(1, 3))
            n2_desc -= len(block) - n1_in
        block += arousals(["N2"] * n2_desc, 0.8)
        deep = ["N3"] * n3
        if n3 > 16:  # N3 occasionally lightens to N2
            for _ in range(int(rng.integers(1, 3))):
                k, m = int(rng.integers(4, n3 - 4)), int(rng.integers(1, 3))
                deep[k : k + m] = ["N2"] * m
        block += deep
        block += arousals(["N2"] * n2_asc, 0.6) + ["N1"] * n1_pre_r
        rem = ["R"] * r
        if r > 30 and rng.random() < 0.6:  # brief arousal inside a long R period
            k = int(rng.integers(8, r - 8))
            rem[k : k + 2] = ["W", "N1"]
        block += rem + ["N1"] * n1_post_r + ["W"] * w_end
        block = block[:c] + ["N2"] * max(0, c - len(block))
        seq += block
        prev_awake = w_end > 0
    seq += ["W"] * final
    return seq[:n] + ["W"] * max(0, n - len(seq))


def hypnogram_intervals(stages: list[str]) -> list[tuple[float, float, str]]:
    """Merge consecutive equal stages into (onset_s, duration_s, stage) intervals."""
    out: list[tuple[float, float, str]] = []
    start = 0
    for i in range(1, len(stages) + 1):
        if i == len(stages) or stages[i] != stages[start]:
            out.append((start * EPOCH_SECONDS, (i - start) * EPOCH_SECONDS, stages[start]))
            start = i
    return out


# --------------------------------------------------------------------------------------------
# Signal helpers
# --------------------------------------------------------------------------------------------


def _noise(rng, n, sfreq, fmin, fmax, exponent=0.0, knee=0.0, rms=1.0) -> np.ndarray:
    """Gaussian noise with PSD ~ 1/(f^2+knee^2)^(exponent/2) in [fmin, fmax], given RMS."""
    m = n // 2 + 1
    df = sfreq / n
    i0 = max(1, int(np.ceil(fmin / df)))
    i1 = min(m - 2, int(np.floor(fmax / df)))
    if i1 < i0:  # band not resolvable at this length
        return np.zeros(n, np.float32)
    f = np.arange(i0, i1 + 1) * df
    amp = (f**2 + knee**2) ** (-exponent / 4.0)
    amp *= rms * n / (2.0 * np.sqrt(np.sum(amp**2)))
    k = i1 - i0 + 1
    z = np.zeros(m, np.complex64)
    z[i0 : i1 + 1] = (rng.standard_normal(k, np.float32) + 1j * rng.standard_normal(k, np.float32)) * amp
    import scipy.fft  # here: ~27 MB that a process importing this module for its names does not need

    return scipy.fft.irfft(z, n)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average (edge-padded) over ``width`` knots: a linear cross-fade at steps."""
    if width <= 1:
        return x
    pad = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    c = np.cumsum(np.concatenate([[0.0], pad]))
    return (c[width:] - c[:-width]) / width


def _to_samples(knots: np.ndarray, n: int, sfreq: float) -> np.ndarray:
    """Linearly interpolate envelope knots (every 1/_KPS s) to ``n`` samples (float32)."""
    knots = np.asarray(knots, np.float32)
    step = sfreq / _KPS
    if abs(step - round(step)) < 1e-9:
        step = int(round(step))
        need = -(-n // step) + 1
        k = np.concatenate([knots, np.full(max(0, need - len(knots)), knots[-1], np.float32)])
        w = (np.arange(step, dtype=np.float32) / step)[None, :]
        out = np.diff(k[:need])[:, None] * w
        out += k[: need - 1, None]
        return out.ravel()[:n]
    t = np.arange(n) / sfreq
    return np.interp(t, np.arange(len(knots)) / _KPS, knots).astype(np.float32)


def _epoch_knots(values_per_stage, codes, kpe, rng=None, jitter=0.0) -> np.ndarray:
    """Per-epoch stage value (optionally log-normal jittered) repeated to knot resolution."""
    v = np.asarray(values_per_stage, float)[codes]
    if rng is not None and jitter:
        v = v * np.exp(rng.normal(0.0, jitter, len(v)))
    return np.repeat(v, kpe)


def _axpy(y: np.ndarray, a: float, x: np.ndarray) -> None:
    """y += a * x in place, in one pass (BLAS saxpy) for contiguous float32 arrays."""
    from scipy.linalg.blas import saxpy

    saxpy(x, y, a=a)


def _add(sig: np.ndarray, start: int, tmpl: np.ndarray) -> None:
    """Add template at sample ``start`` (clipped to the array)."""
    a, b = max(0, start), min(len(sig), start + len(tmpl))
    if b > a:
        sig[a:b] += tmpl[a - start : b - start]


# --------------------------------------------------------------------------------------------
# Night synthesis
# --------------------------------------------------------------------------------------------


def synthesize_night(hours: float = 8.0, seed: int = 0, sfreq: float = 256.0) -> SyntheticNight:
    """Synthesize a whole night: 6 MASS-style channels in microvolts plus its hypnogram."""
    stages = make_hypnogram(hours, seed)
    rng = _rngs(seed)[1]
    codes = np.array([STAGES.index(s) for s in stages])
    n_ep = len(codes)
    spe = int(round(EPOCH_SECONDS * sfreq))  # samples per epoch
    n = n_ep * spe
    kpe = EPOCH_SECONDS * _KPS  # knots per epoch
    nk = n_ep * kpe
    fmax = min(45.0, 0.45 * sfreq)  # band edge of most EEG/EOG sources
    fmax_hi = 0.45 * sfreq  # 1/f background extends to the anti-aliasing edge
    xfade = 3 * _KPS  # 3-s cross-fade of stage envelopes

    def env(values, jitter=0.1, width=xfade):
        return _to_samples(_smooth(_epoch_knots(values, codes, kpe, rng, jitter), width), n, sfreq)

    def slow_mod(depth, fmax_mod=0.05):
        """Slow multiplicative modulation exp(N(0, depth)) on the knot grid."""
        return np.exp(_noise(rng, nk, _KPS, 0.002, fmax_mod, rms=depth))

    # ---- eyes open/closed in W (alpha vs blinks), per knot -----------------------------------
    eyes_closed = np.zeros(nk, bool)
    for e in np.flatnonzero(codes == _W):
        fc = rng.uniform(0.6, 1.0) if rng.random() < 0.7 else rng.uniform(0.0, 0.35)
        k = int(round(fc * kpe))
        if rng.random() < 0.5:
            eyes_closed[e * kpe : e * kpe + k] = True
        else:
            eyes_closed[(e + 1) * kpe - k : (e + 1) * kpe] = True
    is_w_knot = np.repeat(codes == _W, kpe)
    eyes_open = is_w_knot & ~eyes_closed

    # ---- slow-wave bursts: fraction of each epoch with > 75 uV p-p frontal slow waves ---------
    sw_frac = np.zeros(n_ep)
    n3_idx = np.flatnonzero(codes == _N3)
    if len(n3_idx):
        early = n3_idx < n_ep * 0.4
        sw_frac[n3_idx] = np.where(early, rng.uniform(0.3, 0.5, len(n3_idx)),
                                   rng.uniform(0.26, 0.4, len(n3_idx)))
    n2_idx = np.flatnonzero(codes == _N2)
    sw_frac[n2_idx] = rng.uniform(0.0, 0.06, len(n2_idx))
    sw_on = np.zeros(nk)
    for e in np.flatnonzero(sw_frac > 0):
        on = int(round(sw_frac[e] * EPOCH_SECONDS))  # seconds "on"
        if on < 2:
            continue
        nb = int(rng.integers(1, max(2, on // 4) + 1))
        cuts = np.sort(rng.choice(np.arange(1, on), nb - 1, replace=False)) if nb > 1 else np.zeros(0, int)
        bursts = np.diff(np.concatenate([[0], cuts, [on]])).astype(int)
        gaps = rng.multinomial(EPOCH_SECONDS - on, np.ones(nb + 1) / (nb + 1))
        t = e * EPOCH_SECONDS + gaps[0]
        for b, g in zip(bursts, gaps[1:]):
            sw_on[t * _KPS : (t + b) * _KPS] = 1.0
            t += b + g
    sw_amp_on = rng.uniform(48, 68, nk)  # peak amplitude (uV, frontal) inside bursts
    sw_amp_off = _epoch_knots([0, 4, 8, 16, 0], codes, kpe)
    sw_knots = _smooth(sw_on, 2 * _KPS) * sw_amp_on + _smooth(sw_amp_off, xfade)
    sw_env = _to_samples(sw_knots, n, sfreq)
    sw_freq = _to_samples(0.95 + 0.35 * np.tanh(_noise(rng, nk, _KPS, 0.01, 0.3, rms=1.0)), n, sfreq)
    phase = np.cumsum(sw_freq * (2 * np.pi / sfreq), dtype=np.float64)
    slow = sw_env * (-np.cos(phase) + 0.12 * np.sin(2 * phase)).astype(np.float32)
    del phase, sw_freq, sw_env

    # ---- continuous background sources (unit RMS) and stage envelopes --------------------------
    pink = _noise(rng, n, sfreq, 0.3, fmax_hi, exponent=1.0, knee=1.0)
    brown = _noise(rng, n, sfreq, 0.3, fmax, exponent=2.0, knee=0.7)
    theta = _noise(rng, n, sfreq, 4.0, 7.5, exponent=0.0)
    alpha = _noise(rng, n, sfreq, 8.5, 11.5, exponent=0.0)
    beta = _noise(rng, n, sfreq, 15.0, fmax, exponent=1.0)
    #                       W    N1   N2   N3   R
    e_pink = env([5.0, 4.5, 4.5, 4.5, 4.5])
    e_brown = env([7.0, 11.0, 15.0, 18.0, 9.0])
    e_theta = env([2.0, 6.5, 4.0, 3.0, 6.0])
    alpha_knots = _epoch_knots([0.0, 3.0, 1.8, 1.2, 3.0], codes, kpe, rng, 0.15)
    alpha_knots = np.where(eyes_closed, rng.uniform(9, 13) * np.exp(rng.normal(0, 0.15, nk)), alpha_knots)
    alpha_knots = np.where(eyes_open, 2.5, alpha_knots)
    e_alpha = _to_samples(_smooth(_smooth(alpha_knots, 2 * _KPS), 2 * _KPS) * slow_mod(0.15, 0.2), n, sfreq)
    beta_knots = np.where(eyes_open, 5.0, _epoch_knots([3.5, 2.0, 1.4, 1.1, 2.2], codes, kpe, rng, 0.1))
    e_beta = _to_samples(_smooth(beta_knots, xfade), n, sfreq)

    sig = {ch: np.zeros(n, np.float32) for ch in CHANNELS}
    #           F4    C4    O2
    w_pink = (1.0, 1.0, 1.0)
    w_brown = (1.0, 0.95, 0.8)
    w_theta = (1.0, 1.0, 0.75)
    w_alpha = (0.35, 0.55, 1.0)
    w_beta = (1.0, 0.9, 0.8)
    w_slow = (1.0, 0.8, 0.55)
    comps = [(pink * e_pink, w_pink), (brown * e_brown, w_brown), (theta * e_theta, w_theta),
             (alpha * e_alpha, w_alpha), (beta * e_beta, w_beta), (slow, w_slow)]
    del pink, brown, theta, alpha, beta
    for x, ws in comps:
        for ch, wch in zip(EEG_CHANNELS, ws):
            _axpy(sig[ch], wch, x)
    del comps, x
    e_local = env([3.0, 3.5, 4.0, 5.0, 3.0])
    for ch in EEG_CHANNELS:
        sig[ch] += e_local * _noise(rng, n, sfreq, 0.3, fmax, exponent=1.5, knee=1.0)

    # ---- EEG graphoelements ---------------------------------------------------------------------
    def place(e, dur_s):
        return int((e * EPOCH_SECONDS + rng.uniform(0, EPOCH_SECONDS - dur_s)) * sfreq)

    def t_axis(dur_s):
        return np.arange(int(dur_s * sfreq)) / sfreq

    def add_eeg(start, tmpl, weights):
        for ch, wch in zip(EEG_CHANNELS, weights):
            _add(sig[ch], start, wch * tmpl)

    def spindle(start):
        dur = rng.uniform(0.6, 1.8)
        t = t_axis(dur)
        f = rng.uniform(12.0, 14.0)
        a = rng.uniform(10.0, 20.0)
        tmpl = a * np.sin(np.pi * t / dur) ** 2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        add_eeg(start, tmpl, (0.7, 1.0, 0.45))

    for e in np.flatnonzero((codes == _N2) | (codes == _N3)):
        deep = codes[e] == _N3
        for _ in range(rng.poisson(0.8 if deep else 2.6)):
            spindle(place(e, 2.0))
        for _ in range(rng.poisson(0.3 if deep else 1.0)):
            # K-complex: sharp negative then positive component, ~1 s, 100-160 uV p-p frontal
            t = t_axis(1.4)
            a1, a2 = rng.uniform(65, 100), rng.uniform(35, 55)
            s1, s2 = rng.uniform(0.09, 0.13), rng.uniform(0.18, 0.26)
            tmpl = -a1 * np.exp(-(((t - 0.3) / s1) ** 2)) + a2 * np.exp(-(((t - 0.72) / s2) ** 2))
            start = place(e, 3.0)
            add_eeg(start, tmpl, (1.0, 0.8, 0.45))
            if rng.random() < 0.4:
                spindle(start + int(1.0 * sfreq))

    for e in np.flatnonzero(codes == _N1):  # vertex sharp waves
        for _ in range(rng.poisson(0.8)):
            t = t_axis(0.5)
            tmpl = -rng.uniform(35, 60) * np.exp(-(((t - 0.25) / rng.uniform(0.05, 0.07)) ** 2))
            add_eeg(place(e, 0.5), tmpl, (0.8, 1.0, 0.4))

    for e in np.flatnonzero(codes == _R):  # sawtooth bursts
        for _ in range(rng.poisson(0.9)):
            dur = rng.uniform(2.0, 5.0)
            t = t_axis(dur)
            ph = (rng.uniform(2.5, 4.5) * t + rng.uniform()) % 1.0
            saw = np.where(ph < 0.25, ph / 0.25, (1.0 - ph) / 0.75) * 2 - 1  # fast rise, slow fall
            tmpl = rng.uniform(15, 28) * np.sin(np.pi * t / dur) ** 0.5 * saw
            add_eeg(place(e, dur), tmpl, (0.6, 1.0, 0.5))

    # ---- EOG: eye position signal (LOC +, ROC -) plus frontal EEG leak ---------------------------
    eye = np.zeros(n, np.float32)
    for e in np.flatnonzero(codes == _W):
        open_s = eyes_open[e * kpe : (e + 1) * kpe].sum() / _KPS
        for _ in range(rng.poisson(0.25 * open_s + 0.2)):  # blinks: LOC down, ROC up
            dur = rng.uniform(0.25, 0.45)
            t = t_axis(dur)
            _add(eye, place(e, dur), -rng.uniform(80, 170) * np.sin(np.pi * t / dur) ** 2)
        for _ in range(rng.poisson(0.12 * open_s)):  # waking saccades
            _add(eye, place(e, 2.5), _rem(rng, sfreq, rng.uniform(40, 120), rng.uniform(0.8, 1.5)))
    slow_eye = (codes == _N1) | ((codes == _W) & (np.roll(codes, -1) == _N1))
    for e in np.flatnonzero(slow_eye):  # slow eye movements (> 0.5 s deflection)
        for _ in range(rng.poisson(1.6 if codes[e] == _N1 else 0.8)):
            dur = rng.uniform(2.0, 5.0)
            t = t_axis(dur)
            amp = rng.choice([-1, 1]) * rng.uniform(40, 110)
            _add(eye, place(e, dur), amp * np.sin(np.pi * t / dur) ** 2)
    for e in np.flatnonzero(codes == _R):  # rapid eye movements, in bursts (phasic R)
        if rng.random() < 0.3:
            continue
        for _ in range(rng.poisson(2.0) + 1):
            t0 = rng.uniform(0, EPOCH_SECONDS - 3.0)
            for _ in range(rng.poisson(1.5) + 1):
                start = int((e * EPOCH_SECONDS + t0) * sfreq)
                _add(eye, start, _rem(rng, sfreq, rng.uniform(60, 180), rng.uniform(0.35, 0.8)))
                t0 = min(EPOCH_SECONDS - 3.0, t0 + rng.uniform(0.3, 1.2))
    eye += env([2.0, 2.0, 1.5, 1.5, 2.0]) * _noise(rng, n, sfreq, 0.3, 8.0, exponent=1.0)

    frontal = sig[F4]  # brain signal only at this point (no drift/mains yet)
    eog_local = env([4.0, 3.5, 3.0, 3.0, 3.0])
    for ch, polarity, leak in ((LOC, 1.0, 0.45), (ROC, -1.0, 0.5)):
        _axpy(sig[ch], polarity, eye)
        _axpy(sig[ch], leak, frontal)
        sig[ch] += eog_local * _noise(rng, n, sfreq, 0.3, fmax, exponent=1.0, knee=1.0)
    del eye

    # ---- chin EMG: tone lowest in R, phasic twitches, movement bursts in W ----------------------
    emg_hi = min(100.0, 0.45 * sfreq)
    tone_knots = _epoch_knots([11.0, 6.0, 4.5, 4.0, 1.6], codes, kpe, rng, 0.12)
    tone_knots = np.where(eyes_open, tone_knots * 1.4, tone_knots)
    tone_knots = _smooth(tone_knots, xfade) * slow_mod(0.1)
    burst = np.zeros(n, np.float32)
    for e in np.flatnonzero(codes == _R):
        for _ in range(rng.poisson(2.0)):
            dur = rng.uniform(0.1, 0.35)
            t = t_axis(dur)
            _add(burst, place(e, dur), rng.uniform(6, 15) * np.sin(np.pi * t / dur) ** 2)
    for e in np.flatnonzero(codes == _W):
        for _ in range(rng.poisson(0.5)):
            dur = rng.uniform(1.0, 4.0)
            t = t_axis(dur)
            tmpl = rng.uniform(20, 45) * np.sin(np.pi * t / dur) ** 2
            start = place(e, dur)
            _add(burst, start, tmpl)
    emg_src = _noise(rng, n, sfreq, 10.0, emg_hi, exponent=0.0)
    sig[CHIN] += (_to_samples(tone_knots, n, sfreq) + burst) * emg_src
    sig[F4] += 0.12 * burst * emg_src  # movement/muscle artefact reaches frontal EEG
    del burst, emg_src

    # ---- slow drift and mains interference --------------------------------------------------------
    drift_rms = (8.0, 8.0, 8.0, 20.0, 20.0, 3.0)
    for ch, d in zip(CHANNELS, drift_rms):
        sig[ch] += _to_samples(_noise(rng, nk, _KPS, 0.003, 0.15, exponent=1.0, rms=d), n, sfreq)
    if MAINS_HZ < 0.5 * sfreq:
        mains = np.sin(2 * np.pi * MAINS_HZ * np.arange(n) / sfreq + rng.uniform(0, 2 * np.pi))
        mains = mains.astype(np.float32) * _to_samples(slow_mod(0.2), n, sfreq)
        for ch, a in zip(CHANNELS, (2.5, 2.0, 2.5, 3.0, 3.0, 4.0)):
            _axpy(sig[ch], a, mains)

    signals = {ch: sig[ch].astype(np.float64) for ch in CHANNELS}
    return SyntheticNight(signals=signals, sfreq=float(sfreq), stages=stages, seed=seed, sw_fraction=sw_frac)


def _rem(rng, sfreq, amp, tau_decay):
    """Conjugate saccade as seen on AC-coupled EOG: sharp (< 0.2 s) rise, exponential return."""
    t = np.arange(int(2.5 * sfreq)) / sfreq - 0.3
    tau_rise = rng.uniform(0.02, 0.04)
    shape = 1.0 / (1.0 + np.exp(-t / tau_rise)) * np.exp(-np.clip(t, 0, None) / tau_decay)
    return (rng.choice([-1.0, 1.0]) * amp * shape).astype(np.float32)


# --------------------------------------------------------------------------------------------
# EDF+ export
# --------------------------------------------------------------------------------------------


def write_synthetic_edf(path, hours: float = 8.0, seed: int = 0, sfreq: float = 256.0, *, patient: str = "",
                        recording: str = "", startdate: datetime.date = datetime.date(2024, 1, 1),
                        starttime: datetime.time = datetime.time(23, 0, 0),
                        notes: tuple[tuple[float, str], ...] = ()) -> SyntheticNight:
    """Synthesize a night and write it as EDF+ (6 MASS-style channels in uV, hypnogram annotations).

    The header names no one unless `patient` / `recording` give its patient and recording fields as written
    (e.g. "MCH-0234567 F 14-MAR-1962 Doe_Jane"; the recording field should then start with the EDF+
    "Startdate dd-MMM-yyyy" of `startdate`); `notes` adds free-text annotations (onset s, text)."""
    from edfio import Edf, EdfAnnotation, EdfSignal, Patient
    from edfio import Recording as EdfRecording

    night = synthesize_night(hours=hours, seed=seed, sfreq=sfreq)
    signals = []
    for ch in CHANNELS:
        x = night.signals[ch]
        lo, hi = float(np.floor(x.min())) - 1.0, float(np.ceil(x.max())) + 1.0
        kind = ch.split()[0]
        signals.append(
            EdfSignal(
                x,
                sampling_frequency=sfreq,
                label=ch,
                transducer_type="EMG electrode" if kind == "EMG" else "AgAgCl electrode",
                physical_dimension="uV",
                physical_range=(lo, hi),
                prefiltering="None (synthetic)",
            )
        )
    annotations = [
        EdfAnnotation(onset, duration, SLEEP_EDF_LABELS[stage])
        for onset, duration, stage in hypnogram_intervals(night.stages)
    ] + [EdfAnnotation(onset, None, text) for onset, text in notes]
    edf = Edf(
        signals,
        patient=Patient(code=f"SYNTH-{seed}"),
        recording=EdfRecording(startdate=startdate, equipment_code="synthetic_psg"),
        starttime=starttime,
        data_record_duration=1.0,
        annotations=annotations,
    )
    edf.write(Path(path))
    with open(path, "r+b") as handle:  # the identity fields exactly as given (bytes 8-88 and 88-168)
        for offset, text in ((8, patient), (88, recording)):
            if text:
                handle.seek(offset)
                handle.write(text.encode("ascii").ljust(80)[:80])
    return night


def prepared_signals(night: SyntheticNight) -> tuple[np.ndarray, tuple[str, ...], tuple[int, ...]]:
    """The night as an import stores it: the six derivations (CHANNELS in band order) filtered and
    resampled to 100 Hz, and each epoch's first sample."""
    rows = [prepare(night.signals[channel], night.sfreq, derivation, MAINS_HZ)[0]
            for channel, derivation in zip(CHANNELS, DERIVATIONS)]
    return np.vstack(rows), tuple(DERIVATIONS), tuple(range(0, night.n_epochs * EPOCH_SAMPLES, EPOCH_SAMPLES))
