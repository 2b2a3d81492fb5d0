"""Queues per machine role: each kind of task lands on its queue (io, cpu, gpu), and a worker of the gpu
queue takes model work only. The broker is the configured one (filesystem, or Redis in CI)."""
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from config.celery import app, ensure_broker_folders
from core.roles import ADMIN, CURATOR
from core.services import sweeps
from core.services.queue import send
from datasets.models import ImportJob
from datasets.services import imports
from inference.models import InferenceJob, ModelVersion
from inference.services import jobs
from releases.models import Release
from tests.factories import make_recording
from tests.test_inference_workers import workers  # noqa: F401  (fixture)
from tests.test_release_worker import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUEUES = ("io", "cpu", "gpu")


@pytest.fixture
def broker():
    """The configured broker with the three queues emptied before and after the test."""
    ensure_broker_folders()
    app.conf.task_always_eager = False

    def purge():
        with app.connection_for_write() as conn:
            for queue in QUEUES:
                conn.default_channel.queue_purge(queue)

    purge()
    yield
    purge()


def queued() -> dict[str, list[str]]:
    """Queue → names of the tasks waiting in it (the messages are taken off the broker)."""
    found = {queue: [] for queue in QUEUES}
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                found[queue].append(message.headers["task"])
    return {queue: sorted(names) for queue, names in found.items()}


def waiting_in(queue: str) -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def test_each_kind_of_task_lands_on_its_queue(broker):
    recording = make_recording("Routing", "night", ["W", "N1", "N2", "N2", "W"])
    for backend, settings in [("baseline", {}), ("transformers", {"checkpoint_dir": "/srv/checkpoints/sleepvlm"}),
                              ("openai", {"base_url": "http://127.0.0.1:9/v1", "model": "SleepVLM-3B"})]:
        jobs.start_job(ModelVersion.objects.create(name=backend, backend=backend, settings=settings), recording=recording)
    imports.submit_upload(upload=SimpleUploadedFile("night.edf", b"0" * 256), cohort="Routing")
    Release.objects.create(name="routing", version="1.0.0")  # a build whose message never reached the broker
    sweeps.requeue_stale_jobs(pending_after_s=0)  # queues again every pending job: import, release, inference
    app.send_task("core.sweep")  # as beat sends it

    assert queued() == {
        "io": ["core.sweep", "datasets.run_import", "datasets.run_import", "inference.resume_job",
               "inference.resume_job", "inference.resume_job", "releases.build_release"],
        "cpu": ["inference.run_chunk", "inference.run_chunk"],  # the baseline and the OpenAI-compatible server
        "gpu": ["inference.run_chunk"],  # transformers
    }


def test_statistics_tasks_are_routed_to_the_cpu_queue():
    for name in ("annotation.statistics", "ratings.statistics"):
        assert app.amqp.router.route({}, name)["queue"].name == "cpu"
    assert app.amqp.router.route({}, "any.unrouted_task")["queue"].name == "io"


def test_gpu_worker_takes_model_work_and_never_an_import(broker, workers, night_edf):
    upload = imports.submit_upload(upload=SimpleUploadedFile("night.edf", night_edf.read_bytes()), cohort="GPU")
    version = ModelVersion.objects.create(name="local", backend="transformers",
                                          settings={"checkpoint_dir": "/nowhere/sleepvlm"})
    model_job = InferenceJob.objects.create(model_version=version)
    send("inference.run_chunk", (model_job.pk, []), queue=version.queue)  # queued after the import

    workers.start("gpu1", queues="gpu")  # `celery worker -Q gpu`, as on a GPU machine
    wait_until(lambda: InferenceJob.objects.get(pk=model_job.pk).is_finished, 120, "the model job to run")
    workers.stop_all()

    model_job.refresh_from_db()
    assert model_job.state == InferenceJob.FAILED and "checkpoint_dir" in model_job.error  # it ran, and refused the path
    assert (model_job.queue, model_job.worker) == ("gpu", f"gpu1@{socket.gethostname()}")
    upload.refresh_from_db()
    assert (upload.state, upload.worker) == (ImportJob.PENDING, "")
    assert waiting_in("io") == 1  # the import's message is still there for an io worker


def test_healthz_names_the_workers_of_each_queue(client, make_user, celery_worker):
    client.force_login(make_user(ADMIN))
    data = client.get("/healthz").json()
    assert data["status"] == "ok"
    assert data["workers"] == {"ok": True, "queues": {"io": [celery_worker.hostname], "cpu": [celery_worker.hostname],
                                                      "gpu": []}}


def test_job_page_shows_the_queue_and_worker_holding_it(role_client):
    job = ImportJob.objects.create(cohort_name="Page", source_name="night.edf", state=ImportJob.RUNNING, queue="io",
                                   worker="io@web1")
    page = role_client(CURATOR).get(f"/imports/{job.pk}/").content.decode()
    assert '<code data-job-field="queue" data-format="dash">io</code>' in page
    assert '<code data-job-field="worker" data-format="dash">io@web1</code>' in page
