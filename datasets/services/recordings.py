"""The cohorts a user sees (page and API); deleting a recording (API, admin): its epochs, images and campaign
items go with it, in one change record."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q, QuerySet

from core.access import policy_for
from core.models import ChangeRecord
from core.services import audit
from datasets.models import Cohort, Recording


def visible_cohorts(user) -> QuerySet:
    """The cohorts `user` sees, each with `recording_count`: the recordings of it that the user reaches. A user
    whose recordings are narrowed (a rater: those of their campaigns) sees only the cohorts of those recordings."""
    policy = policy_for(user)
    reachable = policy.reachable(Recording.objects.all()).values("pk")
    cohorts = Cohort.objects.annotate(recording_count=Count("recordings", filter=Q(recordings__in=reachable)))
    if not policy.reaches_every_recording():
        cohorts = cohorts.filter(pk__in=Recording.objects.filter(pk__in=reachable).values("cohort_id"))
    return cohorts.order_by("name")


@transaction.atomic
def delete_recording(recording: Recording, *, user=None) -> None:
    """Delete the recording's rows (its stored files are left to the storage sweep) and record what it was."""
    before = audit.snapshot(recording)
    recording_id, label = recording.pk, str(recording)
    recording.delete()
    audit.record(ChangeRecord.DELETE, actor=user, before=before, object_type=audit.object_type_of(Recording),
                 object_id=str(recording_id), object_repr=label)
