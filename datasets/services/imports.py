"""Import jobs: one record per requested import, run by a Celery worker or the CLI, with progress."""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from datasets.exceptions import InputError
from datasets.models import ImportJob
from datasets.services import storage
from datasets.services.ingest import ImportRequest, Progress, import_psg

log = logging.getLogger(__name__)


def create_job(*, source_path: str, source_name: str, cohort: str, in_storage: bool = False,
               hypnogram_path: str = "", hypnogram_name: str = "", hypnogram_format: str = "",
               channel_map: dict | None = None, mains_hz: float | None = None,
               trim_to_hypnogram: bool = False, user=None) -> ImportJob:
    return ImportJob.objects.create(
        source_path=source_path, source_name=source_name, source_in_storage=in_storage, cohort_name=cohort,
        hypnogram_path=hypnogram_path, hypnogram_name=hypnogram_name, hypnogram_format=hypnogram_format,
        channel_map=channel_map, mains_hz=mains_hz, trim_to_hypnogram=trim_to_hypnogram, created_by=user,
    )


def submit_upload(*, upload, cohort: str, hypnogram=None, hypnogram_format: str = "",
                  channel_map: dict | None = None, mains_hz: float | None = None,
                  trim_to_hypnogram: bool = False, user=None) -> ImportJob:
    """Keep uploaded files in storage until their job has run, create the job and queue it."""
    folder = f"uploads/{uuid.uuid4().hex}"
    source_path = default_storage.save(f"{folder}/{Path(upload.name).name}", upload)
    hypnogram_path = default_storage.save(f"{folder}/{Path(hypnogram.name).name}", hypnogram) if hypnogram else ""
    with transaction.atomic():
        job = create_job(
            source_path=source_path, source_name=upload.name, in_storage=True, cohort=cohort,
            hypnogram_path=hypnogram_path, hypnogram_name=hypnogram.name if hypnogram else "",
            hypnogram_format=hypnogram_format, channel_map=channel_map, mains_hz=mains_hz,
            trim_to_hypnogram=trim_to_hypnogram, user=user,
        )
        enqueue(job)
    return job


def enqueue(job: ImportJob) -> None:
    """Queue the job for a worker once the surrounding transaction has committed."""
    from datasets.tasks import run_import

    transaction.on_commit(lambda: run_import.delay(job.pk))


class JobProgress:
    """Write progress to the job row, at most every half second (and always at the end)."""

    def __init__(self, job: ImportJob, echo: Progress | None = None):
        self.job_id, self.echo, self.last = job.pk, echo, 0.0

    def __call__(self, fraction: float, done: int, total: int, message: str) -> None:
        if self.echo:
            self.echo(fraction, done, total, message)
        now = time.monotonic()
        if now - self.last < 0.5 and fraction < 1.0:
            return
        self.last = now
        ImportJob.objects.filter(pk=self.job_id).update(
            percent=int(fraction * 100), epochs_done=done, epochs_total=total, message=message[:255]
        )


def run_job(job_id: int, echo: Progress | None = None) -> ImportJob:
    """Run one import job to its end; bad input marks it failed with the message, never raises."""
    job = ImportJob.objects.get(pk=job_id)
    if job.is_finished:
        return job  # a redelivered message for a finished job
    ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.RUNNING, started_at=timezone.now(), error="")
    try:
        with storage.local_path(job.source_path, job.source_in_storage) as psg_path, \
                _optional_path(job.hypnogram_path, job.source_in_storage) as hypnogram_path:
            request = ImportRequest(
                path=psg_path, cohort=job.cohort_name, source_name=job.source_name,
                hypnogram=hypnogram_path, hypnogram_format=job.hypnogram_format or None,
                channel_map=job.channel_map, mains_hz=job.mains_hz or settings.DEFAULT_MAINS_HZ,
                trim_to_hypnogram=job.trim_to_hypnogram,
            )
            recording, created = import_psg(request, user=job.created_by, progress=JobProgress(job, echo))
        state, error = ImportJob.SUCCEEDED, ""
        message = "imported" if created else f"already imported as recording #{recording.pk}: nothing new created"
    except InputError as exc:
        recording, state, error, message = None, ImportJob.FAILED, str(exc), "failed"
    except Exception as exc:  # unexpected: keep the job honest, log the traceback for operators
        log.exception("import job %s failed", job.pk)
        recording, state, error, message = None, ImportJob.FAILED, f"internal error: {exc}", "failed"
    finally:
        if job.source_in_storage:
            for name in filter(None, (job.source_path, job.hypnogram_path)):
                default_storage.delete(name)
    done = {"percent": 100} if state == ImportJob.SUCCEEDED else {}  # a failure keeps the percent it reached
    ImportJob.objects.filter(pk=job.pk).update(
        state=state, error=error, message=message, recording=recording, finished_at=timezone.now(), **done
    )
    job.refresh_from_db()
    return job


def _optional_path(name: str, in_storage: bool):
    return storage.local_path(name, in_storage) if name else nullcontext(None)
