"""Faults of workers and raters, against the real services (issue 19, section 3).

A worker stopped (SIGSTOP) past its lease while another worker takes its job over, then resumed (SIGCONT),
writes nothing: no progress, no result row, no stored file of its successor's touched. Each job kind's
stale worker is held at a known point just before a result write (the worker script below wraps the
service function), frozen there, and only resumed once the rescuer has finished; the job's result then
equals a clean run's. Workers are `celery worker` processes on the configured broker (filesystem, or Redis)
and the test database (SQLite file, or PostgreSQL).

A rubric edit racing the very first rating: the rating is stored under the rubric version the rater was
shown, or refused with 409, never stored under another version.
"""
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery import app, ensure_broker_folders
from core.services.sweeps import requeue_stale_jobs, sweep_storage
from tests.conftest import stored_files
from tests.fake_vllm import fake  # noqa: F401  (fixture)
from tests.test_release_worker import database_url, stop_worker, wait_until

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 2

# A celery worker of the io and cpu queues; with HOLD_AT set, it holds still just before a result write of
# that job kind (flag file HOLD_FLAG written) until the file GO_FLAG exists: the test freezes it there.
WORKER = """
import os, sys, time
import django
django.setup()

def hold():
    open(os.environ["HOLD_FLAG"], "w").close()
    while not os.path.exists(os.environ["GO_FLAG"]):
        time.sleep(0.05)

def wrap(module, name, when):
    real, calls = getattr(module, name), []
    def wrapper(*args, **kwargs):
        calls.append(1)
        if when(len(calls), kwargs):
            hold()
        return real(*args, **kwargs)
    setattr(module, name, wrapper)

hold_at = os.environ.get("HOLD_AT", "")
if hold_at == "inference":  # the third batch of predictions (after the skipped epochs and a first batch)
    from inference.services import jobs
    wrap(jobs, "_write", lambda n, kwargs: n == 3)
elif hold_at == "release":  # storing the first archive, every folder file stored
    from releases.services import build
    wrap(build, "_store", lambda n, kwargs: kwargs["archive"])
elif hold_at == "import":  # saving the recording's rows, every file stored
    from datasets.services import ingest
    wrap(ingest, "_save", lambda n, kwargs: True)

from config.celery import app
app.worker_main(["worker", "-Q", "io,cpu", "-P", "solo", "-n", sys.argv[1] + "@%h", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-l", "info"])
"""


class Pair:
    """The stalled worker and its rescuer: processes in their own process groups, logs under tmp_path."""

    def __init__(self, tmp_path: Path, media_root: Path):
        self.tmp_path, self.processes = tmp_path, {}
        self.hold_flag, self.go_flag = tmp_path / "held", tmp_path / "go"
        self.env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
                    "DJANGO_SETTINGS_MODULE": "config.settings", "JOB_LEASE_SECONDS": str(LEASE_S),
                    "CELERY_VISIBILITY_TIMEOUT": "3600",  # no redelivery: the takeover is the lease's
                    "HOLD_FLAG": str(self.hold_flag), "GO_FLAG": str(self.go_flag)}

    def start(self, name: str, hold_at: str = "") -> subprocess.Popen:
        with open(self.tmp_path / f"{name}.log", "w") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-c", WORKER, name], cwd=ROOT, env={**self.env, "HOLD_AT": hold_at},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.processes[name]

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def freeze_when_held(self, name: str) -> None:
        wait_until(self.hold_flag.exists, 240, "the stalled worker to reach its write", self.processes[name])
        os.killpg(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.go_flag.touch()
        os.killpg(self.processes[name].pid, signal.SIGCONT)


@pytest.fixture
def pair(transactional_db, tmp_path, media_root, settings):
    settings.JOB_LEASE_SECONDS = LEASE_S
    ensure_broker_folders()
    with app.connection_for_write() as conn:  # nothing left over from earlier runs
        for queue in ("io", "cpu"):
            conn.default_channel.queue_purge(queue)
    workers = Pair(tmp_path, media_root)
    yield workers
    for process in workers.processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGCONT)
            stop_worker(process)


