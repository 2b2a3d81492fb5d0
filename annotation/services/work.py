"""The user's scoring work for the "My work" page (core.services.work): campaigns they score, with their
progress, and campaigns they adjudicate (designated, or any campaign with disputes for curators)."""
from __future__ import annotations

from django.urls import reverse

from annotation.models import Adjudication, ScoringCampaign
from annotation.services.consensus import for_adjudication
from annotation.services.queue import progress
from core.services.work import Assignment


def scoring_work(user) -> list[Assignment]:
    out = []
    for campaign in ScoringCampaign.objects.filter(raters=user).order_by("-created_at"):
        counts = progress(campaign, user)
        out.append(Assignment("Scoring", campaign.name, counts["done"], counts["total"],
                              reverse("annotation:score", args=[campaign.pk]), "Continue" if counts["done"] else "Start"))
    curator = user.has_perm("annotation.adjudicate")
    campaigns = ScoringCampaign.objects.all() if curator else ScoringCampaign.objects.filter(adjudicators=user)
    for campaign in campaigns.order_by("-created_at"):
        disputed = len(for_adjudication(campaign))
        if curator and not disputed and not campaign.adjudicators.filter(pk=user.pk).exists():
            continue
        resolved = Adjudication.objects.filter(item__campaign=campaign).values("item").distinct().count()
        out.append(Assignment("Adjudication", campaign.name, resolved, resolved + disputed,
                              reverse("annotation:adjudicate", args=[campaign.pk]), "Adjudicate"))
    return out
