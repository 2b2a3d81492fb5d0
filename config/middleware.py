"""Login required for every page (the API authenticates itself in DRF); a cap on request sizes; 503 when the
database is unreachable, 507 when the storage is full."""
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, JsonResponse

PUBLIC_PREFIXES = ("/healthz", "/accounts/login/", "/api/", "/" + settings.STATIC_URL.lstrip("/"))


class LoginRequiredEverywhere:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)


def _human(size: int) -> str:
    """1000 bytes, 2.0 KiB, 4.0 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:g} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024


class UploadSizeLimit:
    """413 for a request whose Content-Length exceeds MAX_UPLOAD_BYTES, before its body is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body from an unreadable length
        limit = settings.MAX_UPLOAD_BYTES
        if length <= limit:
            return self.get_response(request)
        message = (f"Upload too large: {_human(length)}; the limit is {_human(limit)} "
                   f"(MAX_UPLOAD_BYTES = {limit}).")
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=413)
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


class AuditContext:
    """Change records written while serving a request carry its id (a proxy's X-Request-ID, else a new one,
    sent back in the response) and where it came from: the API, the admin or a page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from core.models import ChangeRecord
        from core.services.audit import audit_context

        if request.path.startswith("/api/"):
            source = ChangeRecord.API
        elif request.path.startswith("/admin/"):
            source = ChangeRecord.ADMIN
        else:
            source = ChangeRecord.PAGE
        with audit_context(source, request.headers.get("X-Request-ID", "")) as context:
            request.request_id = context.request_id
            response = self.get_response(request)
        response["X-Request-ID"] = context.request_id
        return response


class DatabaseUnavailable:
    """A request whose database connection was lost or refused gets 503 with Retry-After and a plain message
    (JSON under /api/), never a 500 with a traceback. The request's transaction rolled back, so nothing of it
    was saved; the broken connection is closed, so the next request opens a new one."""

    RETRY_AFTER_SECONDS = 5
    MESSAGE = "The database is unavailable right now; nothing was saved. Please try again in a few seconds."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from core.models import database_lost

        if not database_lost(exception):
            return None
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": self.MESSAGE}, status=503)
        else:
            response = HttpResponse(self.MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response


class StorageFullResponse:
    """A request that could not store a file for lack of room (core.storage.StorageFull) gets 507 Insufficient
    Storage with the message naming the file (JSON under /api/), never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from core.storage import StorageFull

        if not isinstance(exception, StorageFull):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": str(exception)}, status=507)
        return HttpResponse(str(exception), status=507, content_type="text/plain; charset=utf-8")
