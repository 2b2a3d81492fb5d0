"""Consensus of a campaign's labels: majority stage, agreement level, ties, adjudication.

Only current first-pass labels count (re-scores measure a rater's self-consistency, not the item).
An item needs adjudication when at least two raters labelled it and the top stage is tied or holds
less than 2/3 of the labels. An adjudicated stage always wins over the majority.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import transaction

from annotation.models import Adjudication, CampaignItem, Label
from core.models import ChangeRecord
from core.services import agreement, audit
from core.services.rows import fetch
from datasets.constants import STAGES
from datasets.exceptions import InputError

LOW_AGREEMENT = 2 / 3


@dataclass
class ItemConsensus:
    item_id: int
    epoch_id: int
    labels: dict[int, str] = field(default_factory=dict)  # rater id -> stage
    majority: str | None = None  # the top stage; None on a tie (there is no majority then)
    level: float | None = None
    tie: bool = False
    adjudicated: str | None = None

    @property
    def needs_adjudication(self) -> bool:
        level = 1.0 if self.level is None else self.level  # no labels yet
        return bool(adjudication_needed(len(self.labels), self.tie, level, self.adjudicated is not None))

    @property
    def stage(self) -> str | None:
        """The consensus stage: the adjudicated one, else the majority (None on a tie)."""
        return self.adjudicated or self.majority


def _summarise(items) -> dict[int, ItemConsensus]:
    labels = Label.objects.filter(item__in=items, rescore=False, replaced_by__isnull=True)
    adjudications = Adjudication.objects.filter(item__in=items).order_by("item_id", "created_at", "pk")
    return summarise(items.values_list("pk", "epoch_id"), fetch(labels.values_list("item_id", "rater_id", "stage")),
                     adjudications.values_list("item_id", "stage"))


def summarise(items, labels, adjudications) -> dict[int, ItemConsensus]:
    """item id -> consensus of (item id, epoch id) pairs, from their current first-pass labels as (item id,
    rater id, stage) and their adjudications as (item id, stage), oldest first."""
    result = {pk: ItemConsensus(pk, epoch) for pk, epoch in items}
    labels = list(labels)
    for item_id, rater_id, stage in labels:
        result[item_id].labels[rater_id] = stage
    for item_id, stage in adjudications:
        result[item_id].adjudicated = stage  # the latest stands
    if labels:
        item_ids, rater_ids, stages = zip(*labels)
        t = agreement.columns_table(rater_ids, item_ids, stages)
        majorities, levels, ties, _ = verdicts(t)
        for item_id, level, tie, majority in zip(t.items, levels.tolist(), ties.tolist(), majorities):
            summary = result[item_id]
            summary.level, summary.tie, summary.majority = level, tie, majority
    return result


def verdicts(t: agreement.Table) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Per item of a Table of current first-pass labels, in its order: the majority stage (None on a tie),
    the agreement level (the top stage's share), the tie flag and the number of labels."""
    counts = agreement.value_counts(t)
    if not counts.size:
        return [], np.zeros(0), np.zeros(0, bool), np.zeros(0, np.intp)
    top, n = counts.max(1), counts.sum(1)
    ties = (counts == top[:, None]).sum(1) > 1
    majorities = np.array(t.values + [None], object)[np.where(ties, len(t.values), counts.argmax(1))].tolist()
    return majorities, top / n, ties, n


def adjudication_needed(n_labels, ties, levels, adjudicated):
    """Which items need adjudication (scalars or arrays): two labels or more, a tie or agreement under
    LOW_AGREEMENT, and no adjudication yet."""
    return (np.asarray(n_labels) >= 2) & np.logical_not(adjudicated) & (
        np.logical_or(ties, np.asarray(levels) < LOW_AGREEMENT))


def campaign_verdicts(campaign, labels: agreement.Table) -> tuple[dict[int, str], int]:
    """Epoch id -> consensus stage (where there is one) and how many items need adjudication: what
    campaign_consensus gives, from the Table of the campaign's current first-pass labels by epoch, without
    an object per item (the dashboard's figures)."""
    majorities, levels, ties, n = verdicts(labels)
    adjudicated = dict(Adjudication.objects.filter(item__campaign=campaign).order_by("item_id", "created_at", "pk")
                       .values_list("item__epoch_id", "stage"))  # the latest stands
    decided = np.array([e in adjudicated for e in labels.items], bool)
    stages = {e: stage for e, stage in zip(labels.items, majorities) if stage}
    return stages | adjudicated, int(adjudication_needed(n, ties, levels, decided).sum())


def campaign_consensus(campaign, recording=None) -> dict[int, ItemConsensus]:
    """item id -> its consensus summary (of one recording's items, when given)."""
    items = CampaignItem.objects.filter(campaign=campaign)
    return _summarise(items if recording is None else items.filter(recording=recording))


def for_adjudication(campaign) -> list[ItemConsensus]:
    """Tied and low-agreement items not yet adjudicated, in queue order."""
    summaries = campaign_consensus(campaign)
    order = dict(CampaignItem.objects.filter(campaign=campaign).values_list("pk", "position"))
    return sorted((s for s in summaries.values() if s.needs_adjudication), key=lambda s: order[s.item_id])


def why_disputed(summary: ItemConsensus) -> str:
    """Why an item waits for adjudication: a tie (naming the tied stages) or agreement below the threshold."""
    counts = Counter(summary.labels.values()).most_common()
    if summary.tie:
        tied = sorted((stage for stage, n in counts if n == counts[0][1]), key=STAGES.index)
        return f"tie: {' / '.join(tied)}, {counts[0][1]} label{'s' if counts[0][1] > 1 else ''} each"
    return f"agreement {summary.level:.0%} on {summary.majority}, below {LOW_AGREEMENT:.0%}"


