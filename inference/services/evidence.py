"""Rationale evidence check: each cited AASM rule against the epoch's measured signal.

For every rule a rationale cites, a verdict: `supported` (every criterion measured and met), `contradicted`
(a measured criterion not met) or `not measurable` (a derivation is missing, the epoch is a movement
artefact, or the rule is not one the check measures), with each criterion's measured value and threshold
(spec/rules.md). The measurements are those the baseline's rationales are built from
(inference.services.measurements), made once per recording. Checked rules: W.1 (occipital alpha), N2.1
(spindle or K-complex in the first half, N3 not met), N3.1 (the 20 % slow-wave rule), R.1 (REMs with low chin
EMG) and R.2 (chin EMG still low); the others depend on context (neighbouring stages, arousals) the signal
of one epoch cannot settle.

The result is JSON, the same shape whoever wrote the rationale (model or expert):
{"rules": [{"rule", "verdict", "criteria": [{"quantity", "channel", "value", "value_text", "threshold",
"met"}], "note"}], "summary": {"verdict", "supported", "contradicted", "not_measurable"}}.
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

from datasets.constants import TARGET_SFREQ
from inference.services.measurements import (CHIN_LOW_PERCENTILE, CHIN_LOW_RATIO, HALF_WINDOWS, SW_SHARE_N3,
                                             WINS_PER_EPOCH, NightMeasurements, epoch_span, measure_night)

SUPPORTED, CONTRADICTED, NOT_MEASURABLE = "supported", "contradicted", "not measurable"
NO_RULES = "no rules cited"


def _criterion(quantity: str, channel: str | None, value, value_text: str, threshold: str, met: bool | None) -> dict:
    return {"quantity": quantity, "channel": channel or "", "value": None if value is None else float(value),
            "value_text": value_text, "threshold": threshold, "met": met}


def _slow_waves(m: NightMeasurements, i: int, at_least: bool) -> dict:
    share = float(m.sw_share[i])
    return _criterion("slow-wave share (0.5–2 Hz, ≥ 75 µV p-p)", m.channels["slow_waves"], round(share, 4),
                      f"{share * 100:.0f} %", f"{'≥' if at_least else '<'} {SW_SHARE_N3 * 100:.0f} %",
                      share >= SW_SHARE_N3 if at_least else share < SW_SHARE_N3)


def _alpha(m: NightMeasurements, i: int) -> dict:
    if m.alpha_windows is None:
        return _criterion("alpha-dominant 2-s windows (8–13 Hz)", None, None, "no O2-M1", "> 50 % of the epoch", None)
    n = int(m.alpha_windows[i])
    return _criterion("alpha-dominant 2-s windows (8–13 Hz)", m.channels["alpha"], n, f"{n} of {WINS_PER_EPOCH}",
                      f"> 50 % ({HALF_WINDOWS} of {WINS_PER_EPOCH})", n >= HALF_WINDOWS)


def _spindles_or_k(m: NightMeasurements, i: int) -> dict:
    n = len(m.first_half_events(i))
    return _criterion("spindles and K-complexes in the first half (or the previous epoch's last half)",
                      m.channels["spindles"], n, str(n), "≥ 1", n >= 1)


def _rems(m: NightMeasurements, i: int) -> dict:
    if m.rems is None:
        return _criterion("rapid eye movements", None, None, "needs LOC and ROC", "≥ 1", None)
    n = len(m.rems[i])
    return _criterion("rapid eye movements", m.channels["eyes"], n, str(n), "≥ 1", n >= 1)


def _low_chin(m: NightMeasurements, i: int) -> dict:
    threshold = f"≤ {CHIN_LOW_PERCENTILE:.0f}th percentile of the night and ≤ {CHIN_LOW_RATIO:.0f}x its lowest level"
    if m.chin_level is None:
        return _criterion("chin EMG level", None, None, "no Chin EMG", threshold, None)
    pct, ratio = float(m.chin_percentile[i]), float(m.chin_ratio[i])
    return _criterion("chin EMG level", m.channels["chin"], round(pct, 1),
                      f"percentile {pct:.0f} of the night, {ratio:.1f}x its lowest level", threshold, m.low_chin(i))


CRITERIA = {
    "W.1": lambda m, i: [_alpha(m, i)],
    "N2.1": lambda m, i: [_spindles_or_k(m, i), _slow_waves(m, i, at_least=False)],
    "N3.1": lambda m, i: [_slow_waves(m, i, at_least=True)],
    "R.1": lambda m, i: [_rems(m, i), _low_chin(m, i)],
    "R.2": lambda m, i: [_low_chin(m, i)],
}
UNCHECKED = (f"not checked: the signal of one epoch settles {', '.join(CRITERIA)} only; the other rules depend on "
             "context (neighbouring epochs, arousals, movement)")


def _verdict(criteria: list[dict]) -> str:
    if any(c["met"] is False for c in criteria):
        return CONTRADICTED
    return SUPPORTED if all(c["met"] for c in criteria) else NOT_MEASURABLE


def check_rule(m: NightMeasurements | None, i: int, rule: str, unmeasured: str = "") -> dict:
    """One cited rule's verdict on epoch i (`unmeasured`: why there are no measurements, where m is None)."""
    if rule not in CRITERIA:
        return {"rule": rule, "verdict": NOT_MEASURABLE, "criteria": [], "note": UNCHECKED}
    if m is None:
        return {"rule": rule, "verdict": NOT_MEASURABLE, "criteria": [], "note": unmeasured}
    if m.movement(i):
        return {"rule": rule, "verdict": NOT_MEASURABLE, "criteria": [],
                "note": "movement artefact over more than half the epoch: the measurements are unreliable"}
    criteria = CRITERIA[rule](m, i)
    return {"rule": rule, "verdict": _verdict(criteria), "criteria": criteria, "note": ""}


