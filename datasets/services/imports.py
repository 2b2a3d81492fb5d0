"""Import jobs on the core job engine: one row per requested import, run by a worker or the CLI.

Order of an upload: the job row first, then its files under uploads/<job id>/, then the queue
message after commit. A broker that is down leaves the job PENDING for the stale-job sweep. An
input error fails the job and deletes the upload (it cannot succeed); any other error fails it and
keeps the upload, so the job can be retried.
"""
from __future__ import annotations

import logging
import re
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from core.models import ChangeRecord, database_lost
from core.services import audit
from core.services.queue import send
from core.storage import StorageFull
from datasets.exceptions import InputError
from datasets.models import ImportJob, Recording
from datasets.services import storage
from datasets.services.ingest import ImportRequest, Progress, import_psg
from datasets.services.pseudonyms import check_subject_id

log = logging.getLogger(__name__)
RUN_TASK = "datasets.run_import"


class JobCancelled(Exception):
    """The job was cancelled while it ran: the import stops and writes nothing."""


def check_lengths(**values: str) -> None:
    """Refuse names longer than their columns, naming the field (PostgreSQL would fail with DataError)."""
    for name, value in values.items():
        limit = ImportJob._meta.get_field(name).max_length
        if value and len(value) > limit:
            raise InputError(f"{name.replace('_', ' ')} is {len(value)} characters long; at most {limit} are allowed")


def check_mains(mains_hz: float | None) -> None:
    low, high = settings.MAINS_HZ_RANGE
    if mains_hz is not None and not low <= mains_hz <= high:
        raise InputError(f"mains frequency {mains_hz:g} Hz is outside {low:g}–{high:g} Hz (50 Hz in Europe, 60 Hz in North America)")


def create_job(*, source_path: str, source_name: str, cohort: str, in_storage: bool = False,
               hypnogram_path: str = "", hypnogram_name: str = "", hypnogram_format: str = "",
               channel_map: dict | None = None, mains_hz: float | None = None,
               trim_to_hypnogram: bool = False, massex_path: str = "", massex_name: str = "",
               massex_contiguous: bool = False, subject_id: str = "", user=None) -> ImportJob:
    check_lengths(cohort_name=cohort, source_name=source_name, source_path=source_path,
                  hypnogram_name=hypnogram_name, hypnogram_path=hypnogram_path,
                  massex_name=massex_name, massex_path=massex_path)
    check_mains(mains_hz)
    if subject_id:
        check_subject_id(subject_id)
        if Recording.objects.filter(cohort__name=cohort, name=subject_id).exists():
            raise InputError(f"subject id {subject_id!r} is already used in cohort {cohort!r}; give another one, "
                             "or none to number the recording")
    return ImportJob.objects.create(
        source_path=source_path, source_name=source_name, source_in_storage=in_storage, cohort_name=cohort,
        hypnogram_path=hypnogram_path, hypnogram_name=hypnogram_name, hypnogram_format=hypnogram_format,
        channel_map=channel_map, mains_hz=mains_hz, trim_to_hypnogram=trim_to_hypnogram,
        massex_path=massex_path, massex_name=massex_name, massex_contiguous=massex_contiguous, subject_id=subject_id,
        created_by=user,
    )


def submit_upload(*, upload, cohort: str, hypnogram=None, hypnogram_format: str = "",
                  channel_map: dict | None = None, mains_hz: float | None = None,
                  trim_to_hypnogram: bool = False, massex=None, massex_contiguous: bool = False,
                  subject_id: str = "", user=None) -> ImportJob:
    """Create the job, store its uploaded files under uploads/<job id>/, queue it after commit."""
    job = create_job(source_path="", source_name=upload.name, in_storage=True, cohort=cohort,
                     hypnogram_name=hypnogram.name if hypnogram else "", hypnogram_format=hypnogram_format,
                     channel_map=channel_map, mains_hz=mains_hz, trim_to_hypnogram=trim_to_hypnogram,
                     massex_name=massex.name if massex else "", massex_contiguous=massex_contiguous,
                     subject_id=subject_id, user=user)
    folder, stored = f"uploads/{job.pk}", []

    def store(file) -> str:
        stored.append(default_storage.save(f"{folder}/{_safe_name(file.name)}", file))
        return stored[-1]

    try:
        source_path = store(upload)
        hypnogram_path = store(hypnogram) if hypnogram else ""
        massex_path = store(massex) if massex else ""
    except Exception as exc:  # e.g. core.storage.StorageFull: the request answers 507 (config.middleware)
        for name in stored:  # the job's own upload folder, shared with nothing
            default_storage.delete(name)
        job.fail(f"the upload could not be stored: {exc}")
        raise
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(source_path=source_path, hypnogram_path=hypnogram_path,
                                                  massex_path=massex_path, message="queued")
        send(RUN_TASK, (job.pk,))
    job.refresh_from_db()
    return job


