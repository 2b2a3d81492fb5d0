"""Object storage: the whole path against a real S3 server on loopback (moto's standalone server).

STORAGE_URL points the default storage at a bucket; a `celery -A config worker` process started in another
working folder, with a MEDIA_ROOT that does not exist, imports an API upload, runs a baseline inference job
and builds a release from S3 alone, while the web side renders and serves images, signals and release files
from the same bucket. The test process's own media folder stays empty throughout.
"""
import hashlib
import os
import subprocess
import sys
import time

import boto3
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from config.storage_url import storage_from_url
from core.roles import CURATOR, RATER, RESEARCHER
from core.services.sweeps import sweep_storage
from datasets.models import EpochImage, ImportJob, Recording
from datasets.services import storage
from inference.models import InferenceJob, ModelVersion
from inference.services.jobs import start_job
from releases.models import Release
from releases.services.build import create_release
from tests.conftest import stored_files
from tests.factories import assign_rater
from tests.s3 import s3_server_on_loopback
from tests.test_release_worker import database_url, stop_worker, wait_until

BUCKET = "sleepreview-test"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on a free loopback port, with the test bucket; yields its endpoint URL."""
    with s3_server_on_loopback(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def s3_storage(s3_server, request):
    """The default storage on the bucket under a prefix of this test's own; yields the STORAGE_URL."""
    url = f"s3://{BUCKET}/{request.node.name[:40]}?endpoint={s3_server}&region=us-east-1"
    with override_settings(STORAGES={**settings.STORAGES, "default": storage_from_url(url)}):
        storage.load_array.cache_clear()
        yield url
    storage.load_array.cache_clear()


def bucket_keys(storage_url: str) -> list[str]:
    """The storage names of the objects under a STORAGE_URL's prefix, as the S3 server lists them."""
    options = storage_from_url(storage_url)["OPTIONS"]
    prefix = options["location"] + "/"
    listed = boto3.client("s3", endpoint_url=options["endpoint_url"]).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"][len(prefix):] for item in listed.get("Contents", [])]


def test_storage_url_names_bucket_prefix_endpoint_and_region():
    entry = storage_from_url("s3://studies/site-a/media?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert entry["BACKEND"] == "core.storage.S3Storage"
    assert entry["OPTIONS"] == {
        "bucket_name": "studies", "location": "site-a/media", "default_acl": None, "querystring_auth": True,
        "file_overwrite": True, "endpoint_url": "http://127.0.0.1:9000", "addressing_style": "path",
        "region_name": "eu-west-1"}
    for bad in ("file:///srv/media", "s3:///prefix", "s3://bucket?endpont=http://x"):
        with pytest.raises(ValueError):
            storage_from_url(bad)


def test_content_addressed_names_touch_and_sweep_on_s3(s3_storage, db, media_root, imported):
    from core.storage import S3Storage

    assert isinstance(default_storage._wrapped, S3Storage)
    name, sha, created = storage.save_content_addressed(b"orphan bytes", "scratch", "bin")
    assert created and name == f"scratch/{sha[:2]}/{sha}.bin"
    first_age = default_storage.get_modified_time(name)
    time.sleep(1.1)  # S3 keeps modification times in whole seconds
    assert storage.save_content_addressed(b"orphan bytes", "scratch", "bin") == (name, sha, False)
    assert default_storage.get_modified_time(name) > first_age  # touched: the sweep's grace starts again

    assert sweep_storage(grace_s=3600) == []
    assert sweep_storage(grace_s=0) == [name]
    kept = bucket_keys(s3_storage)
    assert name not in kept and imported.signal_file in kept
    assert all(default_storage.exists(image.storage_name) for image in EpochImage.objects.all())
    assert stored_files(media_root) == []


# A worker as on another machine: its own working folder, a media folder that does not exist, the shared
# database and broker, and STORAGE_URL.
WORKER_ARGS = ["-m", "celery", "-A", "config", "worker", "-P", "solo", "-n", "s3-worker@%h", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "-l", "info"]


@pytest.fixture
def remote_worker(s3_storage, transactional_db, tmp_path):
    """A `celery -A config worker` process with no shared folder, on the io and cpu queues; yields its MEDIA_ROOT."""
    from config.celery import app, ensure_broker_folders

    queues = [settings.CELERY_TASK_DEFAULT_QUEUE, "cpu"]
    ensure_broker_folders()
    with app.connection_for_write() as conn:  # nothing left over from earlier runs
        for queue in queues:
            conn.default_channel.queue_purge(queue)
    workdir, absent_media = tmp_path / "worker", tmp_path / "worker-media-absent"
    workdir.mkdir()
    env = {**os.environ, "DATABASE_URL": database_url(), "STORAGE_URL": s3_storage, "MEDIA_ROOT": str(absent_media),
           "SLEEPREVIEW_VAR": str(settings.VAR_DIR.resolve()), "DJANGO_SETTINGS_MODULE": "config.settings",
           "PYTHONPATH": str(settings.BASE_DIR)}
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, *WORKER_ARGS, "-Q", ",".join(queues)], cwd=workdir, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    process.log = log
    yield process, absent_media
    stop_worker(process)


