"""Project-level views: the health check."""
import re

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from config.celery import app as celery_app

CACHE_KEY = "healthz:report"
_CREDENTIALS = re.compile(r"(\w+://)[^@/\s]*@")


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _check_broker() -> str:
    with celery_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_type


def _check_storage() -> str:
    default_storage.listdir("")  # read-only: the media root can be listed
    return type(default_storage._wrapped).__name__


def _check_workers() -> dict[str, list[str]]:
    """Each queue → the workers taking it (empty: none answered one broadcast within the timeout)."""
    replies = celery_app.control.inspect(timeout=settings.HEALTHZ_WORKER_TIMEOUT_SECONDS).active_queues() or {}
    return {queue: sorted(worker for worker, taken in replies.items() if any(q["name"] == queue for q in taken))
            for queue in settings.WORKER_QUEUES}


CHECKS = {"database": _check_database, "broker": _check_broker, "storage": _check_storage}


def _failure(exc: Exception) -> dict:
    """The exception's class and first line, without credentials, at most 200 characters."""
    lines = str(exc).strip().splitlines()
    return {"ok": False, "error": type(exc).__name__, "message": _CREDENTIALS.sub(r"\1***@", lines[0] if lines else "")[:200]}


def _report() -> dict:
    report = {}
    for key, check in CHECKS.items():
        try:
            report[key] = {"ok": True, "backend": check()}
        except Exception as exc:  # report, don't crash: this endpoint is for monitors
            report[key] = _failure(exc)
    if report["broker"]["ok"]:  # a queue without workers is reported, not a failure: work waits for one
        try:
            report["workers"] = {"ok": True, "queues": _check_workers()}
        except Exception as exc:
            report["workers"] = _failure(exc)
    return report


def _is_staff(request) -> bool:
    try:
        return request.user.is_staff
    except DatabaseError:  # a session cookie cannot be read while the database is down
        return False


@require_safe
def healthz(request):
    """{"status": "ok"} or {"status": "degraded"} (503), no login needed; staff also see each component
    and each queue's workers.

    Read-only checks (a SELECT, a storage listing, a broker connection, a worker ping), cached
    HEALTHZ_CACHE_SECONDS so a flood of probes does not open a broker connection each.
    """
    report = cache.get(CACHE_KEY)
    if report is None:
        report = _report()
        cache.set(CACHE_KEY, report, settings.HEALTHZ_CACHE_SECONDS)
    healthy = all(component["ok"] for component in report.values())
    body = {"status": "ok" if healthy else "degraded"}
    if _is_staff(request):
        body.update(report)
    return JsonResponse(body, status=200 if healthy else 503)
