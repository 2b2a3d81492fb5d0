"""Faults against the real services (issue 19, section 3): the database connection lost in the middle of a label
save, an import and a release build, and a storage that is full while storing epoch images and a release.

The connection is lost for real: a second connection calls `pg_terminate_backend` on the PostgreSQL backend of
whichever connection (the test's, or the Celery worker thread's) is about to run a chosen statement, so the
fault lands at a known point of the save. The full storage is a real filesystem: a small tmpfs mounted over the
media folder's epochs/ or releases/. Every case ends in a 503 with Retry-After, a retried success or a clean
failure whose message is in words; the test counts the rows of every model and the stored files before and after.
"""
import hashlib
import subprocess
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import Label, Reservation
from annotation.services.campaigns import create_campaign
from config.middleware import DatabaseUnavailable
from core.models import ChangeRecord
from core.roles import CURATOR, RATER
from datasets.models import EpochImage, ImportJob, Recording
from datasets.services import imports
from releases.models import Release, ReleaseFile
from releases.services.build import build_release, create_release
from tests.conftest import stored_files
from tests.factories import make_recording
from tests.test_release_worker import wait_until
from tests.test_worker import upload, wait_for

ON_POSTGRESQL = connection.vendor == "postgresql"
needs_postgresql = pytest.mark.skipif(not ON_POSTGRESQL,
                                      reason="needs PostgreSQL (CI runs the suite on PostgreSQL too)")


def row_counts() -> dict[str, int]:
    """Rows of every model, by label."""
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def grown(before: dict[str, int]) -> dict[str, int]:
    """What row_counts() gained since `before` (models whose count changed)."""
    return {label: count - before[label] for label, count in row_counts().items() if count != before[label]}


def partial_files(root: Path) -> list[str]:
    """Stored files that are not whole: temporary names, or content-addressed names whose bytes do not match."""
    bad = [name for name in stored_files(root) if ".partial-" in name]
    for path in root.glob("epochs/*/*.png"):
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.stem:
            bad.append(str(path.relative_to(root)))
    return bad


class Terminator:
    """Terminates, from a second connection, the PostgreSQL backend of the Django connection (any thread) that is
    about to run its `nth` statement containing `match`; the statement then fails as on a lost server."""

    def __init__(self, match: str, nth: int = 1):
        self.match, self.nth, self.seen, self.fired = match, nth, 0, threading.Event()
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self.lock:
            hit = not self.fired.is_set() and self.match in sql
            if hit:
                self.seen += 1
                hit = self.seen == self.nth
                if hit:
                    self.fired.set()
        if hit:
            import psycopg

            db = context["connection"].settings_dict
            pid = context["connection"].connection.info.backend_pid
            with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                                 dbname=db["NAME"], autocommit=True) as killer:
                assert killer.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0]
        return execute(sql, params, many, context)


@contextmanager
def terminate_backend_at(match: str, nth: int = 1):
    """Install a Terminator on every connection open now or opened in the block (a worker thread's too)."""
    terminator = Terminator(match, nth)
    wrapped = []

    def install(sender, connection, **kwargs):
        if terminator not in connection.execute_wrappers:
            connection.execute_wrappers.append(terminator)
            wrapped.append(connection)

    connection_created.connect(install, weak=False)
    for open_connection in connections.all(initialized_only=True):
        install(None, open_connection)
    try:
        yield terminator
    finally:
        connection_created.disconnect(install)
        for wrapper in wrapped:
            if terminator in wrapper.execute_wrappers:
                wrapper.execute_wrappers.remove(terminator)


# --- the database connection lost --------------------------------------------------------------------------------

