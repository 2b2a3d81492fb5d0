"""Creating a rating campaign: the candidate rationales, a seeded stratified sample (or an explicit item
list), items in a random order that gives nothing of their origin away, the rubric copied in.

Candidates are parsed predictions with a rationale of the chosen model versions, and the rationales of
the chosen expert sources (datasets.services.rationales), over the scored epochs of the cohorts.
Strata are (reference stage, stage correct or not); every stratum gets an equal share
(core.services.sampling). numpy's default_rng(seed) makes the same request give the same items.
"""
from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from typing import NamedTuple

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction

from core.access import policy_for
from core.exceptions import InputError
from core.models import ChangeRecord
from core.services import audit
from core.services.sampling import stratified_sample
from core.services.work_queue import key_dwell_ms as _dwell
from datasets.constants import MODEL_VIEW, STAGES, UNSCORED
from datasets.models import Cohort, Epoch, Recording
from datasets.services.signals import checked_signal_view
from datasets.services.rationales import EXPERT_RATIONALE_SOURCES
from inference.models import ModelVersion, Prediction
from inference.services.evidence import check_rationales
from ratings.models import RatingCampaign, RatingItem, Rubric
from ratings.services.queue import RATING
from ratings.services.rubric import check_dimensions, default_dimensions, parse_rubric


class Candidate(NamedTuple):
    epoch_id: int
    recording_id: int
    epoch_index: int
    origin: str
    model_version_id: int | None
    prediction_id: int | None
    source: str
    stage: str
    rule_ids: list
    rationale: str
    reference_stage: str

    @property
    def stratum(self) -> tuple[str, bool]:
        return self.reference_stage, self.stage == self.reference_stage


def visible_campaigns(user):
    """Every campaign for roles that see reference data; a rater's own campaigns otherwise."""
    campaigns = RatingCampaign.objects.all()
    return campaigns if policy_for(user).can_see_reference else campaigns.filter(raters=user)


def _named(model, values, field: str, what: str) -> list:
    found = []
    for value in values or ():
        row = value if isinstance(value, model) else model.objects.filter(**{field: value}).first()
        if row is None:
            raise InputError(f"unknown {what} {value!r}")
        if row not in found:
            found.append(row)
    return found


def candidates(cohorts, model_versions, expert_sources) -> list[Candidate]:
    """Every rationale that could be rated, in a fixed order (origin, source, recording, epoch)."""
    epochs = Epoch.objects.filter(recording__cohort__in=cohorts).exclude(stage=UNSCORED)
    where = {pk: (rec, index, stage) for pk, rec, index, stage in
             epochs.values_list("pk", "recording_id", "index", "stage")}
    out = []
    for version in sorted(model_versions, key=lambda v: v.pk):
        predictions = (Prediction.objects.made_from_current_signals()  # rated against the signals the model saw
                       .filter(model_version=version, epoch__in=epochs, status__in=(Prediction.OK, Prediction.REPAIRED))
                       .exclude(rationale="").exclude(stage="").order_by("epoch__recording_id", "epoch__index"))
        for pk, epoch_id, stage, rules, rationale, digest in predictions.values_list(
                "pk", "epoch_id", "stage", "rule_ids", "rationale", "version_hash"):
            if stage in STAGES:
                rec, index, reference = where[epoch_id]
                out.append(Candidate(epoch_id, rec, index, RatingItem.MODEL, version.pk, pk, digest, stage,
                                     list(rules or []), rationale, reference))
    for name in expert_sources:
        rows = sorted(EXPERT_RATIONALE_SOURCES[name](epochs), key=lambda r: (where[r.epoch_id][:2], r.rule_ids, r.rationale))
        for row in rows:
            if row.stage in STAGES:
                rec, index, reference = where[row.epoch_id]
                out.append(Candidate(row.epoch_id, rec, index, RatingItem.EXPERT, None, None, name, row.stage,
                                     row.rule_ids, row.rationale, reference))
    return out