def check_epoch(m: NightMeasurements | None, i: int, rule_ids: Sequence[str], unmeasured: str = "") -> dict:
    """The verdict of every cited rule and the summary for one rationale on epoch i."""
    rules = [check_rule(m, i, r, unmeasured) for r in dict.fromkeys(rule_ids)]
    return {"rules": rules, "summary": summarize(rules)}


def summarize(rules: list[dict]) -> dict:
    """The per-rationale summary: contradicted if any rule is, else supported if any is; the counts."""
    counts = {v: sum(r["verdict"] == v for r in rules) for v in (SUPPORTED, CONTRADICTED, NOT_MEASURABLE)}
    verdict = next((v for v in (CONTRADICTED, SUPPORTED, NOT_MEASURABLE) if counts[v]), NO_RULES)
    return {"verdict": verdict, "supported": counts[SUPPORTED], "contradicted": counts[CONTRADICTED],
            "not_measurable": counts[NOT_MEASURABLE]}


def is_contradicted(evidence: dict) -> bool:
    """The rationale cites a rule its epoch's measurements contradict."""
    return bool(evidence and evidence["summary"]["contradicted"])


@lru_cache(maxsize=2)
def recording_measurements(signal_file: str, derivations: tuple[str, ...],
                           epoch_starts: tuple[int, ...]) -> NightMeasurements:
    """The measurements of one recording's prepared signals (once per process and signals)."""
    from datasets.services.storage import load_array

    return measure_night(epoch_span(load_array(signal_file), derivations, epoch_starts))


def epoch_starts(recording_id: int) -> tuple[int, ...]:
    """Every epoch's first sample in the prepared signals, in index order."""
    from datasets.models import Epoch

    onsets = Epoch.objects.filter(recording_id=recording_id).order_by("index").values_list("onset_s", flat=True)
    return tuple(round(onset * TARGET_SFREQ) for onset in onsets)


def check_recording(recording, rationales: Sequence[tuple[int, Sequence[str]]]) -> list[dict]:
    """The evidence of each (epoch index, cited rule ids) on one recording, from one measurement of it."""
    measured, unmeasured = None, ""
    starts = epoch_starts(recording.pk)
    if not recording.signal_file:
        unmeasured = "the recording has no prepared signals"
    else:
        try:
            measured = recording_measurements(recording.signal_file, tuple(recording.derivations), starts)
        except Exception as exc:  # noqa: BLE001 - a failed measurement leaves the rules unmeasured, never fails a job
            unmeasured = f"the signals could not be measured: {exc}"
    return [check_epoch(measured, index, rule_ids, unmeasured) for index, rule_ids in rationales]


def check_rationales(rationales: Sequence[tuple[int, int, Sequence[str]]]) -> list[dict]:
    """The evidence of each (recording id, epoch index, cited rule ids), every recording measured once."""
    from datasets.models import Recording

    by_recording = defaultdict(list)
    for k, (recording_id, _, _) in enumerate(rationales):
        by_recording[recording_id].append(k)
    found: list[dict] = [{}] * len(rationales)
    for recording in Recording.objects.filter(pk__in=by_recording):
        ks = by_recording[recording.pk]
        for k, checked in zip(ks, check_recording(recording, [rationales[k][1:] for k in ks])):
            found[k] = checked
    return found


def check_predictions(predictions: Iterable) -> None:
    """Set `evidence` on each parsed prediction (its epoch loaded)."""
    parsed = [p for p in predictions if p.stage]
    for prediction, checked in zip(parsed, check_rationales(
            [(p.epoch.recording_id, p.epoch.index, p.rule_ids) for p in parsed])):
        prediction.evidence = checked


def contradicted_share(evidences: Iterable[dict]) -> dict:
    """The share of checked rationales citing a contradicted rule, with its counts."""
    checked = [e for e in evidences if e]
    return share_of(len(checked), sum(is_contradicted(e) for e in checked))


def share_of(rationales: int, contradicted: int) -> dict:
    """contradicted_share's figures from its two counts."""
    return {"rationales": rationales, "contradicted": contradicted,
            "share": contradicted / rationales if rationales else None}


def check_stored(predictions) -> int:
    """Check and save the evidence of a queryset of predictions, recording by recording; returns how many."""
    from inference.models import Prediction

    parsed = predictions.exclude(stage="")
    done = 0
    for recording_id in parsed.order_by().values_list("epoch__recording_id", flat=True).distinct():
        rows = list(parsed.filter(epoch__recording_id=recording_id).select_related("epoch"))
        check_predictions(rows)
        Prediction.objects.bulk_update(rows, ["evidence"], batch_size=500)
        done += len(rows)
    return done
