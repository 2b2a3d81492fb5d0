"""Settings read from the environment; the defaults give the embedded setup.

Embedded: SQLite under var/, media under var/media/, and a Celery broker on Kombu's
filesystem transport under var/celery/, so a real background worker needs no server.
Production: DATABASE_URL (PostgreSQL), REDIS_URL, MEDIA_ROOT, see config/settings_production.py.
"""
import os
from pathlib import Path

import dj_database_url

from config.storage_url import storage_from_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SLEEPREVIEW_VAR", BASE_DIR / "var"))

PRODUCTION = False  # config.settings_production sets it; the demo refuses to run there
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "core",
    "datasets",
    "inference",
    "annotation",
    "ratings",
    "releases",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.UploadSizeLimit",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.AuditContext",
    "config.middleware.LoginRequiredEverywhere",
    "config.middleware.DatabaseUnavailable",
    "config.middleware.StorageFullResponse",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.roles",
            ]
        },
    }
]
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        conn_health_checks=True,  # a kept connection the server dropped is replaced, not handed to a request
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Several processes (web, worker, CLI) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    # A file (not in-memory) test database, so live-server and worker threads share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, its health check of a kept connection without a round trip (config/postgresql/base.py)
    DATABASES["default"]["ENGINE"] = "config.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["core.access.PermissionBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},  # production: 12
]
# Sign-in attempts: failed logins on the page per client address and per username, and every token
# request per client address (DRF's "N/s|min|hour|day" syntax).
LOGIN_THROTTLE_RATE = os.environ.get("LOGIN_THROTTLE_RATE", "10/min")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:home"  # My work for raters and anyone with work assigned, else the cohorts
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"
# Stored files: the local folder MEDIA_ROOT, or an S3-compatible bucket when STORAGE_URL is set
# (s3://bucket/prefix?endpoint=URL&region=NAME, credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
STORAGE_URL = os.environ.get("STORAGE_URL", "")
STORAGES = {
    "default": storage_from_url(STORAGE_URL) if STORAGE_URL else {
        "BACKEND": os.environ.get("STORAGE_BACKEND", "core.storage.FileSystemStorage"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o600  # PSG files are patient data: owner only
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# A request whose Content-Length is larger is refused with 413 before its body is read.
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_BYTES", str(4 * 1024**3)))

# Cache: throttle counters and the health report. Per process unless CACHE_URL names a Redis
# server (e.g. redis://127.0.0.1:6379/1), which several web processes then share.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
HEALTHZ_CACHE_SECONDS = int(os.environ.get("HEALTHZ_CACHE_SECONDS", "5"))
HEALTHZ_WORKER_TIMEOUT_SECONDS = float(os.environ.get("HEALTHZ_WORKER_TIMEOUT_SECONDS", "1"))

# Celery: Redis when REDIS_URL is set, otherwise the filesystem transport (no server needed).
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_QUEUE_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # An unacknowledged task (its worker died) is redelivered after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "0") == "1"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues per machine role: io (imports, releases, sweeps, re-queuing), cpu (CPU baseline and network-bound
# OpenAI-compatible inference, statistics), gpu (transformers inference). Inference chunks name their queue
# when sent (inference.models.ModelVersion.queue); everything else is routed here by task name.
WORKER_QUEUES = ("io", "cpu", "gpu")  # what /healthz asks workers about
CELERY_TASK_DEFAULT_QUEUE = "io"
CELERY_TASK_ROUTES = {"datasets.*": {"queue": "io"}, "releases.*": {"queue": "io"}, "core.*": {"queue": "io"},
                      "inference.resume_job": {"queue": "io"},
                      "annotation.*": {"queue": "cpu"}, "ratings.*": {"queue": "cpu"}}
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "core.sweep", "schedule": float(os.environ.get("SWEEP_INTERVAL_SECONDS", "300"))},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Job engine: a RUNNING job whose worker is silent this long may be claimed again; a PENDING job
# this old (its message may never have reached the broker) is queued again by the sweep.
JOB_LEASE_SECONDS = int(os.environ.get("JOB_LEASE_SECONDS", "900"))
JOB_PENDING_REQUEUE_SECONDS = int(os.environ.get("JOB_PENDING_REQUEUE_SECONDS", "600"))
# A job whose database connection is lost mid-run is queued again this many times, then fails saying so.
JOB_DATABASE_RETRIES = int(os.environ.get("JOB_DATABASE_RETRIES", "2"))
# A campaign with more answers (labels, ratings) than this shows its last stored statistics with their age, and a
# `cpu` job recomputes them (core.services.statistics_cache); smaller ones are computed on each request.
STATISTICS_INLINE_LIMIT = int(os.environ.get("STATISTICS_INLINE_LIMIT", "30000"))
# Stored files no row references are deleted by the sweep once older than this (imports in flight
# write their files before their rows).
STORAGE_SWEEP_GRACE_SECONDS = int(os.environ.get("STORAGE_SWEEP_GRACE_SECONDS", str(24 * 3600)))

# What model version settings may point a backend at (inference/services/backends/allowlist.py):
# comma-separated names and hosts, os.pathsep-separated folders.
def _env_list(name: str, default: str, sep: str = ",") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(sep) if item.strip()]


INFERENCE_API_KEY_ENVS = _env_list("INFERENCE_API_KEY_ENVS", "OPENAI_API_KEY,VLLM_API_KEY")
INFERENCE_BASE_URL_HOSTS = _env_list("INFERENCE_BASE_URL_HOSTS", "127.0.0.1,localhost")
INFERENCE_PROMPT_DIRS = [Path(p) for p in _env_list(
    "INFERENCE_PROMPT_DIRS", os.pathsep.join([str(BASE_DIR / "inference" / "prompts"), str(VAR_DIR / "prompts")]),
    os.pathsep)]
INFERENCE_CHECKPOINT_DIRS = [Path(p) for p in _env_list("INFERENCE_CHECKPOINT_DIRS", str(VAR_DIR / "checkpoints"),
                                                        os.pathsep)]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "core.access.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.access.PolicyPermission"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 100,
    # Client address for the throttles: REMOTE_ADDR (0), or the address this many proxies back in
    # X-Forwarded-For (1 behind one reverse proxy). Never the raw header, which clients can forge.
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SleepReview API",
    "DESCRIPTION": "PSG recordings, epochs and SleepVLM images for expert review.",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ScoringUnitEnum": "annotation.models.ScoringCampaign.UNIT_CHOICES"},
}

# Signal preparation (rendering.md): default mains frequency for recordings that do not say.
DEFAULT_MAINS_HZ = float(os.environ.get("DEFAULT_MAINS_HZ", "50"))
MAINS_HZ_RANGE = (40.0, 70.0)  # accepted notch frequencies: 50 or 60 Hz mains, with room for odd grids

# The original PSG file is not kept after an import unless this is on; then it is stored apart (originals/)
# and only admins may download it.
KEEP_ORIGINAL_PSG = os.environ.get("KEEP_ORIGINAL_PSG", "0") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
