"""Celery tasks of the releases app: thin wrappers around services/build.py."""
from celery import shared_task

from releases.services import build


@shared_task(name="releases.build_release", acks_late=True, reject_on_worker_lost=True)
def build_release(release_id: int) -> str:
    return build.build_release(release_id).state
