from django.apps import AppConfig


def rating_recording_scope(user):
    """Raters reach the recordings of the rating campaigns they rate in (roles that see reference
    stages reach every recording)."""
    from django.db.models import Q

    from core.access import SEE_REFERENCE

    if user.has_perm(SEE_REFERENCE):
        return None
    from ratings.models import RatingItem

    return Q(pk__in=RatingItem.objects.filter(campaign__raters=user).values("recording_id"))


def rating_assignments(rater_ids, recording_ids):
    """(campaign name, rater username, recording id) of rating campaigns whose raters rate items on the recordings."""
    from ratings.models import RatingCampaign

    return (RatingCampaign.objects.filter(raters__in=rater_ids, items__recording_id__in=recording_ids)
            .values_list("name", "raters__username", "items__recording_id").distinct())


class RatingsConfig(AppConfig):
    name = "ratings"

    def ready(self):
        from core.access import register_recording_scope
        from core.services.blinding import RATING, register_assignments
        from core.services.work import register_work
        from ratings.services.work import rating_work

        register_recording_scope(rating_recording_scope)
        register_assignments(RATING, rating_assignments)
        register_work(rating_work)
