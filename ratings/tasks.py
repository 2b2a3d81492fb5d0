"""Celery tasks of the ratings app: thin wrappers around its services."""
from celery import shared_task

from core.services.queue import placement
from ratings.services import statistics as stats


@shared_task(bind=True, name="ratings.statistics", acks_late=True, reject_on_worker_lost=True)
def statistics(self, job_id: int) -> str:
    return stats.run_statistics_job(job_id, **placement(self.request)).state
