"""The rating queue: core.services.work_queue over rating items, reservations and ratings, each rater
served the items in their own random order (a per-rater permutation of the positions)."""
from __future__ import annotations

import hashlib
from math import gcd

from django.db.models import BigIntegerField, F
from django.db.models.functions import Cast, Mod

from core.exceptions import InputError
from core.services.work_queue import NotReserved, StaleAnswer, WorkQueue  # noqa: F401 (API names)
from datasets.constants import STAGES
from ratings.models import Rating, RatingItem, RatingReservation
from ratings.services.rubric import SCALE


def rater_permutation(campaign, rater_id: int, n: int) -> tuple[int, int]:
    """(a, b) of position -> (a * position + b) mod n, a permutation of 0..n-1 (gcd(a, n) = 1) seeded by
    (campaign seed, campaign, rater): each rater gets their own order, the same on every request."""
    digest = hashlib.sha256(f"{campaign.sample_seed}:{campaign.pk}:{rater_id}:order".encode()).digest()
    a = int.from_bytes(digest[:8], "big") % max(n, 1) or 1
    while gcd(a, n) != 1:
        a = a % n + 1
    return a, int.from_bytes(digest[8:16], "big") % max(n, 1)


class RatingQueue(WorkQueue):
    held_order = ("created_at", "pk")  # the rater's own order, in which they were reserved

    def order(self, items, campaign, rater):
        n = campaign.items.count()
        a, b = rater_permutation(campaign, rater.pk, n)
        return items.alias(turn=Mod(Cast(F("position"), BigIntegerField()) * a + b, n)).order_by("turn")

    def clean(self, campaign, fields: dict) -> dict:
        rubric = campaign.rubric
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
        seconds = fields.get("seconds_spent")
        return {"scores": {k: scores[k] for k in rubric.keys}, "rubric": rubric, "note": fields.get("note") or "",
                "corrected_stage": corrected_stage, "corrected_rule_ids": corrected_rules, "seconds_spent": seconds,
                "fast": seconds is not None and seconds < campaign.fast_floor_s}


RATING = RatingQueue(items=RatingItem, reservations=RatingReservation, answers=Rating)
