"""A real Celery worker killed with SIGKILL in the middle of a release build leaves the release incomplete
(RUNNING, no archive); once its lease lapses a restarted worker completes it, with the same bytes as a
rebuild of the same release.

The worker is a `celery worker` process on the test database and media folder (the configured broker:
filesystem, or Redis in CI). To kill it at a known point without racing the build, the doomed worker's
build holds still (sleeps until killed) at a chosen step: writing the second recording, or storing the
first archive after every folder file is in storage; the test waits for it to get there, then kills
the worker's whole process group.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from bench.export import populate
from config.celery import app, ensure_broker_folders
from core.services.sweeps import requeue_stale_jobs
from releases.models import Release
from releases.services.build import build_release, create_release
from tests.conftest import stored_files

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent

# A celery worker whose build holds at PAUSE_AT ("writing" or "storing"; empty: no hold).
WORKER = """
import os, sys, time
import django
django.setup()
from releases.services import build, export

def hold():
    open(os.environ["PAUSE_FLAG"], "w").close()
    time.sleep(3600)  # until killed

if os.environ["PAUSE_AT"] == "writing":
    write, calls = export.ReleaseContent.write_recording, []
    def write_recording(self, *args):
        calls.append(1)
        if len(calls) == 2:
            hold()
        return write(self, *args)
    export.ReleaseContent.write_recording = write_recording
elif os.environ["PAUSE_AT"] == "storing":
    store = build._store
    def _store(release, root, path, archive):
        if archive:
            hold()
        return store(release, root, path, archive)
    build._store = _store

from config.celery import app
# Redis: sweep for unacknowledged messages past the visibility timeout every second (default: every ~100 s)
app.conf.broker_transport_options = {**app.conf.broker_transport_options, "unacked_restore_interval": 1,
                                     "unacked_restore_throttle": 1}
app.worker_main(["worker", "-Q", "io", "-P", "solo", "-n", sys.argv[1] + "@%h", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-l", "info"])
"""


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"  # absolute: workers may run in other folders
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(condition, timeout: float, what: str, process=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def start_worker(transactional_db, tmp_path, media_root):
    """start(name, pause=""): a worker process in its own process group (killed at the end if still there)."""
    ensure_broker_folders()
    with app.connection_for_write() as conn:  # nothing left over from earlier runs
        conn.default_channel.queue_purge("io")
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
           "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_VISIBILITY_TIMEOUT": "8", "JOB_LEASE_SECONDS": "1",
           "PAUSE_FLAG": str(tmp_path / "paused")}
    processes = []

    def start(name: str, pause: str = "") -> subprocess.Popen:
        with open(tmp_path / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen([sys.executable, "-c", WORKER, name], cwd=ROOT,
                                              env={**env, "PAUSE_AT": pause}, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            stop_worker(process)


def stop_worker(process) -> None:
    """SIGTERM to a worker's process group; SIGKILL if it has not exited within 30 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def stored(release) -> dict[str, str]:
    """path -> sha256 of the release's file rows, after checking storage holds exactly those bytes."""
    rows = list(release.files.values_list("path", "storage_name", "sha256"))
    for _, name, digest in rows:
        with default_storage.open(name, "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest, name
    return {path: digest for path, _, digest in rows}


@pytest.mark.parametrize("pause", ["writing", "storing"])
def test_killed_build_stays_incomplete_and_a_restart_completes_it(start_worker, pause, tmp_path, media_root, settings):
    names = populate(recordings=4, epochs=120, cohort="Killed")
    release = create_release("killed", "1.0.0", **{k: v for k, v in names.items() if k != "epochs"})  # queued
    doomed = start_worker("doomed", pause)
    wait_until((tmp_path / "paused").exists, 180, f"the build to reach {pause}", doomed)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(10)

    release.refresh_from_db()
    assert release.state == Release.RUNNING and release.finished_at is None
    assert not release.files.filter(archive=True).exists()
    if pause == "writing":
        assert release.done == 1 and not release.files.exists()
    else:  # the folder's files are in storage, the archives are not
        assert release.done == release.total and release.files.filter(path="README.md").exists()
        assert stored_files(media_root)
    settings.JOB_LEASE_SECONDS = 900
    assert build_release(release.pk).state == Release.RUNNING  # within the lease nobody takes it over

    settings.JOB_LEASE_SECONDS = 1
    wait_until(lambda: Release.objects.filter(pk=release.pk, heartbeat_at__lt=timezone.now() - timedelta(seconds=1))
               .exists(), 30, "the lease to lapse")
    rescuer = start_worker("rescuer")
    if not django_settings.REDIS_URL:
        # The filesystem transport has no acknowledgements: the message left with the dead worker, and the
        # sweep queues the stale job again (Redis redelivers the unacknowledged message by itself).
        assert requeue_stale_jobs() == [("releases.Release", release.pk)]
    wait_until(lambda: Release.objects.get(pk=release.pk).is_finished, 180, "the restarted build", rescuer)
    release.refresh_from_db()
    assert release.state == Release.SUCCEEDED, release.error
    files = stored(release)
    assert {f"{release.folder}.tar.gz", f"{release.folder}.zip", "MANIFEST.sha256"} <= set(files)
    # nothing of the killed build is left in storage
    assert stored_files(media_root) == sorted(release.files.values_list("storage_name", flat=True))

    Release.objects.filter(pk=release.pk).update(state=Release.PENDING)  # the same release, built again here
    rebuilt = build_release(release.pk)
    assert rebuilt.state == Release.SUCCEEDED, rebuilt.error
    assert stored(rebuilt) == files
