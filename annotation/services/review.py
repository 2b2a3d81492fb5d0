"""Model-assisted review: a review campaign shows a model's stage as a proposal that the expert accepts or
corrects, least confident epochs first; the review curve says how far reviewing a share of the epochs in
that order (beside random order) brings the automatic hypnogram towards the reference.

Confidence is the prediction's stage probability (ModelVersion.confidence_source); a version without one
falls back to disagreement between model versions: the share of the epoch's other parsed predictions that
name the same stage.
"""
from __future__ import annotations

import math

import numpy as np
from django.db.models import Count, F, FloatField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Coalesce

from annotation.services.queue import current_labels
from core.services.agreement import _kappa_from_confusion
from datasets.constants import STAGES
from datasets.models import Epoch
from inference.models import ModelVersion, Prediction

TARGET_KAPPA = 0.90
KAPPA_LEVELS = (0.90, 0.95, 0.99)  # shares needed for each, beside the target (an easy night starts above 0.90)
CURVE_POINTS = 50  # points of each curve in the JSON (the needed shares are computed over every epoch)
RANDOM_SEED = 0
PARSED = (Prediction.OK, Prediction.REPAIRED)


def proposal(campaign, epoch_id: int) -> Prediction | None:
    """The review model's parsed prediction of the epoch (its stage is the proposal)."""
    return (Prediction.objects.filter(model_version_id=campaign.review_model_id, epoch_id=epoch_id,
                                      status__in=PARSED).first())


def confidence(model_version: ModelVersion, epoch=OuterRef("epoch_id")):
    """An expression of an item's (or any row's with `epoch`) confidence in the model's stage: its stage
    probability, or the other versions' agreement with it when the version has no probability."""
    own = Prediction.objects.filter(model_version=model_version, epoch_id=epoch, status__in=PARSED)
    if model_version.confidence_source != ModelVersion.NO_CONFIDENCE:
        return Subquery(own.values("probability")[:1], output_field=FloatField())
    same_epoch = Prediction.objects.filter(model_version=model_version, epoch_id=OuterRef("epoch_id"), status__in=PARSED)
    others = (Prediction.objects.filter(epoch_id=epoch, status__in=PARSED).exclude(model_version=model_version)
              .order_by().values("epoch_id")
              .annotate(share=Cast(Count("pk", filter=Q(stage=Subquery(same_epoch.values("stage")[:1]))), FloatField())
                        / Cast(Count("pk"), FloatField()))
              .values("share")[:1])
    return Coalesce(Subquery(others, output_field=FloatField()), Value(0.0))


def order_by_confidence(items, campaign):
    """Campaign items least confident first (no prediction: first of all), then in queue position."""
    return (items.alias(confidence=confidence(campaign.review_model))
            .order_by(F("confidence").asc(nulls_first=True), "position"))


def _kappa(confusion: np.ndarray) -> float | None:
    kappa = _kappa_from_confusion(confusion, None)
    return None if math.isnan(kappa) else kappa


def curve(automatic, confidences, reference, expert, *, seed: int = RANDOM_SEED) -> dict:
    """Cohen's κ and accuracy against `reference` of the hypnogram whose first k epochs (by ascending
    confidence, ties in the given order; and in a seeded random order) take the `expert`'s stage and the
    rest the `automatic` one, for k = 0..n; and the least share reaching κ ≥ TARGET_KAPPA (and each of
    KAPPA_LEVELS) in each order.
    An expert stage of None (not reviewed yet) leaves the automatic stage."""
    n = len(automatic)
    code = {s: k for k, s in enumerate(STAGES)}
    auto = np.array([code[s] for s in automatic], np.intp)
    ref = np.array([code[s] for s in reference], np.intp)
    reviewed = np.array([code[s] if s is not None else code[a] for s, a in zip(expert, automatic)], np.intp)
    by_confidence = np.array(sorted(range(n), key=lambda i: (confidences[i] is not None, confidences[i] or 0.0, i)),
                             np.intp)
    orders = {"confidence": by_confidence, "random": np.random.default_rng(seed).permutation(n)}
    result = {"epochs": n, "target_kappa": TARGET_KAPPA}
    for name, order in orders.items():
        confusion = np.zeros((len(STAGES), len(STAGES)), np.int64)
        np.add.at(confusion, (auto, ref), 1)
        kappas, accuracies = [_kappa(confusion)], [confusion.trace() / n if n else None]
        for i in order:
            confusion[auto[i], ref[i]] -= 1
            confusion[reviewed[i], ref[i]] += 1
            kappas.append(_kappa(confusion))
            accuracies.append(confusion.trace() / n)
        points = sorted({round(j * n / CURVE_POINTS) for j in range(CURVE_POINTS + 1)}) if n else [0]
        result[name] = {"share": [k / n if n else 0.0 for k in points], "kappa": [kappas[k] for k in points],
                        "accuracy": [float(accuracies[k]) if accuracies[k] is not None else None for k in points],
                        "share_for_target": _share_reaching(kappas, TARGET_KAPPA),
                        "share_for_kappa": {f"{level:.2f}": _share_reaching(kappas, level) for level in KAPPA_LEVELS}}
    result["share_for_target"] = result["confidence"]["share_for_target"]
    result["random_share_for_target"] = result["random"]["share_for_target"]
    return result


