"""The user's rating work for the "My work" page (core.services.work): campaigns they rate, with their progress."""
from __future__ import annotations

from django.urls import reverse

from core.services.work import Assignment
from ratings.models import RatingCampaign
from ratings.services.queue import RATING


def rating_work(user) -> list[Assignment]:
    out = []
    for campaign in RatingCampaign.objects.filter(raters=user).order_by("-created_at"):
        counts = RATING.progress(campaign, user)
        out.append(Assignment("Rating", campaign.name, counts["done"], counts["total"],
                              reverse("ratings:rate", args=[campaign.pk]), "Continue" if counts["done"] else "Start"))
    return out
