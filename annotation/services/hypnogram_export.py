"""Hypnogram export sources of scoring (registered in datasets.services.hypnogram_export.HYPNOGRAM_SOURCES):
the consensus of a campaign (curators, researchers, admins) and one rater's labels (those roles, or the rater)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from annotation.models import ScoringCampaign
from annotation.services.campaigns import visible_campaigns
from annotation.services.consensus import campaign_consensus
from annotation.services.queue import own_visible_labels
from core.api import sees_everything
from datasets.exceptions import InputError
from datasets.services.hypnogram_export import HypnogramSource, option_id


def _campaign(recording, user, options) -> ScoringCampaign:
    """The campaign named by campaign=ID among those the user reaches that cover the recording."""
    pk = option_id(options, "campaign")
    campaign = visible_campaigns(user).filter(pk=pk, recordings=recording).first()
    if campaign is None:
        raise InputError(f"campaign: no scoring campaign {pk} you reach covers this recording")
    return campaign


def consensus_stages(recording, user, options) -> dict[int, str]:
    """Epoch id -> the campaign's consensus (adjudicated, else a majority; none on a tie or without labels)."""
    if not sees_everything(user):
        raise PermissionDenied("a campaign's consensus is shown to curators and researchers")
    summaries = campaign_consensus(_campaign(recording, user, options), recording)
    return {summary.epoch_id: summary.stage for summary in summaries.values() if summary.stage}


def consensus_choices(recording, user) -> list[tuple[str, dict[str, str]]]:
    if not sees_everything(user):
        return []
    return [(f"Consensus of {campaign.name}", {"campaign": str(campaign.pk)})
            for campaign in recording.scoring_campaigns.order_by("name")]


def rater_stages(recording, user, options) -> dict[int, str]:
    """Epoch id -> one rater's current label (their latest pass, as they see it): rater=ID, by default the
    requester. Raters get only their own."""
    campaign = _campaign(recording, user, options)
    rater_id = option_id(options, "rater", required=False) or user.pk
    if rater_id != user.pk and not sees_everything(user):
        raise PermissionDenied("raters export only their own labels")
    rater = get_user_model().objects.filter(pk=rater_id).first()
    labels = own_visible_labels(campaign, rater).filter(item__recording=recording) if rater else None
    if rater is None or not (campaign.raters.filter(pk=rater.pk).exists() or labels.exists()):
        raise InputError(f"rater: user {rater_id} is not a rater of campaign {campaign.pk}")
    return dict(labels.values_list("item__epoch_id", "stage"))


def rater_choices(recording, user) -> list[tuple[str, dict[str, str]]]:
    campaigns = recording.scoring_campaigns.order_by("name")
    if not sees_everything(user):
        return [(f"My labels in {campaign.name}", {"campaign": str(campaign.pk)})
                for campaign in campaigns.filter(raters=user)]
    return [(f"Labels of {rater.username} in {campaign.name}", {"campaign": str(campaign.pk), "rater": str(rater.pk)})
            for campaign in campaigns for rater in campaign.raters.order_by("username")]


SOURCES = {
    "consensus": HypnogramSource(consensus_stages, consensus_choices, ("campaign",)),
    "rater": HypnogramSource(rater_stages, rater_choices, ("campaign", "rater")),
}