def _share_reaching(kappas: list, level: float) -> float | None:
    """The least share reviewed (k / n over kappas[0..n]) whose κ reaches `level`; None if none does."""
    k = next((k for k, kappa in enumerate(kappas) if kappa is not None and kappa >= level), None)
    return None if k is None else k / max(len(kappas) - 1, 1)


def predicted_epochs(model_version: ModelVersion, epochs) -> list[dict]:
    """Of `epochs` (an Epoch queryset, in its order), those with a reference stage and a parsed prediction of
    the model: {"epoch", "proposal", "confidence", "reference"}."""
    stage = Prediction.objects.filter(model_version=model_version, epoch_id=OuterRef("pk"), status__in=PARSED)
    rows = (epochs.filter(stage__in=STAGES)
            .annotate(proposal=Subquery(stage.values("stage")[:1]), confidence=confidence(model_version, OuterRef("pk")))
            .values_list("pk", "proposal", "confidence", "stage"))
    return [{"epoch": pk, "proposal": proposal, "confidence": conf, "reference": reference}
            for pk, proposal, conf, reference in rows if proposal in STAGES]


def simulate_review(model_version: ModelVersion, epochs) -> dict:
    """The review curve without humans: the model's predictions as the automatic hypnogram, the reference
    as the expert who reviews them."""
    rows = predicted_epochs(model_version, epochs)
    reference = [r["reference"] for r in rows]
    return curve([r["proposal"] for r in rows], [r["confidence"] for r in rows], reference, reference)


def review_curve(campaign) -> dict | None:
    """A review campaign's review curve against the reference: simulated (the reference as the expert, over
    every item) and observed (the raters' first labels so far), with the time per reviewed epoch and the
    expert-hours it takes (None for other campaigns)."""
    if campaign.review_model_id is None:
        return None
    rows = predicted_epochs(campaign.review_model,
                            Epoch.objects.filter(campaign_items__campaign=campaign).order_by("campaign_items__position"))
    labels = {}
    seconds, accepted = [], []
    for label in current_labels(campaign, rescore=False).select_related("item").order_by("created_at", "pk"):
        labels.setdefault(label.item.epoch_id, label.stage)
        if label.server_seconds is not None:  # measured by the server, not reported by the browser
            seconds.append(label.server_seconds)
        if label.accepted is not None:
            accepted.append(label.accepted)
    automatic = [r["proposal"] for r in rows]
    confidences = [r["confidence"] for r in rows]
    reference = [r["reference"] for r in rows]
    simulated = curve(automatic, confidences, reference, reference)
    observed = curve(automatic, confidences, reference, [labels.get(r["epoch"]) for r in rows])["confidence"]
    reviewed = sum(r["epoch"] in labels for r in rows)
    seconds_per_epoch = float(np.mean(seconds)) if seconds else None
    result = {
        "model_version": campaign.review_model.name, "confidence_source": campaign.review_model.confidence_source,
        "against": "reference", "simulated": simulated,
        "observed": {"reviewed": reviewed, "share_reviewed": reviewed / len(rows) if rows else None,
                     "kappa_before": observed["kappa"][0], "kappa_now": observed["kappa"][-1],
                     "accepted_share": sum(accepted) / len(accepted) if accepted else None},
        "seconds_per_reviewed_epoch": seconds_per_epoch,
    }
    result.update(expert_hours(simulated, result["observed"], seconds_per_epoch))
    return result


def expert_hours(simulated: dict, observed: dict, seconds_per_epoch: float | None) -> dict:
    """What the review costs at the observed time per reviewed epoch: expert-hours to reach κ ≥ 0.90 in
    each order (simulated), and expert-hours per 0.1 κ gained so far (observed)."""
    if seconds_per_epoch is None:
        return {"expert_hours_for_target": None, "random_expert_hours_for_target": None,
                "expert_hours_per_0_1_kappa": None}
    per_epoch_h = seconds_per_epoch / 3600
    n = simulated["epochs"]

    def hours(share):
        return share * n * per_epoch_h if share is not None else None

    gained = (observed["kappa_now"] or 0.0) - (observed["kappa_before"] or 0.0)
    spent = observed["reviewed"] * per_epoch_h
    return {"expert_hours_for_target": hours(simulated["share_for_target"]),
            "random_expert_hours_for_target": hours(simulated["random_share_for_target"]),
            "expert_hours_per_0_1_kappa": spent / gained * 0.1 if gained > 0 else None}
