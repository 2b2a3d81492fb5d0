"""Celery tasks of the annotation app: thin wrappers around its services."""
from celery import shared_task

from annotation.services import dashboard
from core.services.queue import placement


@shared_task(bind=True, name="annotation.statistics", acks_late=True, reject_on_worker_lost=True)
def statistics(self, job_id: int) -> str:
    return dashboard.run_statistics_job(job_id, **placement(self.request)).state
