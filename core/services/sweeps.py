"""Sweeps: queue stale jobs again, and remove stored files that no row references.

Shared content-addressed files are never deleted on a failure path (a concurrent import may have
committed a row that uses them); the storage sweep removes what no StorageNameField holds, sparing
files younger than the grace period (an import in flight writes its files before its rows).
"""
from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from core.models import BackgroundJob, StorageNameField
from core.services.queue import send


def job_models() -> list[type[BackgroundJob]]:
    return [m for m in apps.get_models() if issubclass(m, BackgroundJob) and m.task_name]


def requeue_stale_jobs(*, pending_after_s: float | None = None) -> list[tuple[str, int]]:
    """Queue again every PENDING job older than `pending_after_s` (its message may never have reached
    the broker) and every RUNNING job whose worker has been silent past the lease."""
    now = timezone.now()
    pending_after = timedelta(seconds=settings.JOB_PENDING_REQUEUE_SECONDS if pending_after_s is None else pending_after_s)
    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    queued = []
    for model in job_models():
        rows = model.objects.filter(
            Q(state=model.PENDING, created_at__lte=now - pending_after)
            | Q(state=model.RUNNING, heartbeat_at__lt=stale)
            | Q(state=model.RUNNING, heartbeat_at__isnull=True)
        ).values_list("pk", flat=True)
        for pk in rows:
            send(model.task_name, (pk,))
            queued.append((model._meta.label, pk))
    return queued


def referenced_names() -> set[str]:
    names: set[str] = set()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, StorageNameField):
                names.update(model.objects.exclude(**{field.name: ""}).values_list(field.name, flat=True).iterator())
    return names


def _walk(folder: str = ""):
    directories, files = default_storage.listdir(folder)
    for name in files:
        yield f"{folder}/{name}" if folder else name
    for directory in directories:
        yield from _walk(f"{folder}/{directory}" if folder else directory)


def sweep_storage(*, grace_s: float | None = None, dry_run: bool = False) -> list[str]:
    """Delete stored files that no row references and that are older than the grace period."""
    grace = timedelta(seconds=settings.STORAGE_SWEEP_GRACE_SECONDS if grace_s is None else grace_s)
    cutoff = timezone.now() - grace
    try:
        candidates = list(_walk())
    except FileNotFoundError:
        return []
    referenced = referenced_names()
    removed = []
    for name in candidates:
        if name in referenced or default_storage.get_modified_time(name) > cutoff:
            continue
        if not dry_run:
            default_storage.delete(name)
        removed.append(name)
    return removed
