"""Deleting a recording (API, admin): its epochs, images and campaign items go with it, in one change record."""
from __future__ import annotations

from django.db import transaction

from core.models import ChangeRecord
from core.services import audit
from datasets.models import Recording


@transaction.atomic
def delete_recording(recording: Recording, *, user=None) -> None:
    """Delete the recording's rows (its stored files are left to the storage sweep) and record what it was."""
    before = audit.snapshot(recording)
    recording_id, label = recording.pk, str(recording)
    recording.delete()
    audit.record(ChangeRecord.DELETE, actor=user, before=before, object_type=audit.object_type_of(Recording),
                 object_id=str(recording_id), object_repr=label)