@needs_postgresql
@pytest.mark.fast_fault
@pytest.mark.django_db(transaction=True)
def test_a_label_save_whose_connection_is_lost_gets_503_saves_nothing_and_its_retry_saves_once(make_user):
    rater = make_user(RATER)
    campaign = create_campaign("faults", recordings=[make_recording("Faults", "f-1", ["W", "N1", "N2"])],
                               raters=[rater], overlap=1)
    api = APIClient()
    api.force_authenticate(rater)
    item = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/").json()["item"]
    url, body = f"/api/scoring/campaigns/{campaign.pk}/labels/", {"item": item, "stage": "N2",
                                                                 "client_id": str(uuid.uuid4())}
    before = row_counts()
    # lost after the label's INSERT, before its change record's: the label must not stay alone
    with terminate_backend_at('INSERT INTO "core_changerecord"') as terminator:
        response = api.post(url, body, format="json")
    assert terminator.fired.is_set()
    assert response.status_code == 503 and response["Retry-After"] == str(DatabaseUnavailable.RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": DatabaseUnavailable.MESSAGE}
    assert row_counts() == before  # no half-saved row
    assert not Reservation.objects.get(item_id=item, rater=rater).labelled  # the slot's claim rolled back too

    again = api.post(url, body, format="json")  # the client retries the same save: a new connection serves it
    assert again.status_code == 201, again.content
    assert grown(before) == {"annotation.Label": 1, "core.ChangeRecord": 1}
    assert Label.objects.get().stage == "N2" and Reservation.objects.get(item_id=item, rater=rater).labelled
    assert api.post(url, body, format="json").status_code == 200  # and a third time: the same label, no copy
    assert Label.objects.count() == 1


@needs_postgresql
@pytest.mark.fast_fault
@pytest.mark.django_db(transaction=True)
def test_a_page_whose_connection_is_lost_gets_a_plain_503(client, make_user):
    make_recording("Faults", "f-1", ["W"])
    client.force_login(make_user(CURATOR))
    with terminate_backend_at('FROM "datasets_cohort"') as terminator:
        response = client.get(reverse("datasets:cohort-list"))
    assert terminator.fired.is_set()
    assert response.status_code == 503 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == DatabaseUnavailable.MESSAGE and response["Retry-After"]
    assert client.get(reverse("datasets:cohort-list")).status_code == 200  # the next request reconnects


@needs_postgresql
@pytest.mark.fast_fault
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_is_checked_without_a_round_trip_and_one_the_server_ended_is_replaced(monkeypatch):
    """The health check of a kept connection (config.postgresql): an idle live one sends nothing (one whose socket
    cannot be polled gets Django's SELECT 1); one whose backend was terminated while it sat between requests gets
    Django's SELECT 1, is closed, and the next statement reconnects."""
    from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

    from config.postgresql.base import DatabaseWrapper, select

    round_trips = []
    checked = DjangoWrapper.is_usable
    monkeypatch.setattr(DjangoWrapper, "is_usable", lambda self: round_trips.append(1) or checked(self))
    kept = connections.create_connection("default")  # a connection of its own, as a web worker thread's
    try:
        kept.ensure_connection()
        assert isinstance(kept, DatabaseWrapper) and kept.health_check_enabled
        for _ in range(2):  # two requests on a live connection
            kept.health_check_done = False  # what Django resets between requests
            kept.close_if_health_check_failed()
            assert kept.connection is not None and round_trips == []
        def out_of_range(*args):
            raise ValueError("filedescriptor out of range in select()")

        with monkeypatch.context() as unpollable:  # a socket select cannot poll: Django's check, which passes
            unpollable.setattr(select, "select", out_of_range)
            kept.health_check_done = False
            kept.close_if_health_check_failed()
        assert kept.connection is not None and round_trips == [1]
        round_trips.clear()
        with connection.cursor() as killer:
            killer.execute("SELECT pg_terminate_backend(%s, 10000)", [kept.connection.info.backend_pid])
            assert killer.fetchone()[0]
        kept.health_check_done = False
        kept.close_if_health_check_failed()
        assert round_trips == [1] and kept.connection is None
        with kept.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        kept.close()


# Where the worker's connection is lost during an import: inside the save's transaction (the epoch images'
# INSERT), or between two statements (a progress update while rendering).
IMPORT_FAULTS = {"saving": ('INSERT INTO "datasets_epochimage"', 1), "rendering": ('UPDATE "datasets_importjob"', 4)}


@needs_postgresql
@pytest.mark.worker
@pytest.mark.parametrize("where", IMPORT_FAULTS)
def test_an_import_whose_connection_is_lost_is_retried_and_imports_once(where, celery_worker, make_user, night_edf,
                                                                          media_root):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    with terminate_backend_at(*IMPORT_FAULTS[where]) as terminator:
        job = wait_for(upload(api, "night.edf", night_edf.read_bytes()).json()["id"])
    assert terminator.fired.is_set()
    assert job.state == ImportJob.SUCCEEDED, job.error
    assert job.lease == 2  # claimed twice: the lost run, then its retry
    recording = Recording.objects.get()
    assert recording.epochs.count() == recording.epoch_count == 120
    assert EpochImage.objects.filter(epoch__recording=recording).count() == 120  # no copy of the lost run's rows
    assert ChangeRecord.objects.filter(action=ChangeRecord.IMPORT).count() == 1
    # exactly the files the rows name: the lost run stored the same content-addressed files, the upload is gone
    named = {recording.signal_file, recording.native_signal_file,
             *EpochImage.objects.values_list("storage_name", flat=True)}
    assert set(stored_files(media_root)) == named and not partial_files(media_root)


@needs_postgresql
@pytest.mark.worker
def test_an_import_that_keeps_losing_its_connection_fails_cleanly_and_can_be_retried(celery_worker, settings,
                                                                                     make_user, night_edf, media_root):
    settings.JOB_DATABASE_RETRIES = 0
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    before = row_counts()
    with terminate_backend_at(*IMPORT_FAULTS["saving"]) as terminator:
        job = wait_for(upload(api, "night.edf", night_edf.read_bytes()).json()["id"])
    assert terminator.fired.is_set()
    assert job.state == ImportJob.FAILED and job.message == "failed: the database connection was lost"
    assert job.error.startswith("The database connection was lost while importing (nothing was saved)")
    assert grown(before) == {"datasets.ImportJob": 1}  # nothing of the recording
    files = stored_files(media_root)
    assert f"uploads/{job.pk}/night.edf" in files and not partial_files(media_root)  # the upload kept for a retry
    page = api.get(f"/api/imports/{job.pk}/").json()
    assert page["state"] == "failed" and "database connection was lost" in page["error"]

    imports.retry(job)
    job = wait_for(job.pk)
    assert job.state == ImportJob.SUCCEEDED, job.error
    assert Recording.objects.get().epochs.count() == 120
    assert not [name for name in stored_files(media_root) if name.startswith("uploads/")]


def build_choices(cohort: str) -> dict:
    from bench.export import populate

    names = populate(recordings=2, epochs=60, cohort=cohort)
    return {k: v for k, v in names.items() if k != "epochs"}


def release_files(media_root: Path, release) -> list[str]:
    return [name for name in stored_files(media_root) if name.startswith(f"releases/{release.pk}/")]


@needs_postgresql
@pytest.mark.worker
@pytest.mark.parametrize("retries", [2, 0])
def test_a_release_build_whose_connection_is_lost_is_retried_or_fails_leaving_nothing(retries, celery_worker,
                                                                                      settings, media_root):
    settings.JOB_DATABASE_RETRIES = retries
    choices = build_choices("Lost")
    before = row_counts()
    # lost while recording the third stored file: two files are in storage with their rows, one without
    with terminate_backend_at('INSERT INTO "releases_releasefile"', 3) as terminator:
        release = create_release("lost", "1.0.0", **choices)
        wait_until(lambda: Release.objects.get(pk=release.pk).is_finished, 120, "the release build")
        built = Release.objects.get(pk=release.pk)
    assert terminator.fired.is_set()
    if retries:
        assert built.state == Release.SUCCEEDED, built.error
        assert built.lease == 2
        rows = set(built.files.values_list("storage_name", flat=True))
        assert rows and set(release_files(media_root, built)) == rows  # nothing of the lost run left
        assert all(name.startswith(f"releases/{release.pk}/2/") for name in rows)
    else:
        assert built.state == Release.FAILED and "database connection was lost" in built.error
        assert not ReleaseFile.objects.exists() and release_files(media_root, built) == []
        changed = grown(before)
        assert changed.pop("releases.Release") == 1 and set(changed) <= {"core.ChangeRecord"}
    assert not partial_files(media_root)


# --- a full storage ---------------------------------------------------------------------------------------------

@contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of `size` mounted on `folder` for the block (a real filesystem that fills up)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def assert_clean_job_page(client, url: str, error: str) -> None:
    page = client.get(url).content.decode()
    assert error in page
    for python in ("Errno", "OSError", "Traceback", "StorageFull("):
        assert python not in page


@pytest.mark.fast_fault
@pytest.mark.django_db
def test_a_full_storage_fails_the_import_cleanly_and_the_import_succeeds_once_there_is_room(
        night_edf, media_root, make_user, client):
    curator = make_user(CURATOR)
    job = imports.create_job(source_path=str(night_edf), source_name="night.edf", cohort="Full", user=curator)
    before = row_counts()
    with tmpfs(media_root / "epochs", "256k"):
        job = imports.run_job(job.pk)
        assert job.state == ImportJob.FAILED
        assert job.error.startswith("Storage is full: could not write epochs/") and "Free space" in job.error
        assert job.message == "failed: storage is full; the upload is kept, the import can be retried"
        assert row_counts() == before and not partial_files(media_root)  # no row, no half-written image
        client.force_login(curator)
        assert_clean_job_page(client, reverse("datasets:import", args=[job.pk]), job.error)
    imports.retry(job)  # room again (unmounted): the import is queued again and a worker runs it
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.SUCCEEDED, job.error
    assert Recording.objects.get().epochs.count() == 120 and not partial_files(media_root)


@pytest.mark.fast_fault
@pytest.mark.django_db
def test_a_full_storage_fails_the_release_build_cleanly(media_root, make_user, client):
    release = create_release("full", "1.0.0", queue=False, **build_choices("Full"))
    before = row_counts()
    with tmpfs(media_root / "releases", "64k"):
        release = build_release(release.pk)
        assert release.state == Release.FAILED
        assert release.error.startswith(f"Storage is full: could not write releases/{release.pk}/")
        assert release_files(media_root, release) == [] and not partial_files(media_root)
    assert not release.files.exists() and row_counts() == before  # never marked built, no file rows
    client.force_login(make_user(CURATOR))
    assert_clean_job_page(client, reverse("releases:release-detail", args=[release.pk]), release.error)


@pytest.mark.fast_fault
@pytest.mark.django_db
def test_an_upload_into_a_full_storage_gets_507_and_leaves_no_file(night_edf, media_root, make_user):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    before = row_counts()
    with tmpfs(media_root / "uploads", "64k"):
        response = upload(api, "night.edf", night_edf.read_bytes())
        assert stored_files(media_root) == []  # not even a part of the upload
    assert response.status_code == 507
    detail = response.json()["detail"]
    assert detail.startswith("Storage is full: could not write uploads/") and "night.edf" in detail
    job = ImportJob.objects.get()
    assert job.state == ImportJob.FAILED and job.error == f"the upload could not be stored: {detail}"
    assert grown(before) == {"datasets.ImportJob": 1}
