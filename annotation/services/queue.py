"""The scoring queue: core.services.work_queue over campaign items, reservations and labels, plus the
whole-recording unit (a rater holds one overlap slot of a recording and scores it in time order).

The module-level names (next_item, submit_label, current_labels, ...) are the scoring queue's methods,
as the API, pages, dashboard and demo use them.
"""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from annotation.models import CampaignItem, Label, RecordingReservation, Reservation, ScoringCampaign
from core.exceptions import InputError
from core.services.work_queue import RESCORE_GAP, NotReserved, StaleAnswer, WorkQueue  # noqa: F401 (API names)
from core.services.work_queue import CANDIDATES, ROUNDS
from datasets.constants import STAGES

StaleLabel = StaleAnswer


class ScoringQueue(WorkQueue):
    def held_ordering(self, campaign) -> tuple:
        """In a review campaign the least confident of the rater's reservations first."""
        if campaign.review_model_id is None:
            return super().held_ordering(campaign)
        return (F("held_confidence").asc(nulls_first=True), "item__position")

    def held_key(self, campaign) -> tuple | None:
        """A review campaign's held items are ordered by the model's confidence (its source): never cached."""
        return None if campaign.review_model_id is not None else super().held_key(campaign)

    def _held(self, campaign, rater, now):
        """The rater's live reservations; in a review campaign with the items' confidence (held_ordering)."""
        held = super()._held(campaign, rater, now)
        if campaign.review_model_id is None:
            return held
        from annotation.services.review import confidence

        return held.alias(held_confidence=confidence(campaign.review_model, epoch=OuterRef("item__epoch_id")))

    def clean(self, campaign, fields: dict) -> dict:
        stage = fields.get("stage")
        if stage not in STAGES:
            raise InputError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        rule_ids = list(fields.get("rule_ids") or ())
        if not all(isinstance(r, str) for r in rule_ids):
            raise InputError("rule_ids must be a list of rule id strings")
        rationale = str(fields.get("rationale") or "").strip()
        if campaign.rationale_mode:  # each label is an expert rationale: known rules, at least one, and a text
            from inference.models import AasmRule

            known = set(AasmRule.objects.filter(rule_id__in=rule_ids).values_list("rule_id", flat=True))
            unknown = [r for r in rule_ids if r not in known]
            if unknown:
                raise InputError(f"unknown rule id(s): {', '.join(unknown)}")
            missing = [what for what, empty in (("rule ids", not rule_ids), ("rationale", not rationale)) if empty]
            if missing:
                raise InputError("this campaign collects rationales: a label needs at least one rule id and a "
                                 f"rationale ({' and '.join(missing)} missing)")
        elif rule_ids or rationale:
            raise InputError("this campaign does not collect rationales: send a stage (and uncertain) only, "
                             "without rule_ids or rationale")
        proposed = fields.get("proposed_stage")
        return {"stage": stage, "uncertain": bool(fields.get("uncertain")), "rule_ids": rule_ids,
                "rationale": rationale, "seconds_spent": fields.get("seconds_spent"),
                "accepted": None if proposed is None else stage == proposed}

    def submit(self, campaign, rater, item, **fields):
        """WorkQueue.submit; in a review campaign the label records whether it accepts the model's proposal."""
        fields.pop("proposed_stage", None)
        if campaign.review_model_id is not None:
            from annotation.services.review import proposal

            found = proposal(campaign, item.epoch_id)
            fields["proposed_stage"] = found.stage if found else None
        return super().submit(campaign, rater, item, **fields)

    def order(self, items, campaign, rater):
        """Review campaigns serve the model's least confident epochs first; others keep queue position."""
        if campaign.review_model_id is None:
            return super().order(items, campaign, rater)
        from annotation.services.review import order_by_confidence

        return order_by_confidence(items, campaign)

    def statement_key(self, campaign, rater):
        """A review campaign's order depends on the model's predictions (its confidence source): never cached."""
        return None if campaign.review_model_id is not None else super().statement_key(campaign, rater)

    def reserve_one(self, campaign, rater, now):
        if campaign.unit == ScoringCampaign.RECORDING:
            return self._next_in_recording(campaign, rater, now)
        return super().reserve_one(campaign, rater, now)

    def release_held(self, campaign, now) -> None:
        RecordingReservation.objects.filter(campaign=campaign, expires_at__lte=now).delete()

    def after_save(self, campaign, rater, item, now) -> None:
        if campaign.unit == ScoringCampaign.RECORDING:
            RecordingReservation.objects.filter(campaign=campaign, rater=rater, recording_id=item.recording_id) \
                .update(expires_at=self.expiry(campaign, now))

    def change_overlap(self, campaign, overlap: int) -> None:
        super().change_overlap(campaign, overlap)
        RecordingReservation.objects.filter(campaign=campaign, slot__gte=overlap).delete()

    def drop_holds(self, campaign, *, exclude_raters) -> None:
        super().drop_holds(campaign, exclude_raters=exclude_raters)
        RecordingReservation.objects.filter(campaign=campaign).exclude(rater__in=exclude_raters).delete()

    def _open_in(self, campaign, rater, recording_id):
        return self.order(self.open_items(campaign, rater).filter(recording_id=recording_id), campaign, rater)

    def _next_in_recording(self, campaign, rater, now):
        """Keep to the recording the rater holds, in time order; else take a free recording slot."""
        for hold in RecordingReservation.objects.filter(campaign=campaign, rater=rater).order_by("pk"):
            reservation = self.reserve_from(campaign, rater, self._open_in(campaign, rater, hold.recording_id), now)
            if reservation is not None:
                RecordingReservation.objects.filter(pk=hold.pk).update(expires_at=self.expiry(campaign, now))
                return reservation
            if not self._open_in(campaign, rater, hold.recording_id).exists():
                hold.delete()  # done with this recording: its slot is free for someone with items left in it
        held = RecordingReservation.objects.filter(campaign=campaign, recording=OuterRef("recording_id"))
        holds = Coalesce(Subquery(held.order_by().values("recording").annotate(n=Count("pk")).values("n")[:1]), Value(0))
        recordings = (self.open_items(campaign, rater).alias(holds=holds).filter(holds__lt=campaign.overlap)
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
                                                        rater=rater, expires_at=self.expiry(campaign, now))
            except IntegrityError:
                continue
            reservation = self.reserve_from(campaign, rater, self._open_in(campaign, rater, candidate), now)
            if reservation is not None:
                return reservation
        return None


SCORING = ScoringQueue(items=CampaignItem, reservations=Reservation, answers=Label)

next_item = SCORING.next_item
reserve_ahead = SCORING.reserve_ahead
release = SCORING.release
release_expired = SCORING.release_expired
progress = SCORING.progress
current_labels = SCORING.current
visible_label = SCORING.visible
own_visible_labels = SCORING.own_visible
submit_label = SCORING.submit