def disputes(campaign, user) -> list[dict]:
    """The items to adjudicate, in queue order, as the adjudication page shows them: the epoch, each rater's
    stage (raters pseudonymised as rater-01... in id order; in rationale mode with their rule ids), the
    consensus and why it is disputed; the reference and the models' stages only where the campaign shows them."""
    from core.access import policy_for
    from inference.models import ModelVersion, Prediction

    summaries = for_adjudication(campaign)
    items = {i.pk: i for i in CampaignItem.objects.filter(pk__in=[s.item_id for s in summaries])
             .select_related("epoch", "recording")}
    rater_ids = sorted(set(campaign.raters.values_list("pk", flat=True)) | {r for s in summaries for r in s.labels})
    pseudonym = {pk: f"rater-{n:02d}" for n, pk in enumerate(rater_ids, start=1)}
    rules = {}
    if campaign.rationale_mode:
        labels = Label.objects.filter(item_id__in=items, rescore=False, replaced_by__isnull=True)
        rules = {(i, r): ids for i, r, ids in labels.values_list("item_id", "rater_id", "rule_ids")}
    models = {}
    if campaign.show_model_outputs:
        policy = policy_for(user)
        position = {pk: i for i, pk in enumerate(ModelVersion.objects.order_by("pk").values_list("pk", flat=True))}
        predictions = (Prediction.objects.filter(epoch_id__in=[i.epoch_id for i in items.values()],
                                                 status__in=(Prediction.OK, Prediction.REPAIRED))
                       .select_related("model_version").order_by("model_version_id"))
        for p in predictions:
            models.setdefault(p.epoch_id, []).append(
                {"model": policy.model_label(p.model_version, position[p.model_version_id]), "stage": p.stage})
    rows = []
    for s in summaries:
        item = items[s.item_id]
        row = {"item": s.item_id, "recording": item.recording_id, "index": item.epoch.index,
               "epoch_count": item.recording.epoch_count, "majority": s.majority,
               "tie": s.tie, "level": s.level, "why": why_disputed(s),
               "labels": [{"rater": pseudonym[rater], "stage": stage,
                           **({"rule_ids": rules.get((s.item_id, rater)) or []} if campaign.rationale_mode else {})}
                          for rater, stage in sorted(s.labels.items())]}
        if campaign.show_reference:
            row["reference"] = item.epoch.stage
        if campaign.show_model_outputs:
            row["models"] = models.get(item.epoch_id, [])
        rows.append(row)
    return rows


def can_adjudicate(user, campaign) -> bool:
    return user.has_perm("annotation.adjudicate") or campaign.adjudicators.filter(pk=user.pk).exists()


def adjudicate(item, stage, reason, user) -> Adjudication:
    """Resolve an item's disagreement (curators or the campaign's designated adjudicators; a reason is required)."""
    if not can_adjudicate(user, item.campaign):
        raise PermissionDenied("only curators and the campaign's adjudicators may adjudicate")
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    reason = (reason or "").strip()
    if not reason:
        raise InputError("an adjudication needs a reason")
    with transaction.atomic():
        adjudication = Adjudication.objects.create(item=item, stage=stage, reason=reason, adjudicator=user)
        audit.record(ChangeRecord.ADJUDICATE, adjudication, actor=user, after=audit.snapshot(adjudication))
    return adjudication


def consensus_stages(recording) -> dict[int, str]:
    """epoch id -> consensus stage over every campaign of the recording (the newest campaign wins)."""
    return consensus_for_recordings([recording.pk])


def consensus_for_recordings(recording_ids) -> dict[int, str]:
    items = CampaignItem.objects.filter(recording_id__in=list(recording_ids))
    campaign_of = dict(items.values_list("pk", "campaign__created_at"))
    stages: dict[int, tuple] = {}
    for summary in _summarise(items).values():
        if summary.stage is None:
            continue
        when = campaign_of[summary.item_id]
        if summary.epoch_id not in stages or stages[summary.epoch_id][0] <= when:
            stages[summary.epoch_id] = (when, summary.stage)
    return {epoch: stage for epoch, (_, stage) in stages.items()}


def consensus_reference(cohort) -> dict[int, tuple[int, str, list[str]]]:
    """Reference provider for inference evaluation: epoch id -> (recording id, consensus stage, [])."""
    from datasets.models import Epoch

    recordings = list(cohort.recordings.values_list("pk", flat=True))
    stages = consensus_for_recordings(recordings)
    recording_of = dict(Epoch.objects.filter(pk__in=stages.keys()).values_list("pk", "recording_id"))
    return {pk: (recording_of[pk], stage, []) for pk, stage in stages.items()}


def by_rater(labels) -> dict[int, list]:
    grouped = defaultdict(list)
    for label in labels:
        grouped[label.rater_id].append(label)
    return grouped


def scoring_rationales(epochs):
    """Expert rationales written in scoring campaigns (rationale mode): current first-pass labels."""
    from datasets.services.rationales import ExpertRationale

    labels = (Label.objects.filter(item__epoch__in=epochs, replaced_by__isnull=True, rescore=False)
              .exclude(rationale="").order_by("item__epoch_id", "rater_id", "pk"))
    for epoch_id, stage, rules, rationale in labels.values_list("item__epoch_id", "stage", "rule_ids", "rationale"):
        yield ExpertRationale(epoch_id, stage, list(rules or []), rationale)