def take_over(pair: Pair, model, pk: int) -> None:
    """Wait for the frozen worker's lease to lapse, start the rescuer and queue the stale job again (the
    stale-job sweep's way: the frozen worker still holds the broker's message)."""
    wait_until(lambda: model.objects.filter(pk=pk, heartbeat_at__lt=timezone.now() - timedelta(seconds=LEASE_S))
               .exists(), 30, "the lease to lapse")
    rescuer = pair.start("rescuer")
    assert (model._meta.label, pk) in requeue_stale_jobs()
    wait_until(lambda: model.objects.get(pk=pk).lease == 2, 240, "the rescuer to take the job over", rescuer)


def refused(pair: Pair, what: str) -> None:
    """The resumed worker logged that its writes were refused."""
    wait_until(lambda: what in pair.log("stalled"), 60, f"the stalled worker to log {what!r}", pair.processes["stalled"])


# --- a stalled worker past its lease ---------------------------------------------------------------------


@pytest.mark.worker
def test_stalled_inference_worker_writes_nothing_after_a_takeover(pair, imported, fake):
    from inference.models import InferenceJob, ModelVersion, Prediction
    from inference.services import jobs

    settings = {"base_url": fake.base_url, "model": "SleepVLM-3B", "batch_size": 4, "concurrency": 4,
                "timeout_s": 120, "backoff_s": 0.05}
    version = ModelVersion.objects.create(name="vllm", backend="openai", settings=settings)
    job = jobs.start_job(version, recording=imported, chunk_size=120)  # one chunk: the stalled worker's
    pair.start("stalled", "inference")
    pair.freeze_when_held("stalled")
    before = set(Prediction.objects.filter(job=job).values_list("pk", "epoch_id"))
    assert 0 < len(before) < 120

    take_over(pair, InferenceJob, job.pk)
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).is_finished, 240, "the rescuer to finish")
    after_rescue = set(Prediction.objects.filter(model_version=version).values_list("pk", "epoch_id"))
    pair.resume("stalled")
    refused(pair, f"inference job {job.pk}: lease 1 lost")

    job.refresh_from_db()
    assert job.state == InferenceJob.SUCCEEDED and job.lease == 2 and job.worker.startswith("rescuer@"), job.error
    rows = Prediction.objects.filter(model_version=version)
    assert set(rows.values_list("pk", "epoch_id")) == after_rescue  # the stalled worker added nothing
    assert before <= after_rescue and len(after_rescue) == len({e for _, e in after_rescue}) == 120

    # the same as a clean run of the same model settings
    clean_version = ModelVersion.objects.create(name="vllm-clean", backend="openai", settings=settings)
    clean = jobs.start_job(clean_version, recording=imported, inline=True)
    fields = ("epoch_id", "status", "stage", "rule_ids", "rationale", "raw_output", "version_hash")
    assert sorted(rows.values_list(*fields)) == sorted(clean_version.predictions.values_list(*fields))
    assert (job.done, job.failed, job.skipped) == (clean.done, clean.failed, clean.skipped) == (120, 0, 2)


