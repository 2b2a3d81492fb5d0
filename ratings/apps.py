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


class RatingsConfig(AppConfig):
    name = "ratings"

    def ready(self):
        from core.access import register_recording_scope

        register_recording_scope(rating_recording_scope)