def sample(pool: list[Candidate], size: int | None, seed: int) -> list[Candidate]:
    """A stratified draw of `size` candidates (all of them when size is None or not smaller)."""
    if size is None or size >= len(pool):
        return list(pool)
    strata = defaultdict(list)
    for candidate in pool:
        strata[candidate.stratum].append(candidate)
    ordered = {key: strata[key] for key in sorted(strata, key=lambda k: (STAGES.index(k[0]), not k[1]))}
    return stratified_sample(ordered, size, np.random.default_rng(seed))


def read_item_list(text: str, pool: list[Candidate], source: str = "item list", cohorts=()) -> list[Candidate]:
    """The candidates an explicit CSV names: columns recording (id or name) and epoch (0-based index),
    optionally source (a model version name or an expert source) to pick one of an epoch's rationales.
    A line naming an item twice, a recording outside `cohorts` (when given) or a short line is refused."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = reader.fieldnames or ()
    except csv.Error as exc:
        raise InputError(f"{source}, line 1: malformed CSV: {exc}") from None
    missing = {"recording", "epoch"} - {name.strip() for name in header}
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(sorted(missing))} (need recording, epoch)")
    reader.fieldnames = [name.strip() for name in header]
    names = dict(ModelVersion.objects.values_list("pk", "name"))
    cohort_ids = {c.pk for c in cohorts}
    at = defaultdict(list)
    for candidate in pool:
        at[(candidate.recording_id, candidate.epoch_index)].append(candidate)
    chosen: list[Candidate] = []
    seen: dict[tuple, int] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not any((value or "").strip() for key, value in row.items() if isinstance(value, str)):
                continue  # a blank line
            short = [field for field in ("recording", "epoch") if row.get(field) is None]
            if short or None in row:
                problem = f"missing field {', '.join(short)}" if short else "more fields than the header names"
                raise InputError(f"{source}, line {line}: {problem} (expected {', '.join(reader.fieldnames)})")
            name = row["recording"].strip()
            recording = (Recording.objects.filter(pk=int(name)).first()
                         if re.fullmatch(r"[0-9]{1,9}", name) else None)
            recording = recording or Recording.objects.filter(name=name[:200]).first()
            if recording is None:
                raise InputError(f"{source}, line {line}: no recording {name[:80]!r}")
            if cohort_ids and recording.cohort_id not in cohort_ids:
                raise InputError(f"{source}, line {line}: recording {name[:80]!r} is in cohort {recording.cohort.name!r}, "
                                 f"not in the campaign's cohorts ({', '.join(c.name for c in cohorts)})")
            epoch = row["epoch"].strip()
            if not re.fullmatch(r"[0-9]{1,9}", epoch):
                raise InputError(f"{source}, line {line}: epoch must be an epoch index (0, 1, ...), got {epoch[:40]!r}")
            index = int(epoch)
            wanted = (row.get("source") or "").strip()
            key = (recording.pk, index, wanted)
            if key in seen:
                raise InputError(f"{source}, line {line}: recording {name[:80]!r} epoch {index} is listed twice "
                                 f"(first on line {seen[key]})")
            seen[key] = line
            found = [c for c in at[(recording.pk, index)]
                     if not wanted or wanted == (names.get(c.model_version_id) if c.model_version_id else c.source)]
            if not found:
                raise InputError(f"{source}, line {line}: no rationale to rate at recording {name[:80]!r} epoch {index}"
                                 + (f" from {wanted[:80]!r}" if wanted else ""))
            chosen += [c for c in found if c not in chosen]
    except csv.Error as exc:
        raise InputError(f"{source}, line {line}: malformed CSV: {exc}") from None
    if not chosen:
        raise InputError(f"{source}: no items listed")
    return chosen


@transaction.atomic
def create_rating_campaign(name, *, cohorts, raters, model_versions=(), expert_sources=(), sample_size=None,
                           seed=0, overlap=2, reservation_timeout_s=900, fast_floor_s=5.0, key_dwell_ms=300,
                           signal_view=MODEL_VIEW, signal_view_switchable=True, show_evidence=False, item_list=None,
                           rubric=None, description="", user=None) -> RatingCampaign:
    """A new campaign with its items and rubric; InputError names what is wrong with the request.

    `rubric`: None for the default, Markdown text, or a list of dimensions. `item_list`: CSV text."""
    name = (name or "").strip()
    if not name:
        raise InputError("the campaign needs a name")
    if RatingCampaign.objects.filter(name=name).exists():
        raise InputError(f"a rating campaign named {name!r} already exists")
    cohorts = _named(Cohort, cohorts, "name", "cohort")
    if not cohorts:
        raise InputError("name the campaign's cohorts")
    versions = _named(ModelVersion, model_versions, "name", "model version")
    unknown = [s for s in expert_sources or () if s not in EXPERT_RATIONALE_SOURCES]
    if unknown:
        raise InputError(f"unknown expert source(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(EXPERT_RATIONALE_SOURCES))}")
    if not versions and not expert_sources:
        raise InputError("choose model versions or expert sources whose rationales are rated")
    users = _named(get_user_model(), raters, "username", "rater")
    try:
        overlap, seed, timeout = int(overlap), int(seed), int(reservation_timeout_s)
        sample_size = None if sample_size is None else int(sample_size)
        fast_floor_s = float(fast_floor_s)
    except (TypeError, ValueError, OverflowError):
        raise InputError("overlap, seed, sample_size and reservation_timeout_s must be whole numbers, "
                         "fast_floor_s a number") from None
    if not users:
        raise InputError("the campaign needs at least one rater")
    if overlap < 1 or overlap > len(users):
        raise InputError(f"overlap must be between 1 and the number of raters ({len(users)}), got {overlap}")
    if seed < 0 or (sample_size is not None and sample_size < 1):
        raise InputError("seed must not be negative and sample_size must be at least 1")
    if timeout < 10 or not fast_floor_s >= 0:
        raise InputError("reservation_timeout_s must be at least 10 s and fast_floor_s not negative")
    dwell = _dwell(key_dwell_ms)
    signal_view, signal_view_switchable = checked_signal_view(signal_view, signal_view_switchable)
    if rubric is None:
        dimensions = default_dimensions()
    elif isinstance(rubric, str):
        dimensions = parse_rubric(rubric)
    else:
        dimensions = check_dimensions(rubric)

    pool = candidates(cohorts, versions, list(expert_sources or ()))
    chosen = read_item_list(item_list, pool, cohorts=cohorts) if item_list else sample(pool, sample_size, seed)
    if not chosen:
        raise InputError("no rationales to rate: the chosen model versions and sources have none on the "
                         "scored epochs of these cohorts")
    campaign = RatingCampaign.objects.create(
        name=name, description=description, sample_size=sample_size, sample_seed=seed, overlap=overlap,
        reservation_timeout_s=timeout, fast_floor_s=fast_floor_s,
        key_dwell_ms=dwell, signal_view=signal_view, signal_view_switchable=signal_view_switchable, show_evidence=bool(show_evidence), expert_sources=list(expert_sources or ()), created_by=user if getattr(user, "is_authenticated", False) else None)
    campaign.cohorts.set(cohorts)
    campaign.model_versions.set(versions)
    campaign.raters.set(users)
    Rubric.objects.create(campaign=campaign, version=1, dimensions=dimensions)
    # Rows are written in a random order with random positions: neither ids nor order reveal the origin.
    order = np.random.default_rng([seed, 1]).permutation(len(chosen))
    evidence = _evidence(chosen)
    RatingItem.objects.bulk_create([
        RatingItem(campaign=campaign, position=position, epoch_id=c.epoch_id, recording_id=c.recording_id,
                   origin=c.origin, model_version_id=c.model_version_id, prediction_id=c.prediction_id,
                   source=c.source, stage=c.stage, rule_ids=c.rule_ids, rationale=c.rationale,
                   reference_stage=c.reference_stage, correct=c.stage == c.reference_stage, evidence=evidence[i])
        for position, i, c in ((p, i, chosen[i]) for p, i in enumerate(order))
    ], batch_size=5000)
    audit.record(ChangeRecord.CREATE, campaign, actor=user,
                 after=audit.snapshot(campaign, items=len(chosen), rubric={"version": 1, "dimensions": dimensions}))
    return campaign


def _evidence(chosen: list[Candidate]) -> list[dict]:
    """Each rationale's evidence check (inference.services.evidence), whatever its origin: a prediction's stored
    check, else one made here from its recording's measurements (expert rationales, unchecked predictions)."""
    stored = dict(Prediction.objects.filter(pk__in=[c.prediction_id for c in chosen if c.prediction_id])
                  .exclude(evidence={}).values_list("pk", "evidence"))
    missing = [c for c in chosen if c.prediction_id not in stored]
    checked = iter(check_rationales([(c.recording_id, c.epoch_index, c.rule_ids) for c in missing]))
    return [stored[c.prediction_id] if c.prediction_id in stored else next(checked) for c in chosen]