@pytest.mark.worker
def test_stalled_release_build_stores_and_records_nothing_after_a_takeover(pair, media_root):
    from bench.export import populate
    from releases.models import Release
    from releases.services.build import build_release, create_release
    from tests.test_release_worker import stored

    names = populate(recordings=3, epochs=60, cohort="Stalled")
    release = create_release("stalled", "1.0.0", **{k: v for k, v in names.items() if k != "epochs"})  # queued
    pair.start("stalled", "release")
    pair.freeze_when_held("stalled")
    assert Release.objects.get(pk=release.pk).files.filter(path="README.md").exists()  # the folder is stored

    take_over(pair, Release, release.pk)
    wait_until(lambda: Release.objects.get(pk=release.pk).is_finished, 240, "the rescuer to finish")
    release.refresh_from_db()
    rows = sorted(release.files.values_list("pk", "path", "storage_name", "sha256"))
    files = stored(release)
    pair.resume("stalled")
    refused(pair, f"release {release.pk}: taken over by another worker (lease 1 lost)")

    release.refresh_from_db()
    assert release.state == Release.SUCCEEDED and release.lease == 2, release.error
    assert sorted(release.files.values_list("pk", "path", "storage_name", "sha256")) == rows  # no row added
    assert stored(release) == files  # the rescuer's bytes, untouched
    assert {f"{release.folder}.tar.gz", f"{release.folder}.zip", "MANIFEST.sha256"} <= set(files)
    # nothing of the stalled build is left in storage (its folder files went with the takeover)
    assert stored_files(media_root) == sorted(release.files.values_list("storage_name", flat=True))

    Release.objects.filter(pk=release.pk).update(state=Release.PENDING)  # a clean build of the same release
    assert build_release(release.pk).state == Release.SUCCEEDED
    assert stored(release) == files


def recording_snapshot(recording) -> dict:
    """What an import produces, without row ids: the recording's fields, epochs and stored image names."""
    from datasets.models import EpochImage

    skip = {"id", "created_at", "updated_at", "name"}  # the name: the cohort's next number
    fields = {f.attname: getattr(recording, f.attname) for f in recording._meta.concrete_fields if f.attname not in skip}
    epochs = list(recording.epochs.order_by("index").values_list("index", "onset_s", "stage", "reference_rules"))
    images = sorted(EpochImage.objects.filter(epoch__recording=recording).values_list("epoch__index", "kind",
                                                                                          "storage_name"))
    return {"fields": fields, "epochs": epochs, "images": images}


@pytest.mark.worker
def test_stalled_import_writes_no_rows_after_a_takeover(pair, make_user, night_edf, media_root):
    from core.roles import CURATOR
    from datasets.models import ImportJob, Recording
    from datasets.services.ingest import ImportRequest, import_psg

    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.post("/api/imports/", {"file": SimpleUploadedFile("night.edf", night_edf.read_bytes()),
                                          "cohort": "Stalled", "mains_hz": 50}, format="multipart")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    pair.start("stalled", "import")
    pair.freeze_when_held("stalled")  # every file stored, no row yet; it holds the import's lock on the file

    take_over(pair, ImportJob, pk)  # the rescuer claims the job, then waits for the file's lock
    pair.resume("stalled")
    refused(pair, f"import job {pk}: taken over by another worker (lease 1 lost)")
    wait_until(lambda: ImportJob.objects.get(pk=pk).is_finished, 240, "the rescuer to finish")

    job = ImportJob.objects.get(pk=pk)
    assert job.state == ImportJob.SUCCEEDED and job.lease == 2 and job.worker.startswith("rescuer@"), job.error
    recording = Recording.objects.get()  # one recording, written by the rescuer
    assert job.recording == recording and job.message == "imported"
    assert not [name for name in stored_files(media_root) if name.startswith("uploads/")]
    assert recording.name == "STALLED-0001"  # the stalled worker took no subject number either
    snapshot = recording_snapshot(recording)

    recording.delete()  # a clean import of the same file gives the same rows and the same stored names
    clean, created = import_psg(ImportRequest(path=night_edf, cohort="Stalled", source_name="night.edf", mains_hz=50),
                                user=job.created_by)
    assert created and recording_snapshot(clean) == snapshot
    assert not sweep_storage(grace_s=0, dry_run=True)  # nothing stored that no row holds


# --- the same refusals, in one process (fast) -----------------------------------------------------------


def take_over_here(job) -> None:
    """Another worker's claim of `job` once its lease has lapsed (the instance passed keeps the old lease)."""
    type(job).objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    other = type(job).objects.get(pk=job.pk)
    assert other.claim(worker="rescuer@test")