def _safe_name(name: str) -> str:
    """The file's base name, short enough for the path column."""
    base = Path(name).name or "upload"
    return base if len(base) <= 200 else base[-200:]


def retry_refusal(job: ImportJob) -> str:
    """Why `job` cannot be queued again, in words; '' when it can (a failed import whose upload was kept)."""
    if job.state != ImportJob.FAILED:
        return f"import #{job.pk} is {job.state}: only a failed import can be retried"
    if job.source_in_storage and not (job.source_path and default_storage.exists(job.source_path)):
        return (f"import #{job.pk}: the uploaded file {job.source_name} was removed when it failed on its content; "
                "upload it again (corrected) to import it")
    return ""


def retry(job: ImportJob, *, user=None) -> ImportJob:
    """Queue a failed import again, the same job on the same upload (kept when the failure was not the file's)."""
    refusal = retry_refusal(job)
    if refusal:
        raise InputError(refusal)
    with transaction.atomic():
        before = audit.snapshot(job)
        if not job.reopen(message="queued again", dismissed_at=None):
            raise InputError(f"import #{job.pk} changed state meanwhile; reload its page")
        job.refresh_from_db()
        audit.record(ChangeRecord.UPDATE, job, actor=user, before=before, after=audit.snapshot(job))
        send(RUN_TASK, (job.pk,))
    return job


def dismiss(job: ImportJob, *, user=None) -> ImportJob:
    """Leave a failed or cancelled import out of the job lists; its row and change records stay."""
    if job.state not in (ImportJob.FAILED, ImportJob.CANCELLED):
        raise InputError(f"import #{job.pk} is {job.state}: only a failed or cancelled import can be dismissed")
    with transaction.atomic():
        before = audit.snapshot(job)
        dismissed = ImportJob.objects.filter(pk=job.pk, dismissed_at__isnull=True).update(dismissed_at=timezone.now())
        job.refresh_from_db()
        if dismissed:
            audit.record(ChangeRecord.UPDATE, job, actor=user, before=before, after=audit.snapshot(job))
    return job


class JobProgress:
    """Write progress to the job row at most every half second within a phase, and at every new phase
    (so a cancel is seen before the import saves anything) and at the end."""

    def __init__(self, job: ImportJob, echo: Progress | None = None):
        self.job, self.echo, self.last, self.phase = job, echo, 0.0, None

    def __call__(self, fraction: float, done: int, total: int, message: str) -> None:
        if self.echo:
            self.echo(fraction, done, total, message)
        now = time.monotonic()
        if now - self.last < 0.5 and fraction < 1.0 and message == self.phase:
            return
        self.last, self.phase = now, message
        if not self.job.report_progress(fraction=fraction, done=done, total=total, message=message):
            raise JobCancelled(f"import #{self.job.pk} is no longer running")

    def guard(self) -> None:
        """Inside the transaction of the import's rows: refuse them unless the job still runs under this lease."""
        if not self.job.still_held():
            raise JobCancelled(f"import #{self.job.pk} is no longer running under this worker's lease")


