"""What scoring tells core's cross-campaign blinding (core.services.blinding): the epochs a rater still has
to score in campaigns that hide model outputs or the reference, and where such campaigns and raters meet."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q

from annotation.models import CampaignItem, Label
from datasets.models import Epoch

HIDES_MODEL_OR_REFERENCE = Q(campaign__show_model_outputs=False) | Q(campaign__show_reference=False)


def items_to_score_blind(user):
    """Open items, of the user's campaigns that hide the model or the reference, the user has not labelled yet."""
    labelled = Label.objects.filter(item=OuterRef("pk"), rater=user)
    return (CampaignItem.objects.filter(HIDES_MODEL_OR_REFERENCE, campaign__raters=user, complete=False)
            .exclude(Exists(labelled)))


def epochs_to_score_blind(user):
    """The epochs of `items_to_score_blind`, as a lazy queryset: the rating queue puts it inside the one statement
    that picks and reserves an item (no query of its own to find out whether there are any)."""
    return Epoch.objects.filter(pk__in=items_to_score_blind(user).values("epoch_id"))


def blind_scoring_assignments(rater_ids, recording_ids):
    """(campaign name, rater username, recording id) where a rater still has epochs of the recording to score in
    a campaign that hides the model or the reference."""
    for rater in get_user_model().objects.filter(pk__in=rater_ids):
        rows = (items_to_score_blind(rater).filter(recording_id__in=recording_ids)
                .values_list("campaign__name", "recording_id").distinct())
        yield from ((campaign, rater.username, recording_id) for campaign, recording_id in rows)