@pytest.mark.fast_fault
def test_inference_writes_are_refused_once_taken_over(db, imported, monkeypatch):
    from inference.models import InferenceJob, ModelVersion, Prediction
    from inference.services import jobs

    version = ModelVersion.objects.create(name="baseline", backend="baseline", settings={})
    job = jobs.start_job(version, recording=imported, chunk_size=120)
    ids = list(imported.epochs.values_list("pk", flat=True))
    write = jobs._write

    def stall_then_write(job_row, predictions):  # the chunk's worker stalls before its write; another takes over
        take_over_here(job_row)
        return write(job_row, predictions)

    monkeypatch.setattr(jobs, "_write", stall_then_write)
    assert jobs.run_chunk(job.pk, ids) == InferenceJob.RUNNING
    assert not Prediction.objects.exists()
    job.refresh_from_db()
    assert (job.lease, job.done, job.chunks_done, job.worker) == (2, 0, 0, "rescuer@test")


@pytest.mark.fast_fault
def test_release_rows_and_files_are_refused_once_taken_over(db, monkeypatch, media_root):
    from bench.export import populate
    from releases.models import Release
    from releases.services import build

    names = populate(recordings=1, epochs=30, cohort="Fast")
    release = build.create_release("fast", "1.0.0", queue=False, **{k: v for k, v in names.items() if k != "epochs"})
    store = build._store

    def stall_at_archive(row, root, path, archive):
        if archive and row.lease == 1:
            take_over_here(row)
        return store(row, root, path, archive)

    monkeypatch.setattr(build, "_store", stall_at_archive)
    result = build.build_release(release.pk)
    assert (result.state, result.lease) == (Release.RUNNING, 2)
    # the stalled build's folder files stay recorded for the new holder to replace; no archive was stored
    assert not result.files.filter(archive=True).exists()
    assert stored_files(media_root) == sorted(result.files.values_list("storage_name", flat=True))


@pytest.mark.fast_fault
def test_import_rows_are_refused_once_taken_over(db, night_edf, monkeypatch, media_root):
    from datasets.models import ImportJob, Recording
    from datasets.services import imports, ingest

    job = imports.create_job(source_path=str(night_edf), source_name="night.edf", cohort="Fast")
    save = ingest._save

    def stall_then_save(*args, **kwargs):
        take_over_here(ImportJob.objects.get(pk=job.pk))
        return save(*args, **kwargs)

    monkeypatch.setattr(ingest, "_save", stall_then_save)
    result = imports.run_job(job.pk)
    assert (result.state, result.lease, result.recording) == (ImportJob.RUNNING, 2, None)
    assert not Recording.objects.exists()
    assert len(sweep_storage(grace_s=0, dry_run=True)) == len(stored_files(media_root)) > 0  # the sweep's to remove


# --- a rubric edit racing the first rating ---------------------------------------------------------------


def rubric_campaign(make_user):
    from ratings.services.campaigns import create_rating_campaign
    from tests.test_ratings import SECRET, world

    world(6)
    rater = make_user("rater", "rater0")
    campaign = create_rating_campaign("race", cohorts=["Rate"], model_versions=[SECRET], raters=[rater], overlap=1)
    return campaign, rater


def reworded(rubric) -> list[dict]:
    """The rubric's dimensions with one anchor reworded (same keys: scores given under either version fit both)."""
    dimensions = [dict(d, anchors=list(d["anchors"])) for d in rubric.dimensions]
    dimensions[0]["anchors"][0] = f"Reworded after version {rubric.version}."
    return dimensions


def versions_of_ratings(campaign) -> set[int]:
    from ratings.models import Rating

    return set(Rating.objects.filter(item__campaign=campaign).values_list("rubric__version", flat=True))


