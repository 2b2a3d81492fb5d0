"""Periodic upkeep (Celery beat): thin wrappers around core.services.sweeps."""
from celery import shared_task

from core.services import sweeps


@shared_task(name="core.sweep")
def sweep() -> dict:
    return {"requeued": len(sweeps.requeue_stale_jobs()), "files_removed": len(sweeps.sweep_storage())}
