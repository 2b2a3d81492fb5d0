"""Production settings: secure defaults on top of config.settings (all from the environment).

Required: SECRET_KEY (50+ characters), ALLOWED_HOSTS, DATABASE_URL (PostgreSQL) and REDIS_URL;
anything missing stops the start with ImproperlyConfigured. `manage.py check --deploy` runs clean.
"""
import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F401,F403


def _require(name: str, ok, hint: str) -> str:
    value = os.environ.get(name, "")
    if not ok(value):
        raise ImproperlyConfigured(f"production settings: {name} {hint}")
    return value


PRODUCTION = True
DEBUG = False
SECRET_KEY = _require("SECRET_KEY", lambda v: len(v) >= 50 and not v.startswith(("dev-only", "django-insecure")),
                      "must be set to a random value of at least 50 characters "
                      "(python -c 'import secrets; print(secrets.token_urlsafe(50))')")
ALLOWED_HOSTS = [h for h in _require("ALLOWED_HOSTS", lambda v: v.strip(" ,"),
                                     "must list the host names served, comma-separated").split(",") if h.strip()]
_require("DATABASE_URL", lambda v: v.startswith(("postgres://", "postgresql://")),
         "must point at PostgreSQL (postgres://user:password@host:5432/name)")
_require("REDIS_URL", bool, "must point at the Celery broker (redis://host:6379/0)")

AUTH_PASSWORD_VALIDATORS = [
    {**v, "OPTIONS": {"min_length": 12}} if v["NAME"].endswith(".MinimumLengthValidator") else v
    for v in AUTH_PASSWORD_VALIDATORS  # noqa: F405
]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = os.environ.get("SECURE_SSL_REDIRECT", "1") == "1"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # monitors may probe over plain HTTP inside the network
# X-Forwarded-Proto says a request came over HTTPS only where a TLS proxy in front sets it, replacing what a
# client sent (BEHIND_TLS_PROXY=1); without one, any client could claim HTTPS with the header.
if os.environ.get("BEHIND_TLS_PROXY", "0") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}  # noqa: F405