def finished(model, pk, process, what: str):
    def done():
        return model.objects.get(pk=pk).is_finished

    try:
        wait_until(done, 300, what, process)
    except BaseException:
        print(process.log.read_text())
        raise
    return model.objects.get(pk=pk)


def test_whole_path_on_s3_with_a_worker_that_has_no_shared_folder(remote_worker, s3_storage, make_user, night_edf,
                                                                   media_root, client):
    worker, absent_media = remote_worker
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))

    # import: the API stores the upload in the bucket, the worker imports it from there
    response = api.post("/api/imports/", {"file": SimpleUploadedFile("night.edf", night_edf.read_bytes()),
                                          "cohort": "S3", "mains_hz": 50}, format="multipart")
    assert response.status_code == 201, response.content
    job = finished(ImportJob, response.json()["id"], worker, "the import")
    assert job.state == ImportJob.SUCCEEDED, job.error
    recording = Recording.objects.get()
    assert recording.epoch_count == 120
    keys = bucket_keys(s3_storage)
    assert recording.signal_file in keys and recording.native_signal_file in keys
    assert not [key for key in keys if key.startswith("uploads/")]  # the upload is not kept

    # render: the epoch page draws the viewer image into the bucket; the image view serves it with its ETag
    client.force_login(make_user(RESEARCHER))
    assert client.get(f"/recordings/{recording.pk}/epochs/5/").status_code == 200
    viewer = EpochImage.objects.filter(epoch__recording=recording, epoch__index=5).exclude(kind="model").first()
    assert viewer is not None and viewer.storage_name in bucket_keys(s3_storage)
    image = client.get(f"/images/{viewer.sha256}.png")
    assert image.status_code == 200 and image["ETag"] == f'"{viewer.sha256}"'
    assert hashlib.sha256(image.content).hexdigest() == viewer.sha256 and image.content.startswith(b"\x89PNG")
    assert client.get(f"/images/{viewer.sha256}.png", HTTP_IF_NONE_MATCH=f'"{viewer.sha256}"').status_code == 304

    # inference: the baseline reads the prepared signals from the bucket on the worker
    version = ModelVersion.objects.create(name="baseline-s3", backend="baseline", settings={})
    inference = finished(InferenceJob, start_job(version, recording=recording).pk, worker, "the inference job")
    assert inference.state == InferenceJob.SUCCEEDED, inference.error
    assert version.predictions.count() == recording.epoch_count
    assert version.predictions.exclude(status="skipped").filter(stage="").count() == 0

    # scoring page: a rater of a campaign on the recording reads images and signals, the permission check first
    rater = make_user(RATER)
    campaign = assign_rater(recording, rater)
    client.force_login(rater)
    assert client.get(f"/scoring/{campaign.pk}/score/").status_code == 200
    model_image = EpochImage.objects.filter(epoch__recording=recording, kind="model").first()
    assert client.get(f"/images/{model_image.sha256}.png").content.startswith(b"\x89PNG")
    signals = client.get(f"/recordings/{recording.pk}/epochs/5/signals.bin")
    assert signals.status_code == 200 and len(signals.content) > 0
    assert client.get(f"/recordings/{recording.pk}/epochs/5/signals.bin",
                      HTTP_IF_NONE_MATCH=signals["ETag"]).status_code == 304

    # release: built by the worker into the bucket, downloaded streamed with its SHA-256 as ETag
    release = create_release("s3-ex", "1.0.0", cohorts=["S3"], model_versions=["baseline-s3"], include_images=True)
    release = finished(Release, release.pk, worker, "the release build")
    assert release.state == Release.SUCCEEDED, release.error
    archive = release.files.get(path="s3-ex-1.0.0.zip")
    assert archive.storage_name in bucket_keys(s3_storage)
    client.force_login(make_user(RESEARCHER, "res-2"))
    download = client.get(f"/releases/{release.pk}/files/s3-ex-1.0.0.zip")
    body = b"".join(download.streaming_content)
    assert download.status_code == 200 and download["ETag"] == f'"{archive.sha256}"'
    assert hashlib.sha256(body).hexdigest() == archive.sha256 and int(download["Content-Length"]) == len(body)
    client.force_login(rater)
    assert client.get(f"/releases/{release.pk}/files/s3-ex-1.0.0.zip").status_code == 403

    # the next version's changelog reads the previous version's files back from the bucket
    recording.epochs.filter(index=3).update(stage="R" if recording.epochs.get(index=3).stage != "R" else "W")
    following = create_release("s3-ex", "1.0.1", cohorts=["S3"], model_versions=["baseline-s3"])
    following = finished(Release, following.pk, worker, "the second release build")
    assert following.state == Release.SUCCEEDED, following.error
    assert following.previous == release and following.changelog["changed_stage"] == 1
    assert sum(following.changelog.values()) == 1, following.changelog

    # nothing was written to a local media folder, on either side
    assert stored_files(media_root) == [] and not absent_media.exists()
