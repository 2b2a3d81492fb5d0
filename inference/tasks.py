"""Celery tasks of the inference app: thin wrappers around services/jobs.py."""
from celery import shared_task

from core.services.queue import placement
from inference.models import InferenceJob
from inference.services import jobs


@shared_task(bind=True, name="inference.run_chunk", acks_late=True, reject_on_worker_lost=True, max_retries=3)
def run_chunk(self, job_id: int, epoch_ids: list[int]) -> str:
    """One chunk of a job; redelivered after a worker crash, retried with backoff after an error."""
    try:
        return jobs.run_chunk(job_id, epoch_ids, **placement(self.request))
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            InferenceJob.objects.get(pk=job_id).fail(f"chunk failed after {self.max_retries} retries: {exc}")
            raise
        raise self.retry(exc=exc, countdown=2 ** self.request.retries * 5)


@shared_task(name="inference.resume_job", acks_late=True)
def resume_job(job_id: int) -> str:
    return jobs.resume_job(job_id)
