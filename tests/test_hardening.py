"""Review holes closed: /healthz, production settings, sign-in throttles, upload limits and modes, the demo."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.urls import reverse
from kombu import Connection
from rest_framework.test import APIClient

from core.roles import ADMIN, CURATOR, RATER
from datasets.services import imports
from demo.management.commands.demo import DEMO_ACCOUNTS
from tests.conftest import broker_at

ROOT = Path(__file__).resolve().parent.parent
# Variables that would steer a child process away from the environment a test sets up.
STEERING = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG",
            "CACHE_URL", "MEDIA_ROOT", "STATIC_ROOT", "STORAGE_BACKEND", "STORAGE_URL", "SLEEPREVIEW_VAR",
            "CELERY_BROKER_URL", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "LOGIN_THROTTLE_RATE",
            "MAX_UPLOAD_BYTES", "DJANGO_ALLOW_ASYNC_UNSAFE"}
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings_production",
    "SECRET_KEY": "x7Kq9-Lm2Vb8Zr4Tw6Yh1Nc3Pd5Fg0Js-Qa8Ue2Io4Rk6Wl9Xm1Cv3Bn5Hy7Tz",
    "ALLOWED_HOSTS": "sleepreview.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing-listens-here",  # never connected to
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


@pytest.fixture(autouse=True)
def empty_cache():
    """Health reports and throttle counters must not leak between tests."""
    cache.clear()
    yield
    cache.clear()


def child_env(tmp_path, **values) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STEERING}
    return {**env, "SLEEPREVIEW_VAR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1", **values}


def run_python(args, env, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# --- /healthz ---------------------------------------------------------------------------------------

@pytest.fixture
def broken_broker():
    with broker_at("redis://user:secret-pw@127.0.0.1:1/0"):
        yield


@pytest.mark.django_db
def test_healthz_public_answer_is_the_status_only(client, make_user):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    client.force_login(make_user(RATER))  # signed in but not staff: still the status only
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_degraded_public_answer_has_no_details(client, broken_broker):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}


@pytest.mark.django_db
def test_healthz_staff_see_components_and_a_safe_failure(client, make_user, broken_broker):
    client.force_login(make_user(ADMIN))
    data = client.get("/healthz").json()
    assert data["status"] == "degraded"
    assert data["database"]["ok"] is True and data["database"]["backend"] in ("sqlite", "postgresql")
    assert data["storage"] == {"ok": True, "backend": "FileSystemStorage"}
    broker = data["broker"]
    assert set(broker) == {"ok", "error", "message"} and broker["ok"] is False
    assert re.fullmatch(r"\w+", broker["error"])  # the class name only
    assert len(broker["message"]) <= 200 and "\n" not in broker["message"]
    assert "secret-pw" not in json.dumps(data) and "Traceback" not in json.dumps(data)


@pytest.mark.django_db
def test_healthz_never_writes_to_storage(client, media_root, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the health check wrote to storage")

    monkeypatch.setattr(FileSystemStorage, "_save", refuse)
    monkeypatch.setattr(FileSystemStorage, "delete", refuse)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert list(media_root.iterdir()) == []


@pytest.mark.django_db
def test_healthz_is_cached_so_a_flood_opens_one_broker_connection(client, settings, monkeypatch):
    settings.HEALTHZ_CACHE_SECONDS = 5
    connections = []
    ensure_connection = Connection.ensure_connection

    def counting(self, *args, **kwargs):
        connections.append(self)
        return ensure_connection(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "ensure_connection", counting)
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert len(connections) == 1
    cache.clear()  # the cached report expired
    client.get("/healthz")
    assert len(connections) == 2


# --- production settings ----------------------------------------------------------------------------

def test_production_settings_pass_the_deploy_check(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], child_env(tmp_path, **PRODUCTION_ENV))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_are_secure(tmp_path):
    script = ("import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in ("
              "'DEBUG', 'PRODUCTION', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
              "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', 'ALLOWED_HOSTS', "
              "'AUTH_PASSWORD_VALIDATORS')}))")
    result = run_python(["-c", f"import django; django.setup(); {script}"], child_env(tmp_path, **PRODUCTION_ENV))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False and values["PRODUCTION"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert all(values[k] is True for k in ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE",
                                           "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT"))
    assert values["ALLOWED_HOSTS"] == ["sleepreview.example.org"]
    validators = {v["NAME"].rsplit(".", 1)[1]: v.get("OPTIONS", {}) for v in values["AUTH_PASSWORD_VALIDATORS"]}
    assert validators["MinimumLengthValidator"] == {"min_length": 12}
    assert {"UserAttributeSimilarityValidator", "CommonPasswordValidator", "NumericPasswordValidator"} <= set(validators)


@pytest.mark.parametrize("name, value, hint", [
    ("SECRET_KEY", None, "SECRET_KEY must be set"),
    ("SECRET_KEY", "too-short-but-random-9f8e7d", "at least 50 characters"),
    ("SECRET_KEY", "dev-only-insecure-key-change-me" + "x" * 30, "SECRET_KEY must be set"),
    ("ALLOWED_HOSTS", None, "ALLOWED_HOSTS must list"),
    ("ALLOWED_HOSTS", " , ", "ALLOWED_HOSTS must list"),
    ("DATABASE_URL", None, "DATABASE_URL must point at PostgreSQL"),
    ("DATABASE_URL", "sqlite:////tmp/db.sqlite3", "DATABASE_URL must point at PostgreSQL"),
    ("REDIS_URL", None, "REDIS_URL must point at the Celery broker"),
])
def test_production_settings_refuse_a_missing_or_weak_value(tmp_path, name, value, hint):
    env = child_env(tmp_path, **PRODUCTION_ENV)
    if value is None:
        del env[name]
    else:
        env[name] = value
    result = run_python(["-c", "import config.settings_production"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and hint in result.stderr, result.stderr


@pytest.mark.django_db
def test_password_validators_reject_weak_and_accept_project_passwords(make_user):
    user = make_user(RATER)
    for weak in ("password1234", "73910284657391", "rater-user"):
        with pytest.raises(ValidationError):
            validate_password(weak, user)
    validate_password("pw-for-tests-123", user)
    for username, (_, password) in DEMO_ACCOUNTS.items():
        validate_password(password, make_user(RATER, username=username))


# --- sign-in throttles ------------------------------------------------------------------------------

@pytest.fixture
def throttle_rate(settings):
    settings.LOGIN_THROTTLE_RATE = "10/min"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # quick password checks


def sign_in(client, username, password, address="10.0.0.1", **headers):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def test_login_page_answers_429_on_the_11th_failed_attempt(client, make_user, throttle_rate):
    user = make_user(CURATOR)
    for _ in range(10):
        response = sign_in(client, user.username, "wrong")
        assert response.status_code == 200 and b"Wrong username or password" in response.content
    response = sign_in(client, user.username, "pw-for-tests-123")  # right, but too late: not even checked
    assert response.status_code == 429
    assert re.search(r"Too many sign-in attempts; try again in \d+ seconds", response.content.decode())
    assert 0 < int(response["Retry-After"]) <= 60
    assert "_auth_user_id" not in client.session


def test_login_page_counts_per_address_and_per_username(client, make_user, throttle_rate):
    user = make_user(CURATOR)
    for i in range(10):
        sign_in(client, user.username, "wrong", address=f"10.0.1.{i}")  # one account from many addresses
    assert sign_in(client, user.username, "wrong", address="10.0.2.1").status_code == 429
    for i in range(10):  # many accounts from one address, forging X-Forwarded-For in vain
        sign_in(client, f"nobody-{i}", "wrong", address="10.0.3.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert sign_in(client, "nobody-else", "wrong", address="10.0.3.1").status_code == 429
    assert sign_in(client, "nobody-else", "wrong", address="10.0.4.1").status_code == 200


def test_login_page_signs_in_below_the_limit(client, make_user, throttle_rate):
    user = make_user(CURATOR)
    for _ in range(9):
        sign_in(client, user.username, "wrong")
    response = sign_in(client, user.username, "pw-for-tests-123")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    for _ in range(20):  # signed-in pages and successful sign-ins are not counted
        assert sign_in(client, user.username, "pw-for-tests-123").status_code == 302


def test_admin_login_goes_to_the_throttled_page(client, make_user):
    """A signed-in user cannot try passwords on the admin's own (unthrottled) login form."""
    rater, admin = make_user(RATER), make_user(ADMIN)
    client.force_login(rater)
    response = client.post("/admin/login/?next=/admin/", {"username": admin.username, "password": "pw-for-tests-123"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/admin/"
    assert client.session["_auth_user_id"] == str(rater.pk)


def test_token_endpoint_answers_429_on_the_11th_attempt(make_user, throttle_rate):
    user = make_user(CURATOR)
    api = APIClient(REMOTE_ADDR="10.0.5.1")
    for i in range(10):  # a forged X-Forwarded-For does not make a new client
        response = api.post("/api/auth/token/", {"username": user.username, "password": "wrong"},
                            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        assert response.status_code == 400
    response = api.post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests-123"})
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"]


def test_token_endpoint_hands_out_a_token_below_the_limit(make_user, throttle_rate):
    user = make_user(CURATOR)
    api = APIClient(REMOTE_ADDR="10.0.6.1")
    for _ in range(9):
        api.post("/api/auth/token/", {"username": user.username, "password": "wrong"})
    response = api.post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests-123"})
    assert response.status_code == 200 and response.json()["token"]


# --- uploads ----------------------------------------------------------------------------------------

class UnreadableBody:
    """A request body that fails the test if anyone reads it."""

    def read(self, *args):
        raise AssertionError("the request body was read")

    readline = read


@pytest.mark.django_db
def test_uploads_over_the_limit_get_413_before_the_body_is_read(role_client, settings, monkeypatch):
    settings.MAX_UPLOAD_BYTES = 1000
    monkeypatch.setattr(imports, "submit_upload", lambda **kwargs: pytest.fail("the upload reached the view"))
    client = role_client(CURATOR)
    upload = SimpleUploadedFile("night.edf", b"0" * 2000)
    response = client.post(reverse("datasets:import-new"), {"file": upload, "cohort": "c"},
                           **{"wsgi.input": UnreadableBody(), "CONTENT_LENGTH": "2500"})
    assert response.status_code == 413
    assert "the limit is 1000 bytes" in response.content.decode() and "MAX_UPLOAD_BYTES" in response.content.decode()
    response = client.post("/api/imports/", {"file": SimpleUploadedFile("night.edf", b"0" * 2000), "cohort_name": "c"})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


@pytest.mark.django_db
def test_uploads_below_the_limit_pass(role_client, settings):
    settings.MAX_UPLOAD_BYTES = 100_000
    response = role_client(RATER).post("/api/imports/", {"file": SimpleUploadedFile("night.edf", b"0" * 2000),
                                                           "cohort_name": "c"})
    assert response.status_code == 403  # reached DRF (a rater may not import), not refused for its size


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.django_db
def test_uploaded_files_are_owner_only(media_root):
    small = SimpleUploadedFile("small.edf", b"0" * 100)
    large = TemporaryUploadedFile("large.edf", "application/octet-stream", 100, None)  # moved from a temp file
    large.write(b"0" * 100)
    large.seek(0)
    for upload in (small, large):
        job = imports.submit_upload(upload=upload, cohort="Modes")
        stored = media_root / job.source_path
        assert file_mode(stored) == 0o600, upload.name
        assert file_mode(stored.parent) == 0o700 and file_mode(media_root / "uploads") == 0o700


# --- the demo ---------------------------------------------------------------------------------------

def test_demo_refuses_production_settings_before_touching_the_database(tmp_path):
    result = run_python(["manage.py", "demo", "--no-serve"], child_env(tmp_path, **PRODUCTION_ENV))
    assert result.returncode == 1
    assert "refuses to run under production settings" in result.stderr
    assert "OperationalError" not in result.stderr and "Demo accounts" not in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def left_of(worker: int) -> list[int]:
    """Live processes of the worker: itself and its process group (its pool process); zombies do not count."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError):
            continue
        pid = int(stat.parent.name)
        if state != "Z" and worker in (pid, int(group)):
            pids.append(pid)
    return pids


def wait_for(condition, timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the demo exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.worker
def test_demo_sigterm_stops_the_server_and_its_worker(tmp_path):
    port = free_port()
    log = tmp_path / "demo.log"
    env = child_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    with log.open("w") as out:
        demo = subprocess.Popen([sys.executable, "manage.py", "demo", "--hours", "0.1", "--addr", f"127.0.0.1:{port}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    worker_pid = None
    try:
        def serving():
            nonlocal worker_pid
            match = re.search(r"Serving on http://127\.0\.0\.1:\d+/ with a Celery worker \(pid (\d+)\)", log.read_text())
            worker_pid = int(match.group(1)) if match else None
            return worker_pid is not None

        wait_for(serving, 180, "the 'Serving on' line", demo)
        wait_for(lambda: listening(port), 60, "the server to listen", demo)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=30) == 128 + signal.SIGTERM
        wait_for(lambda: not left_of(worker_pid), 30, "the worker to exit")
        assert not listening(port)
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in left_of(worker_pid) if worker_pid else ():
            os.kill(pid, signal.SIGKILL)
