"""Creating and changing model versions (API, admin, demo): one change record per save."""
from __future__ import annotations

from django.db import transaction

from core.models import ChangeRecord
from core.services import audit
from inference.models import ModelVersion


@transaction.atomic
def save_version(version: ModelVersion, *, user=None, **fields) -> ModelVersion:
    """Save `version` (new when it has no pk) with `fields` applied; the model refuses a change of backend or
    settings on a frozen version, the callers check the operator's allowlists (ModelVersion.check_change)."""
    stored = ModelVersion.objects.filter(pk=version.pk).first() if version.pk else None
    for name, value in fields.items():
        setattr(version, name, value)
    version.save()
    after = audit.snapshot(version)
    if stored is None:
        audit.record(ChangeRecord.CREATE, version, actor=user, after=after)
    elif (before := audit.snapshot(stored)) != after:
        audit.record(ChangeRecord.UPDATE, version, actor=user, before=before, after=after)
    return version
