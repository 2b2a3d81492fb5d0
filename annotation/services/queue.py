"""The fair queue of a scoring campaign: reservations of item slots, labels, release, re-scoring.

Guarantees (kept by the unique constraints of annotation.models, whatever the interleaving):
- an item has at most `overlap` slots (0..overlap-1, unique per item), a first label needs a slot and
  keeps it for good, so no item gets more than `overlap` first-pass labels;
- a rater holds at most one slot of an item (unique (item, rater)), so no rater labels an item twice
  (re-scoring aside: a re-score is a second *pass*, not a second slot);
- expired, unlabelled reservations are deleted before candidates are chosen;
- a rater asking again gets back their own live reservation first.

Concurrency: PostgreSQL locks candidate items with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent
raters take different items instead of waiting; every backend (SQLite too, where FOR UPDATE is a no-op)
then creates the Reservation for the lowest free slot inside a savepoint: an IntegrityError from the
unique constraints means someone else took it (compare-and-set), and the next candidate is tried.

Re-scoring: with `rescore_share` > 0, once a rater has `RESCORE_AFTER` first-pass labels, each labelled
item is picked for re-scoring with probability `rescore_share`, deterministically from (campaign seed,
rater, item); a pick is served again once the rater has labelled `RESCORE_GAP` more items since. The
re-score label is stored with `rescore=True`; the API never tells the rater.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import CampaignItem, Label, RecordingReservation, Reservation, ScoringCampaign
from datasets.constants import STAGES
from datasets.exceptions import InputError

RESCORE_AFTER = 10  # first-pass labels a rater needs before any re-scoring
RESCORE_GAP = 5  # first-pass labels given since an item's label before it is served again
CANDIDATES = 4  # items locked per round
ROUNDS = 8


class NotReserved(Exception):
    """A first label without the rater's reservation of the item (and no free slot to take)."""


class StaleLabel(Exception):
    """The label changed since the client read it (another tab or device)."""

    def __init__(self, current_revision: int | None):
        self.current_revision = current_revision
        if current_revision is None:
            message = "changed in another tab or device: there is no label yet (send no base_revision)"
        else:
            message = f"changed in another tab or device: revision {current_revision} is current"
        super().__init__(message)


def _now(now):
    return now or timezone.now()


MAX_AHEAD = 5  # items a page may hold ahead of the one on screen


def _expiry(campaign, now):
    return now + timedelta(seconds=campaign.reservation_timeout_s)


_last_release: dict[int, float] = {}  # campaign id -> monotonic time of this process's last release
RELEASE_EVERY_S = 1.0


def release_expired(campaign, now=None) -> int:
    """Delete the campaign's expired unlabelled reservations (and expired recording holds).

    At most once a second per process and campaign (an expired hold lingers that much longer at most),
    so a busy queue does not pay two DELETE transactions on every request; an explicit `now` always runs.
    """
    if now is None:
        last = _last_release.get(campaign.pk, -RELEASE_EVERY_S)
        if time.monotonic() - last < RELEASE_EVERY_S:
            return 0
        _last_release[campaign.pk] = time.monotonic()
    now = _now(now)
    count, _ = Reservation.objects.filter(item__campaign=campaign, labelled=False, expires_at__lte=now).delete()
    RecordingReservation.objects.filter(campaign=campaign, expires_at__lte=now).delete()
    return count


def _slots_taken():
    return Coalesce(Subquery(Reservation.objects.filter(item=OuterRef("pk")).order_by().values("item")
                             .annotate(n=Count("pk")).values("n")[:1]), Value(0))


def open_items(campaign, rater):
    """Items with a free slot that the rater holds no slot of, in queue order."""
    mine = Reservation.objects.filter(item=OuterRef("pk"), rater=rater)
    return (CampaignItem.objects.filter(campaign=campaign)
            .alias(taken=_slots_taken(), mine=Exists(mine))
            .filter(taken__lt=campaign.overlap, mine=False).order_by("position"))