def check_unchecked_items(campaign) -> int:
    """Check the items not checked yet (campaigns made before the evidence check); returns how many."""
    items = list(campaign.items.filter(evidence={}).select_related("epoch"))
    for item, checked in zip(items, check_rationales([(i.recording_id, i.epoch.index, i.rule_ids) for i in items])):
        item.evidence = checked
    RatingItem.objects.bulk_update(items, ["evidence"], batch_size=500)
    return len(items)


EDITABLE = ("description", "overlap", "raters", "reservation_timeout_s", "fast_floor_s", "key_dwell_ms", "signal_view",
            "signal_view_switchable", "show_evidence")


@transaction.atomic
def update_rating_campaign(campaign, *, user=None, **changes) -> RatingCampaign:
    """Change a running campaign's settings (`EDITABLE`: overlap, raters, ...); its items and rubric stay
    (the rubric has its own versions). InputError names what cannot change or what is wrong."""
    fixed = sorted(set(changes) - set(EDITABLE))
    if fixed:
        raise InputError(f"{', '.join(fixed)} cannot change once a campaign exists; editable: {', '.join(EDITABLE)}")
    campaign = RatingCampaign.objects.select_for_update().get(pk=campaign.pk)
    before = audit.snapshot(campaign)
    if "description" in changes:
        campaign.description = str(changes["description"] or "")
    try:
        timeout = int(changes.get("reservation_timeout_s", campaign.reservation_timeout_s))
        floor = float(changes.get("fast_floor_s", campaign.fast_floor_s))
        overlap = int(changes.get("overlap", campaign.overlap))
    except (TypeError, ValueError):
        raise InputError("overlap and reservation_timeout_s must be whole numbers, fast_floor_s a number") from None
    if timeout < 10 or floor < 0:
        raise InputError("reservation_timeout_s must be at least 10 s and fast_floor_s not negative")
    campaign.reservation_timeout_s, campaign.fast_floor_s = timeout, floor
    if "key_dwell_ms" in changes:
        campaign.key_dwell_ms = _dwell(changes["key_dwell_ms"])
    campaign.signal_view, campaign.signal_view_switchable = checked_signal_view(
        changes.get("signal_view", campaign.signal_view), changes.get("signal_view_switchable", campaign.signal_view_switchable))
    users = _named(get_user_model(), changes["raters"], "username", "rater") if "raters" in changes \
        else list(campaign.raters.all())
    if not users:
        raise InputError("the campaign needs at least one rater")
    if overlap > len(users):
        raise InputError(f"overlap must be between 1 and the number of raters ({len(users)}), got {overlap}")
    if "show_evidence" in changes:
        campaign.show_evidence = bool(changes["show_evidence"])
        if campaign.show_evidence:
            check_unchecked_items(campaign)
    RATING.change_overlap(campaign, overlap)
    campaign.save()
    if "raters" in changes:
        campaign.raters.set(users)
        RATING.drop_holds(campaign, exclude_raters=users)
    after = audit.snapshot(campaign)
    if after != before:
        audit.record(ChangeRecord.UPDATE, campaign, actor=user, before=before, after=after)
    return campaign
