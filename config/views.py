"""Project-level views: the health check."""
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse

from config.celery import app as celery_app


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _check_broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_type


def _check_storage() -> str:
    name = default_storage.save(f"healthz/{uuid.uuid4().hex}", ContentFile(b"ok"))
    default_storage.delete(name)
    return type(default_storage._wrapped).__name__


def healthz(request):
    """Database, broker and storage status as JSON; 503 when any is down. No login needed."""
    report, healthy = {}, True
    for key, check in (("database", _check_database), ("broker", _check_broker), ("storage", _check_storage)):
        try:
            report[key] = {"ok": True, "backend": check()}
        except Exception as exc:  # report, don't crash: this endpoint is for monitors
            healthy = False
            report[key] = {"ok": False, "error": str(exc)}
    report["status"] = "ok" if healthy else "degraded"
    return JsonResponse(report, status=200 if healthy else 503)
