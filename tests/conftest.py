"""Shared fixtures: isolated media storage, role users, synthetic PSG files, a real Celery worker."""
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.roles import ROLES
from datasets.services import storage
from datasets.services.synthetic import write_synthetic_edf

# Playwright's sync API runs an event loop in the test thread; Django's ORM is still used synchronously.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

TEST_OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users: a fast hasher instead of PBKDF2's deliberate cost (never in production)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Throttle counts and the health check's cached answer never leak from one test into another."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path_factory):
    """Every test writes media into its own empty folder."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    storage.load_array.cache_clear()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture(scope="session")
def night_edf(tmp_path_factory) -> Path:
    """A one-hour synthetic night (EDF+, MASS names, Sleep-EDF stage annotations)."""
    path = tmp_path_factory.mktemp("psg") / "night-1h.edf"
    write_synthetic_edf(path, hours=1.0, seed=7)
    return path


@pytest.fixture
def make_user(db):
    """make(role, username=None): a user in the role's group, password "pw-for-tests-123"."""
    from core.testing import make_role_user

    return make_role_user


@pytest.fixture
def role_client(make_user, client):
    """A Django test client logged in with a given role."""

    def login(role: str):
        client.force_login(make_user(role))
        return client

    return login


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@contextmanager
def broker_at(url: str, **conf):
    """Point the Celery app at another broker (and conf values) for a block; its connection and
    producer pools are dropped on the way in and out, so nothing keeps a connection to the other one."""
    from django.conf import settings
    from kombu import pools

    from config.celery import app

    saved = {"broker_url": app.conf.broker_url, **{k: app.conf[k] for k in conf}}
    saved_setting = settings.CELERY_BROKER_URL

    def drop_pools():
        pools.reset()  # kombu's pools per broker, closed and forgotten (a closed one would be handed out again)
        app._pool = None
        app.amqp._producer_pool = None
        app.control.mailbox.__dict__.pop("producer_pool", None)  # the control mailbox (inspect) caches it

    drop_pools()
    app.conf.update(broker_url=url, **conf)
    settings.CELERY_BROKER_URL = url
    try:
        yield app
    finally:
        drop_pools()
        app.conf.update(saved)
        settings.CELERY_BROKER_URL = saved_setting


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real Celery worker (solo pool, in a thread) of the io and cpu queues on the configured broker:
    filesystem or Redis."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app, ensure_broker_folders

    ensure_broker_folders()
    app.conf.task_always_eager = False
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["io", "cpu"],
                      shutdown_timeout=30) as worker:
        yield worker


__all__ = ["ROLES", "stored_files"]


@pytest.fixture
def imported(db, night_edf):
    """The one-hour synthetic night, imported."""
    from datasets.services.ingest import ImportRequest, import_psg

    recording, _ = import_psg(ImportRequest(path=night_edf, cohort="Synthetic"))
    return recording


@pytest.fixture
def access_world(db):
    """One object of every kind (core.testing.build_world), for the generated role × endpoint tests."""
    from core.testing import build_world

    return build_world()