@pytest.mark.fast_fault
def test_a_rating_given_under_an_edited_rubric_is_refused_with_409(make_user, db):
    from core.roles import CURATOR
    from ratings.models import Rating

    campaign, rater = rubric_campaign(make_user)
    api, curator = APIClient(), APIClient()
    api.force_authenticate(rater)
    curator.force_authenticate(make_user(CURATOR, "curator"))
    base = f"/api/ratings/campaigns/{campaign.pk}"
    served = api.post(f"{base}/next/").json()
    assert served["rubric_version"] == 1  # the item carries the rubric version it is shown with
    edit = curator.put(f"{base}/rubric/", {"dimensions": reworded(campaign.rubric)}, format="json")
    assert edit.status_code == 200 and edit.json()["version"] == 2

    body = {"item": served["item"], "scores": dict.fromkeys(campaign.rubric.keys, 4), "rubric_version": 1}
    refused = api.post(f"{base}/ratings/", {**body, "client_id": str(uuid.uuid4())}, format="json")
    assert refused.status_code == 409, refused.content
    assert "version 2 is in force" in refused.json()["detail"]
    assert not Rating.objects.exists()  # nothing stored; the rubric is still editable
    assert curator.get(f"{base}/rubric/").json()["frozen"] is False

    unknown = api.post(f"{base}/ratings/", {**body, "rubric_version": 7, "client_id": str(uuid.uuid4())}, format="json")
    assert unknown.status_code == 400 and "rubric_version 7" in unknown.json()["detail"]
    again = api.post(f"{base}/next/").json()  # served again: under the version in force now
    assert again["item"] == served["item"] and again["rubric_version"] == 2
    saved = api.post(f"{base}/ratings/", {**body, "rubric_version": 2, "client_id": str(uuid.uuid4())}, format="json")
    assert saved.status_code == 201 and saved.json()["rubric_version"] == 2
    assert versions_of_ratings(campaign) == {2}
    assert curator.put(f"{base}/rubric/", {"dimensions": reworded(campaign.rubric)}, format="json").status_code == 409


def race(first, second):
    """Run `first` in a thread whose transaction stays open (at `hold`) while `second` runs in another thread;
    `first` commits once `second` has finished or waits on it. Returns (first's result, second's), each the
    value or the exception raised."""
    from django.db import transaction

    results, reached, go = {}, threading.Event(), threading.Event()

    def run(name, function):
        try:
            with transaction.atomic():
                results[name] = function()
                if name == "first":
                    reached.set()
                    go.wait(30)
        except Exception as exc:  # noqa: BLE001  (the outcome is what the test looks at)
            results[name] = exc
        finally:
            reached.set()
            connections.close_all()

    one = threading.Thread(target=run, args=("first", first))
    one.start()
    reached.wait(30)
    two = threading.Thread(target=run, args=("second", second))
    two.start()
    two.join(2)  # it finishes here only if nothing made it wait for `first`'s commit
    go.set()
    one.join(30)
    two.join(30)
    return results["first"], results["second"]


@pytest.mark.parametrize("first", ["edit", "rating"])
def test_a_rubric_edit_and_the_first_rating_never_interleave(make_user, transactional_db, first):
    """Two connections: whichever holds the campaign first wins; the other is refused (409 for the rating,
    the frozen rubric for the edit). The rating is never stored under a version it was not shown."""
    from core.exceptions import InputError
    from ratings.services.queue import RATING, AnswerConflict
    from ratings.services.rubric import edit_rubric

    campaign, rater = rubric_campaign(make_user)
    item, _ = RATING.next_item(campaign, rater)
    shown = campaign.rubric  # version 1, as served
    new_dimensions = reworded(shown)

    def edit():
        return edit_rubric(campaign, new_dimensions)

    def rating():
        return RATING.submit(campaign, rater, item, scores=dict.fromkeys(shown.keys, 4), client_id=uuid.uuid4(),
                             rubric_version=shown.version)

    order = (edit, rating) if first == "edit" else (rating, edit)
    one, two = race(*order)
    outcome = dict(zip([f.__name__ for f in order], (one, two)))
    current = campaign.rubric
    if first == "edit":
        assert isinstance(outcome["rating"], AnswerConflict), outcome
        assert current.version == 2 and versions_of_ratings(campaign) == set()
    else:
        assert isinstance(outcome["edit"], InputError) and "frozen" in str(outcome["edit"]), outcome
        assert current.version == 1 and versions_of_ratings(campaign) == {1}
