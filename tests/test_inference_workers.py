"""Real Celery worker processes share one inference job; a killed worker loses and duplicates nothing.

The broker is the configured one: Kombu's filesystem transport with the embedded defaults, Redis in CI.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from config.celery import app, ensure_broker_folders
from inference.models import InferenceJob, ModelVersion, Prediction
from inference.services import jobs
from tests.fake_vllm import fake  # noqa: F401  (fixture)
from tests.test_release_worker import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Start and stop `celery worker` processes against the test database and media folder."""

    def __init__(self, tmp_path: Path, media_root: Path):
        self.tmp_path, self.processes = tmp_path, {}
        self.env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
                    "CELERY_VISIBILITY_TIMEOUT": "8", "DJANGO_SETTINGS_MODULE": "config.settings"}

    def start(self, name: str, queues: str = "cpu") -> None:
        """A worker process named `name@<host>` taking `queues` (the OpenAI-compatible backend's by default)."""
        log = open(self.tmp_path / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-P", "solo", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
def workers(tmp_path, media_root):
    ensure_broker_folders()
    with app.connection_for_write() as conn:  # nothing left over from earlier runs
        conn.default_channel.queue_purge("cpu")  # the OpenAI-compatible backend's queue
    pool = Workers(tmp_path, media_root)
    yield pool
    pool.stop_all()


@pytest.fixture
def version(fake):
    return ModelVersion.objects.create(name="vllm", backend="openai", settings={
        "base_url": fake.base_url, "model": "SleepVLM-3B", "batch_size": 4, "concurrency": 4, "timeout_s": 10,
        "backoff_s": 0.05})


def test_two_worker_processes_predict_every_epoch_exactly_once(workers, imported, version, fake):
    fake.delay_s = 0.01
    job = jobs.start_job(version, recording=imported, chunk_size=8)
    assert job.chunks_total == 15
    workers.start("alpha")
    workers.start("beta")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).is_finished, 180, "the job to finish")
    job.refresh_from_db()
    assert job.state == InferenceJob.SUCCEEDED, job.error
    epoch_ids = list(Prediction.objects.filter(model_version=version).values_list("epoch_id", flat=True))
    assert len(epoch_ids) == len(set(epoch_ids)) == 120
    assert set(epoch_ids) == set(imported.epochs.values_list("id", flat=True))
    for name in ("alpha", "beta"):  # both processes took a share of the chunks
        assert workers.log(name).count("inference.run_chunk") >= 2, workers.log(name)


def test_killed_worker_loses_and_duplicates_nothing(workers, imported, version, fake):
    fake.delay_s = 0.3  # slow model: the worker is killed in the middle of its first chunk
    job = jobs.start_job(version, recording=imported, chunk_size=60)
    workers.start("doomed")
    wait_until(lambda: Prediction.objects.filter(job=job).count() >= 9, 60, "the first batches")
    workers.kill("doomed")
    partial = Prediction.objects.filter(job=job).count()
    assert 0 < partial < 120
    fake.delay_s = 0.0
    if not django_settings.REDIS_URL:
        # The filesystem transport has no acknowledgements: its messages left with the dead worker.
        # Resuming queues the epochs still missing (Redis redelivers the unacknowledged chunk by itself).
        jobs.enqueue_missing(job)
    workers.start("rescuer")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).is_finished, 180, "the job to finish after the crash")
    job.refresh_from_db()
    assert job.state == InferenceJob.SUCCEEDED, job.error
    epoch_ids = list(Prediction.objects.filter(model_version=version).values_list("epoch_id", flat=True))
    assert len(epoch_ids) == len(set(epoch_ids)) == 120