def run_job(job_id: int, echo: Progress | None = None, *, queue: str = "", worker: str = "") -> ImportJob:
    """Run one import job to its end; bad input marks it failed with the message, never raises.

    Claiming is a compare-and-set: a redelivered message for a job another worker holds, or for a
    finished job, does nothing. `queue` and `worker` name where it runs (the job page shows them).
    """
    job = ImportJob.objects.get(pk=job_id)
    if not job.claim(queue=queue, worker=worker):
        return job
    keep_upload = False
    finish = None  # the job's final transition, made only after its files are gone (pollers see a clean end)
    given_names = {}  # local path of each file -> the name the curator gave it, which messages name
    try:
        if job.source_in_storage and not job.source_path:
            raise InputError("the upload never reached storage; upload the file again")
        with storage.local_path(job.source_path, job.source_in_storage) as psg_path, \
                _optional_path(job.hypnogram_path, job.source_in_storage) as hypnogram_path, \
                _optional_path(job.massex_path, job.source_in_storage) as massex_path:
            given_names.update({psg_path: job.source_name, hypnogram_path: job.hypnogram_name,
                                massex_path: job.massex_name})
            request = ImportRequest(
                path=psg_path, cohort=job.cohort_name, source_name=job.source_name,
                hypnogram=hypnogram_path, hypnogram_format=job.hypnogram_format or None,
                channel_map=job.channel_map, mains_hz=job.mains_hz or settings.DEFAULT_MAINS_HZ,
                trim_to_hypnogram=job.trim_to_hypnogram, massex=massex_path, massex_contiguous=job.massex_contiguous,
                subject_id=job.subject_id,
            )
            progress = JobProgress(job, echo)
            recording, created = import_psg(request, user=job.created_by, progress=progress, guard=progress.guard)
    except InputError as exc:
        finish = partial(job.fail, in_given_names(str(exc), given_names))
    except JobCancelled:
        pass
    except StorageFull as exc:  # not the file's fault: keep the upload for a retry once there is room
        keep_upload = True
        finish = partial(job.fail, str(exc),
                         message="failed: storage is full; the upload is kept, the import can be retried")
    except Exception as exc:
        if database_lost(exc):  # its save rolled back; the files it stored are the sweep's
            log.warning("import job %s lost its database connection: %s", job.pk, exc)
            keep_upload = True
            finish = partial(job.retry_after_database_loss,
                             "The database connection was lost while importing (nothing was saved); "
                             "the upload is kept, retry the import.")
        else:  # unexpected: keep the job honest and the upload for a retry; log for operators
            log.exception("import job %s failed", job.pk)
            keep_upload = True
            detail = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else ""  # e.g. "No space left on device"
            finish = partial(job.fail, f"The import stopped on an unexpected problem{detail}, logged for the "
                                       "operators; nothing was saved, the upload is kept and the import can be retried.",
                             message="failed; the upload is kept, the import can be retried")
    else:
        message = "imported" if created else f"already imported as recording #{recording.pk}: nothing new created"
        if created and recording.identity_findings:
            message += (f"; {len(recording.identity_findings)} names or dates found in annotation and hypnogram "
                        "texts, kept out (listed on the recording)")
        finish = partial(job.succeed, message, recording=recording)
    with transaction.atomic():  # the row locked while held: no takeover between the check and the deletes
        if not job.still_held() and job.lease_lost():
            # another worker took the import over: the upload is its to read and delete
            log.warning("import job %s: taken over by another worker (lease %s lost), this run stops and writes "
                        "nothing", job.pk, job.held_lease)
            return ImportJob.objects.get(pk=job.pk)
        if job.source_in_storage and not keep_upload:
            for name in filter(None, (job.source_path, job.hypnogram_path, job.massex_path)):
                default_storage.delete(name)
        if finish:
            finish()
    job.refresh_from_db()
    return job


def in_given_names(message: str, given_names: dict) -> str:
    """`message` naming each file as the curator gave it, not by its path on this machine (a storage folder or a
    temporary copy: the stored name may differ from the uploaded one)."""
    for path, given in given_names.items():
        if path is not None and given:
            message = message.replace(str(path), given)
            if path.name != given:
                message = re.sub(rf"(?<![\w.-]){re.escape(path.name)}(?![\w.-])", given, message)
    return message


def _optional_path(name: str, in_storage: bool):
    return storage.local_path(name, in_storage) if name else nullcontext(None)