def _try_reserve(campaign, rater, item_id, now) -> Reservation | None:
    used = set(Reservation.objects.filter(item_id=item_id).values_list("slot", flat=True))
    free = [s for s in range(campaign.overlap) if s not in used]
    if not free:
        return None
    try:
        with transaction.atomic():
            return Reservation.objects.create(item_id=item_id, slot=free[0], rater=rater,
                                              expires_at=_expiry(campaign, now))
    except IntegrityError:
        return None  # taken meanwhile (slot) or already ours: the next candidate


def _reserve_from(campaign, rater, items, now) -> Reservation | None:
    """A reservation of the first free item of `items`; None only when none is open for the rater.

    Rows other raters are reserving right now are skipped (PostgreSQL); when every open row is
    locked that way, it tries again shortly rather than answer "nothing left" while items remain.
    """
    for attempt in range(ROUNDS):
        ids = list(items.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:CANDIDATES])
        if not ids:
            if not items.exists():
                return None
            time.sleep(0.005 * (attempt + 1))
            continue
        for item_id in ids:
            reservation = _try_reserve(campaign, rater, item_id, now)
            if reservation is not None:
                return reservation
    return None


def _rescore_pick(campaign, rater_id: int, item_id: int) -> bool:
    if campaign.rescore_share <= 0:
        return False
    digest = hashlib.sha256(f"{campaign.sample_seed}:{campaign.pk}:{rater_id}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < campaign.rescore_share


def pending_rescore(campaign, rater) -> CampaignItem | None:
    """The first item picked for re-scoring that is due (labelled long enough ago, not re-scored yet)."""
    if campaign.rescore_share <= 0:
        return None
    first = list(Label.objects.filter(item__campaign=campaign, rater=rater, rescore=False, revision=1)
                 .order_by("created_at", "pk").values_list("item_id", flat=True))
    if len(first) < RESCORE_AFTER:
        return None
    done = set(Label.objects.filter(item__campaign=campaign, rater=rater, rescore=True).values_list("item_id", flat=True))
    for position, item_id in enumerate(first[:len(first) - RESCORE_GAP]):
        if item_id not in done and _rescore_pick(campaign, rater.pk, item_id):
            return CampaignItem.objects.get(pk=item_id)
    return None


def is_rescore_due(campaign, rater, item) -> bool:
    pending = pending_rescore(campaign, rater)
    return pending is not None and pending.pk == item.pk


def next_item(campaign: ScoringCampaign, rater, now=None):
    """(CampaignItem, rescore) for the rater, reserving a slot; None when nothing is left for them."""
    release_expired(campaign, now)
    now = _now(now)
    with transaction.atomic():
        own = (Reservation.objects.filter(item__campaign=campaign, rater=rater, labelled=False, expires_at__gt=now)
               .select_related("item").order_by("item__position").first())
        if own is not None:
            return own.item, False
        rescore = pending_rescore(campaign, rater)
        if rescore is not None:
            return rescore, True
        if campaign.unit == ScoringCampaign.RECORDING:
            reservation = _next_in_recording(campaign, rater, now)
        else:
            reservation = _reserve_from(campaign, rater, open_items(campaign, rater), now)
        return (reservation.item, False) if reservation is not None else None


def reserve_ahead(campaign: ScoringCampaign, rater, count: int, now=None) -> list[tuple[CampaignItem, bool]]:
    """Up to `count` items for the rater, the next first: `next_item`'s, then further reservations in
    queue order, so a scoring page can go on for a few epochs while offline. A re-score comes alone."""
    count = max(1, min(int(count), MAX_AHEAD))
    first = next_item(campaign, rater, now)
    if first is None or first[1]:
        return [first] if first else []
    now = _now(now)
    held = Reservation.objects.filter(item__campaign=campaign, rater=rater, labelled=False, expires_at__gt=now)
    with transaction.atomic():
        for _ in range(count - held.count()):
            if campaign.unit == ScoringCampaign.RECORDING:
                reservation = _next_in_recording(campaign, rater, now)
            else:
                reservation = _reserve_from(campaign, rater, open_items(campaign, rater), now)
            if reservation is None:
                break
    return [(r.item, False) for r in held.select_related("item").order_by("item__position")[:count]]


def _next_in_recording(campaign, rater, now) -> Reservation | None:
    """Whole-recording unit: keep to the recording the rater holds, in time order; else take a free recording slot."""
    for hold in RecordingReservation.objects.filter(campaign=campaign, rater=rater).order_by("pk"):
        reservation = _reserve_from(campaign, rater, open_items(campaign, rater).filter(recording_id=hold.recording_id), now)
        if reservation is not None:
            RecordingReservation.objects.filter(pk=hold.pk).update(expires_at=_expiry(campaign, now))
            return reservation
        if not open_items(campaign, rater).filter(recording_id=hold.recording_id).exists():
            hold.delete()  # done with this recording: its slot is free for someone with items left in it
    held = RecordingReservation.objects.filter(campaign=campaign, recording=OuterRef("recording_id"))
    holds = Coalesce(Subquery(held.order_by().values("recording").annotate(n=Count("pk")).values("n")[:1]), Value(0))
    recordings = (open_items(campaign, rater).alias(holds=holds).filter(holds__lt=campaign.overlap)
                  .order_by("recording_id").values_list("recording_id", flat=True).distinct())
    tried = set()
    for _ in range(ROUNDS):
        candidate = next((r for r in recordings.exclude(recording_id__in=tried)[:CANDIDATES]), None)
        if candidate is None:
            return None
        tried.add(candidate)
        used = set(RecordingReservation.objects.filter(campaign=campaign, recording_id=candidate)
                   .values_list("slot", flat=True))
        free = [s for s in range(campaign.overlap) if s not in used]
        if not free:
            continue
        try:
            with transaction.atomic():
                RecordingReservation.objects.create(campaign=campaign, recording_id=candidate, slot=free[0],
                                                    rater=rater, expires_at=_expiry(campaign, now))
        except IntegrityError:
            continue
        reservation = _reserve_from(campaign, rater, open_items(campaign, rater).filter(recording_id=candidate), now)
        if reservation is not None:
            return reservation
    return None


def reservation_of(campaign, rater, item) -> Reservation | None:
    return Reservation.objects.filter(item=item, rater=rater, item__campaign=campaign).first()


def release(campaign, rater, item) -> bool:
    """Give back the rater's unlabelled reservation of an item (abandoned): its slot is free again."""
    count, _ = Reservation.objects.filter(item=item, item__campaign=campaign, rater=rater, labelled=False).delete()
    return count > 0


def current_labels(campaign, *, rescore: bool | None = None):
    """The current labels (no later revision replaces them) of the campaign."""
    labels = Label.objects.filter(item__campaign=campaign, replaced_by__isnull=True)
    return labels if rescore is None else labels.filter(rescore=rescore)


def visible_label(campaign, rater, item) -> Label | None:
    """The rater's label of an item as the rater sees it: the latest pass (a re-score once there is one)."""
    return (current_labels(campaign).filter(item=item, rater=rater).order_by("-rescore").first())


def _validate(campaign, stage, rule_ids, rationale):
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    rule_ids = list(rule_ids or ())
    if not all(isinstance(r, str) for r in rule_ids):
        raise InputError("rule_ids must be a list of rule id strings")
    if campaign.rationale_mode and rule_ids:
        from inference.models import AasmRule

        known = set(AasmRule.objects.filter(rule_id__in=rule_ids).values_list("rule_id", flat=True))
        unknown = [r for r in rule_ids if r not in known]
        if unknown:
            raise InputError(f"unknown rule id(s): {', '.join(unknown)}")
    return rule_ids, rationale or ""


def submit_label(campaign, rater, item, *, stage, uncertain=False, rule_ids=(), rationale="", seconds_spent=None,
                 client_id, base_revision=None, now=None):
    """Save the rater's label of an item; returns (Label, created). Raises InputError, NotReserved, StaleLabel."""
    now = _now(now)
    if item.campaign_id != campaign.pk:
        raise InputError("the item is not in this campaign")
    try:
        client_id = uuid.UUID(str(client_id))
    except (TypeError, ValueError):
        raise InputError(f"client_id must be a UUID, got {client_id!r}") from None
    existing = Label.objects.filter(client_id=client_id).first()
    if existing is not None:
        return _same_save(existing, rater, item), False
    rule_ids, rationale = _validate(campaign, stage, rule_ids, rationale)
    if seconds_spent is not None:
        try:
            seconds_spent = float(seconds_spent)
        except (TypeError, ValueError):
            raise InputError("seconds_spent must be a number") from None
    if base_revision in ("", 0):
        base_revision = None
    if base_revision is not None:
        try:
            base_revision = int(base_revision)
        except (TypeError, ValueError):
            raise InputError("base_revision must be an integer") from None
    fields = dict(stage=stage, uncertain=bool(uncertain), rule_ids=rule_ids, rationale=rationale,
                  seconds_spent=seconds_spent, client_id=client_id)
    try:
        with transaction.atomic():
            current = visible_label(campaign, rater, item)
            if current is None or (base_revision is None and not current.rescore and is_rescore_due(campaign, rater, item)):
                if base_revision is not None:
                    raise StaleLabel(None)
                rescore = current is not None
                if not rescore:
                    _claim_slot(campaign, rater, item, now)
                label = Label.objects.create(item=item, rater=rater, rescore=rescore, revision=1, **fields)
            else:
                if base_revision != current.revision:
                    raise StaleLabel(current.revision)
                label = Label.objects.create(item=item, rater=rater, rescore=current.rescore,
                                             revision=current.revision + 1, replaces=current, **fields)
            if campaign.unit == ScoringCampaign.RECORDING:
                RecordingReservation.objects.filter(campaign=campaign, rater=rater, recording_id=item.recording_id) \
                    .update(expires_at=_expiry(campaign, now))
            return label, True
    except IntegrityError:
        # A concurrent save: the same client_id (a retry) or the same revision from another tab.
        existing = Label.objects.filter(client_id=client_id).first()
        if existing is not None:
            return _same_save(existing, rater, item), False
        current = visible_label(campaign, rater, item)
        raise StaleLabel(current.revision if current else None) from None


def _same_save(label, rater, item):
    if label.rater_id != rater.pk or label.item_id != item.pk:
        raise InputError("client_id was already used for another label; send a new UUID for each save")
    return label


def _claim_slot(campaign, rater, item, now):
    """Mark the rater's own reservation labelled: its slot is kept for good. No reservation: NotReserved."""
    if Reservation.objects.filter(item=item, rater=rater, labelled=False).update(labelled=True):
        return
    if Reservation.objects.filter(item=item, rater=rater, labelled=True).exists():
        current = visible_label(campaign, rater, item)  # labelled meanwhile from another tab
        raise StaleLabel(current.revision if current else None)
    raise NotReserved("you hold no reservation of this item (it expired or was released); ask for the next item")


def progress(campaign, rater, now=None) -> dict:
    """The rater's counts: items labelled (first pass) and how many they could label in all."""
    now = _now(now)
    done = Reservation.objects.filter(item__campaign=campaign, rater=rater, labelled=True).count()
    held = Reservation.objects.filter(item__campaign=campaign, rater=rater, labelled=False, expires_at__gt=now).count()
    return {"done": done, "total": done + held + open_items(campaign, rater).count()}
