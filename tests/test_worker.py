"""Imports through the API run on a real Celery worker (filesystem broker, or Redis in CI)."""
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.roles import CURATOR
from datasets.models import ImportJob, Recording
from tests.conftest import stored_files

pytestmark = pytest.mark.worker


def wait_for(job_id: int, timeout: float = 120.0) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.state} after {timeout} s")


def upload(api, name: str, content: bytes, **fields):
    return api.post("/api/imports/", {"file": SimpleUploadedFile(name, content), "cohort": "Worker", **fields},
                    format="multipart")


def test_api_upload_is_imported_by_the_worker(celery_worker, make_user, night_edf, media_root):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = upload(api, "night.edf", night_edf.read_bytes(), mains_hz=50)
    assert response.status_code == 201, response.content
    job = wait_for(response.json()["id"])
    assert job.state == ImportJob.SUCCEEDED, job.error
    assert job.progress()["fraction"] == 1.0 and job.done == job.total == 120
    recording = Recording.objects.get()
    assert job.recording == recording and recording.cohort.name == "Worker" and recording.epoch_count == 120
    # the upload itself does not stay behind in storage
    assert not [name for name in stored_files(media_root) if name.startswith("uploads/")]
    detail = api.get(f"/api/imports/{job.pk}/").json()
    assert detail["state"] == "succeeded" and detail["recording"] == recording.pk
    assert detail["queue"] == "io" and detail["worker"]  # who took it, from where (tests/test_queues.py: the name)
    # the import's change record was written by the worker, for the curator who uploaded
    from core.models import ChangeRecord

    [record] = ChangeRecord.objects.filter(object_type="datasets.recording", object_id=str(recording.pk))
    assert (record.action, record.source, record.actor) == (ChangeRecord.IMPORT, ChangeRecord.WORKER, job.created_by)
    assert record.request_id and record.request_id != response["X-Request-ID"]

    # the same file again: nothing new
    again = wait_for(upload(api, "copy.edf", night_edf.read_bytes()).json()["id"])
    assert again.state == ImportJob.SUCCEEDED and again.recording == recording
    assert "already imported" in again.message
    assert Recording.objects.count() == 1


def test_bad_upload_fails_cleanly_on_the_worker(celery_worker, make_user, night_edf, media_root):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    truncated = night_edf.read_bytes()[:5000]
    job = wait_for(upload(api, "cut.edf", truncated).json()["id"])
    assert job.state == ImportJob.FAILED
    assert job.error.startswith("cut.edf: truncated data")
    assert Recording.objects.count() == 0
    assert stored_files(media_root) == []
