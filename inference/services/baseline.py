"""The CPU baseline: YASA's staging plus measured waveforms, and a rationale built from them.

Pure analysis (no Django). `analyse_night` measures a whole recording once; `explain_epoch` turns
the measurements of one epoch into the SleepVLM output object (spec/sleepvlm.md). The stage is the
one of YASA's shipped classifier; the rule ids are cited only when the measurements meet the
criteria written out in `rule_criteria` (one function per rule, spec/rules.md). The rationale describes
the signal and the rules only, as SleepVLM's do: the stage's origin (`origin_note`), its probability and
a stage the rules contradict (`rule_conflict`) are stored on the prediction, never in the text raters rate.

Measurements: inference.services.measurements (the evidence check reads the same); the stage and its
probability: `yasa.SleepStaging` (EEG C4-M1, else F4-M1, else O2-M1; EOG LOC, else ROC; EMG Chin EMG), on
the epochs' span.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from datasets.constants import EPOCH_SECONDS, RULE_IDS
from inference.services.measurements import (EMG, HALF_WINDOWS, SF, SW_SHARE_N3, Event, NightMeasurements,
                                             epoch_span, measure_night, quiet_yasa)

BASELINE_VERSION = "2"  # 2: origin and rule conflict left out of the rationale

EEG_FOR_STAGING = ("C4-M1", "F4-M1", "O2-M1")

YASA_STAGES = {"WAKE": "W", "W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "R", "R": "R"}
RULE_STAGE = {"W.1": "W", "W.2": "W", "W.3": "W", "N1.1": "N1", "N1.2": "N1", "N2.1": "N2", "N2.2": "N2",
              "N2.3": "N2", "N3.1": "N3", "R.1": "R", "R.2": "R", "MBM.1": "W"}


@dataclass(kw_only=True)
class NightAnalysis(NightMeasurements):
    """The recording's measurements with YASA's stage and its probabilities per epoch."""

    stage: list[str]
    probability: np.ndarray  # probability of YASA's stage, per epoch
    proba: dict[str, np.ndarray]  # per stage (W, N1, N2, N3, R)
    staging_channels: tuple[str, ...]


# ------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------


def analyse_night(signals: np.ndarray, derivations: Sequence[str], epoch_starts: Sequence[int],
                  measurements: NightMeasurements | None = None) -> NightAnalysis:
    """Measure and stage every epoch of one recording (signals: rows in `derivations` order, µV, 100 Hz);
    `measurements` of the same signals and epochs, where already made, are used as they are."""
    span = epoch_span(signals, derivations, epoch_starts)
    eeg = span.pick(EEG_FOR_STAGING)
    if eeg is None:
        raise ValueError("no EEG derivation (F4-M1, C4-M1 or O2-M1): YASA cannot stage this recording")
    eog, emg = span.pick(("LOC", "ROC")), EMG if EMG in span.x else None
    t = time.perf_counter()
    with quiet_yasa():
        stage, probability, proba = _stage(span.x, eeg, eog, emg, len(span.starts))
    seconds = {"staging": time.perf_counter() - t}
    measured = measurements or measure_night(span)
    fields = {**vars(measured), "seconds": {**measured.seconds, **seconds}}
    fields["channels"] = {"staging_eeg": eeg, "staging_eog": eog, "staging_emg": emg, **measured.channels}
    return NightAnalysis(**fields, stage=stage, probability=probability, proba=proba,
                         staging_channels=tuple(c for c in (eeg, eog, emg) if c))


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
    first_half = a.first_half_events(i)
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
        mbm=a.movement(i),
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
