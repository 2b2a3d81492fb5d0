"""Celery tasks of the datasets app: thin wrappers around services."""
from celery import shared_task

from datasets.services import imports


@shared_task(acks_late=True, name="datasets.run_import")
def run_import(job_id: int) -> str:
    return imports.run_job(job_id).state
