"""Creating a scoring campaign: which epochs are items (seeded, reproducible sampling), who scores them.

Sampling uses numpy's default_rng(seed), so the same recordings, sample, size and seed give the same
items. Unscored reference epochs are never sampled. Items are positioned in time order (recording, index).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction

from annotation.models import CampaignItem, ScoringCampaign
from annotation.services.queue import SCORING
from core.access import policy_for
from core.models import ChangeRecord
from core.services import audit
from core.services.sampling import stratified_sample
from core.services.work_queue import key_dwell_ms as _dwell
from datasets.constants import CLINICAL_VIEW, STAGES, UNSCORED
from datasets.exceptions import InputError
from datasets.models import Cohort, Epoch, Recording
from datasets.services.signals import checked_signal_view
from inference.models import ModelVersion, Prediction

SAMPLES = (ScoringCampaign.ALL, ScoringCampaign.STRATIFIED, ScoringCampaign.DISAGREEMENT)
UNITS = (ScoringCampaign.EPOCH, ScoringCampaign.RECORDING)


def visible_campaigns(user):
    """Every campaign for roles that see reference data; otherwise those the user rates or adjudicates."""
    campaigns = ScoringCampaign.objects.all()
    if policy_for(user).can_see_reference:
        return campaigns
    return (campaigns.filter(raters=user) | campaigns.filter(adjudicators=user)).distinct()


def _recordings(recordings, cohort) -> list[Recording]:
    if recordings is None and cohort is None:
        raise InputError("name the campaign's recordings or a cohort")
    chosen: dict[int, Recording] = {}
    if cohort is not None:
        if not isinstance(cohort, Cohort):
            found = Cohort.objects.filter(name=cohort).first()
            if found is None:
                raise InputError(f"unknown cohort {cohort!r}")
            cohort = found
        chosen.update({r.pk: r for r in cohort.recordings.all()})
    for item in recordings or ():
        recording = item if isinstance(item, Recording) else Recording.objects.filter(pk=_int(item, "recording id")).first()
        if recording is None:
            raise InputError(f"unknown recording id {item!r}")
        chosen[recording.pk] = recording
    if not chosen:
        raise InputError("the campaign has no recordings (the cohort is empty)")
    return [chosen[pk] for pk in sorted(chosen)]


def _int(value, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} must be an integer, got {value!r}") from None


def _share(value) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise InputError(f"rescore_share must be a number, got {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise InputError("rescore_share must be between 0 and 1")
    return share


def _users(names: Iterable, what: str) -> list:
    users, User = [], get_user_model()
    for name in names or ():
        user = name if isinstance(name, User) else User.objects.filter(username=name).first()
        if user is None:
            raise InputError(f"unknown {what} {name!r}")
        if user not in users:
            users.append(user)
    return users


def _model(model) -> ModelVersion | None:
    if model is None or isinstance(model, ModelVersion):
        return model
    found = ModelVersion.objects.filter(name=model).first()
    if found is None:
        raise InputError(f"unknown model version {model!r}")
    return found


def sample_epochs(recordings: list[Recording], sample: str, sample_size: int | None, seed: int,
                  model: ModelVersion | None = None) -> list[int]:
    """The sampled epoch ids, in time order (recording, index)."""
    rows = list(Epoch.objects.filter(recording__in=recordings).exclude(stage=UNSCORED)
                .order_by("recording_id", "index").values_list("pk", "stage"))
    rng = np.random.default_rng(seed)
    if sample == ScoringCampaign.ALL:
        chosen = [pk for pk, _ in rows]
        if sample_size is not None and sample_size < len(chosen):
            chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), sample_size, replace=False))]
    elif sample == ScoringCampaign.STRATIFIED:
        by_stage = {s: [pk for pk, stage in rows if stage == s] for s in STAGES}
        chosen = stratified_sample(by_stage, sample_size if sample_size is not None else len(rows), rng)
    else:
        if model is None:
            raise InputError("sample 'disagreement' needs disagreement_model (a model version name)")
        stages = dict(rows)
        predicted = Prediction.objects.filter(model_version=model, epoch_id__in=stages.keys(),
                                              status__in=(Prediction.OK, Prediction.REPAIRED))
        chosen = [pk for pk, stage in predicted.values_list("epoch_id", "stage") if stage and stage != stages[pk]]
        chosen.sort()
        if sample_size is not None and sample_size < len(chosen):
            chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), sample_size, replace=False))]
    order = {pk: i for i, (pk, _) in enumerate(rows)}
    return sorted(set(chosen), key=order.__getitem__)


@transaction.atomic
def create_campaign(name, *, recordings=None, cohort=None, sample="all", sample_size=None, seed=0,
                    disagreement_model=None, overlap=2, raters=(), adjudicators=(), unit="epoch",
                    reservation_timeout_s=900, show_reference=False, show_model_outputs=False,
                    show_other_labels=False, rescore_share=0.0, rationale_mode=False, key_dwell_ms=300,
                    signal_view=CLINICAL_VIEW, signal_view_switchable=True, review_model=None, user=None,
                    description="") -> ScoringCampaign:
    """A new campaign with its items; InputError names what is wrong with the request. A `review_model` makes
    it a review campaign: raters accept or correct that model's stages, least confident first."""
    name = (name or "").strip()
    if not name:
        raise InputError("the campaign needs a name")
    if ScoringCampaign.objects.filter(name=name).exists():
        raise InputError(f"a campaign named {name!r} already exists")
    if sample not in SAMPLES:
        raise InputError(f"unknown sample {sample!r}; expected one of {', '.join(SAMPLES)}")
    if unit not in UNITS:
        raise InputError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    if sample_size is not None:
        sample_size = _int(sample_size, "sample_size")
        if sample_size < 1:
            raise InputError("sample_size must be at least 1")
    seed, overlap = _int(seed, "seed"), _int(overlap, "overlap")
    if seed < 0:
        raise InputError("seed must not be negative")
    if overlap < 1:
        raise InputError("overlap must be at least 1")
    timeout = _int(reservation_timeout_s, "reservation_timeout_s")
    if timeout < 10:
        raise InputError("reservation_timeout_s must be at least 10 seconds")
    rescore_share = _share(rescore_share)
    dwell = _dwell(key_dwell_ms)
    signal_view, signal_view_switchable = checked_signal_view(signal_view, signal_view_switchable)
    rater_users = _users(raters, "rater")
    adjudicator_users = _users(adjudicators, "adjudicator")
    if not rater_users:
        raise InputError("the campaign needs at least one rater")
    if overlap > len(rater_users):
        raise InputError(f"overlap {overlap} is more than the number of raters ({len(rater_users)}): "
                         "an item could never get its labels")
    model = _model(disagreement_model)
    review_model = _model(review_model)
    chosen_recordings = _recordings(recordings, cohort)
    epoch_ids = sample_epochs(chosen_recordings, sample, sample_size, seed, model)
    if not epoch_ids:
        raise InputError(f"the sample {sample!r} is empty: no scored epochs "
                         + ("where the model disagrees with the reference" if sample == ScoringCampaign.DISAGREEMENT
                            else "in these recordings"))
    campaign = ScoringCampaign.objects.create(
        name=name, description=description, sample=sample, sample_size=sample_size, sample_seed=seed,
        disagreement_model=model, overlap=overlap, unit=unit, reservation_timeout_s=timeout,
        show_reference=bool(show_reference), show_model_outputs=bool(show_model_outputs),
        show_other_labels=bool(show_other_labels), rescore_share=rescore_share, rationale_mode=bool(rationale_mode),
        key_dwell_ms=dwell, signal_view=signal_view, signal_view_switchable=signal_view_switchable,
        review_model=review_model, created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    recording_of = dict(Epoch.objects.filter(pk__in=epoch_ids).values_list("pk", "recording_id"))
    used = sorted({recording_of[pk] for pk in epoch_ids})
    campaign.recordings.set(used)
    campaign.raters.set(rater_users)
    campaign.adjudicators.set(adjudicator_users)
    CampaignItem.objects.bulk_create(
        [CampaignItem(campaign=campaign, epoch_id=pk, recording_id=recording_of[pk], position=i)
         for i, pk in enumerate(epoch_ids)], batch_size=5000)
    audit.record(ChangeRecord.CREATE, campaign, actor=user, after=audit.snapshot(campaign, items=len(epoch_ids)))
    return campaign


EDITABLE = ("description", "overlap", "raters", "adjudicators", "reservation_timeout_s", "show_reference",
            "show_model_outputs", "show_other_labels", "rescore_share", "key_dwell_ms", "signal_view",
            "signal_view_switchable")


@transaction.atomic
def update_campaign(campaign, *, user=None, **changes) -> ScoringCampaign:
    """Change a running campaign's settings (`EDITABLE`: overlap, raters, visibility, ...); its items, sample
    and mode stay. InputError names what cannot change or what is wrong."""
    fixed = sorted(set(changes) - set(EDITABLE))
    if fixed:
        raise InputError(f"{', '.join(fixed)} cannot change once a campaign exists; editable: {', '.join(EDITABLE)}")
    campaign = ScoringCampaign.objects.select_for_update().get(pk=campaign.pk)
    before = audit.snapshot(campaign)
    for flag in ("show_reference", "show_model_outputs", "show_other_labels"):
        if flag in changes:
            setattr(campaign, flag, bool(changes[flag]))
    if "description" in changes:
        campaign.description = str(changes["description"] or "")
    if "reservation_timeout_s" in changes:
        timeout = _int(changes["reservation_timeout_s"], "reservation_timeout_s")
        if timeout < 10:
            raise InputError("reservation_timeout_s must be at least 10 seconds")
        campaign.reservation_timeout_s = timeout
    if "rescore_share" in changes:
        campaign.rescore_share = _share(changes["rescore_share"])
    if "key_dwell_ms" in changes:
        campaign.key_dwell_ms = _dwell(changes["key_dwell_ms"])
    campaign.signal_view, campaign.signal_view_switchable = checked_signal_view(
        changes.get("signal_view", campaign.signal_view), changes.get("signal_view_switchable", campaign.signal_view_switchable))
    raters = _users(changes["raters"], "rater") if "raters" in changes else list(campaign.raters.all())
    if not raters:
        raise InputError("the campaign needs at least one rater")
    overlap = _int(changes.get("overlap", campaign.overlap), "overlap")
    if overlap > len(raters):
        raise InputError(f"overlap {overlap} is more than the number of raters ({len(raters)}): "
                         "an item could never get its labels")
    SCORING.change_overlap(campaign, overlap)
    campaign.save()
    if "raters" in changes:
        campaign.raters.set(raters)
        SCORING.drop_holds(campaign, exclude_raters=raters)
    if "adjudicators" in changes:
        campaign.adjudicators.set(_users(changes["adjudicators"], "adjudicator"))
    after = audit.snapshot(campaign)
    if after != before:
        audit.record(ChangeRecord.UPDATE, campaign, actor=user, before=before, after=after)
    return campaign
