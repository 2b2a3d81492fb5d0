"""Celery tasks of the releases app: thin wrappers around services/build.py."""
from celery import shared_task

from core.services.queue import placement
from releases.services import build


@shared_task(bind=True, name="releases.build_release", acks_late=True, reject_on_worker_lost=True)
def build_release(self, release_id: int) -> str:
    return build.build_release(release_id, **placement(self.request)).state
