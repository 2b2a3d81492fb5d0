"""Celery tasks of the datasets app: thin wrappers around services."""
from celery import shared_task

from core.services.queue import placement
from datasets.services import imports


@shared_task(bind=True, acks_late=True, name="datasets.run_import")
def run_import(self, job_id: int) -> str:
    return imports.run_job(job_id, **placement(self.request)).state
