"""The rating queue: core.services.work_queue over rating items, reservations and ratings, each rater
served the items in their own pseudo-random order (a seeded per-rater permutation of the positions)."""
from __future__ import annotations

import hashlib

from django.db.models import BigIntegerField, Exists, F, OuterRef
from django.db.models.functions import Cast

from core.exceptions import InputError
from core.services.blinding import epochs_to_score_blind
from core.services.work_queue import AnswerConflict, NotReserved, StaleAnswer, WorkQueue  # noqa: F401 (API names)
from datasets.constants import STAGES
from ratings.models import Rating, RatingCampaign, RatingItem, RatingReservation, Rubric
from ratings.services.rubric import SCALE


MASK = 2**32 - 1


def rater_constants(campaign, rater_id: int) -> tuple[int, int, int, int]:
    """(xor in, multiplier 1, multiplier 2, xor out) of the rater's order, from (campaign seed, campaign, rater)."""
    digest = hashlib.sha256(f"{campaign.sample_seed}:{campaign.pk}:{rater_id}:order".encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "big") for i in range(0, 16, 4)]
    return words[0], (words[1] & (2**31 - 1)) | 1, (words[2] & (2**31 - 1)) | 1, words[3]


def rater_turn(position, constants):
    """A bijection of 32-bit integers (xor-shift-multiply rounds, as in hash finalisers): positions map to
    distinct turns, so ordering by turn is a permutation of the items, a different one for every rater.
    Works on an F() expression (in SQL, SQLite and PostgreSQL alike) and on an int (to check it)."""
    x_in, m1, m2, x_out = constants
    x = position.bitxor(x_in) if hasattr(position, "bitxor") else position ^ x_in
    for multiplier, shift in ((m1, 16), (m2, 13)):
        x = (x * multiplier).bitand(MASK) if hasattr(x, "bitand") else (x * multiplier) & MASK
        x = x.bitxor(x.bitrightshift(shift)) if hasattr(x, "bitxor") else x ^ (x >> shift)
    return x.bitxor(x_out) if hasattr(x, "bitxor") else x ^ x_out


class RatingQueue(WorkQueue):
    held_order = ("created_at", "pk")  # the rater's own order, in which they were reserved
    order_per_rater = True  # a permutation seeded by the rater, and the epochs they still score blind

    def order(self, items, campaign, rater):
        turn = rater_turn(Cast(F("position"), BigIntegerField()), rater_constants(campaign, rater.pk))
        return items.alias(turn=turn).order_by("turn", "position")

    def open_in_order(self, campaign, rater):
        """The open items in the rater's order, holding back those near epochs they still score blind."""
        return self.order(without_blind_scoring(self.open_items(campaign, rater), rater), campaign, rater)

    def waiting_for_scoring(self, campaign, rater) -> int:
        """Open items held back from the rater until they have scored their epochs blind."""
        items = self.open_items(campaign, rater)
        return items.count() - without_blind_scoring(items, rater).count()

    def clean(self, campaign, fields: dict) -> dict:
        """The rating's fields, its scores checked against the rubric version the rater was shown
        (`rubric_version`, as served; the current one when not given)."""
        shown = fields.get("rubric_version")
        if shown is None:
            rubric = campaign.rubric
        else:
            rubric = Rubric.objects.filter(campaign=campaign, version=shown).first()
            if rubric is None:
                raise InputError(f"rubric_version {shown!r} is not a version of this campaign's rubric")
        scores = fields.get("scores")
        if not isinstance(scores, dict) or set(scores) != set(rubric.keys):
            raise InputError(f"scores must give each rubric dimension ({', '.join(rubric.keys)}) a score of 1 to 5")
        for key, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, int) or value not in SCALE:
                raise InputError(f"score of {key!r} must be a whole number from 1 to 5, got {value!r}")
        corrected_stage = fields.get("corrected_stage") or ""
        if corrected_stage and corrected_stage not in STAGES:
            raise InputError(f"unknown corrected_stage {corrected_stage!r}; expected one of {', '.join(STAGES)}")
        corrected_rules = list(fields.get("corrected_rule_ids") or ())
        if corrected_rules:
            from inference.models import AasmRule

            if not all(isinstance(r, str) for r in corrected_rules):
                raise InputError("corrected_rule_ids must be a list of rule id strings")
            known = set(AasmRule.objects.filter(rule_id__in=corrected_rules).values_list("rule_id", flat=True))
            unknown = [r for r in corrected_rules if r not in known]
            if unknown:
                raise InputError(f"unknown rule id(s): {', '.join(unknown)}")
        return {"scores": {k: scores[k] for k in rubric.keys}, "rubric": rubric, "note": fields.get("note") or "",
                "corrected_stage": corrected_stage, "corrected_rule_ids": corrected_rules,
                "seconds_spent": fields.get("seconds_spent")}

    def timed(self, campaign, served, now) -> dict:
        """The server's time, and the fast flag on it (never on the `seconds_spent` the browser reports)."""
        timed = super().timed(campaign, served, now)
        seconds = timed["server_seconds"]
        return {**timed, "fast": seconds is not None and seconds < campaign.fast_floor_s}


    def check_in_transaction(self, campaign, fields: dict) -> None:
        """The campaign's row locked as a rubric edit locks it (ratings.services.rubric.edit_rubric), then the
        rubric the rating was given under must still be the one in force: an edit and a first rating never
        interleave, and no rating is stored under a version it was not shown."""
        RatingCampaign.objects.select_for_update().filter(pk=campaign.pk).first()
        current = Rubric.objects.filter(campaign=campaign).order_by("-version").first()
        if fields["rubric"].pk != current.pk:
            raise AnswerConflict(f"the rubric changed since this item was shown: you rated under version "
                                 f"{fields['rubric'].version}, version {current.version} is in force now; "
                                 "reload the page and rate again")


def without_blind_scoring(items, rater):
    """Rating items without those whose epoch, or the epoch before or after it, `rater` still has to score in a
    campaign that hides the model or the reference: rating shows a stage, so they wait until that scoring is done."""
    blind = epochs_to_score_blind(rater)
    if blind is None:
        return items
    near = blind.filter(recording_id=OuterRef("recording_id"), index__gte=OuterRef("epoch__index") - 1,
                        index__lte=OuterRef("epoch__index") + 1)
    return items.exclude(Exists(near))


RATING = RatingQueue(items=RatingItem, reservations=RatingReservation, answers=Rating)
