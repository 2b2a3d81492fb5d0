"""Serving the files of a built release from storage (the page's links and the API alike)."""
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404

from releases.models import Release


def file_response(release: Release, path: str) -> FileResponse:
    """One file (or archive) of a built release, streamed, with its SHA-256 as ETag; Http404 otherwise."""
    if release.state != Release.SUCCEEDED:
        raise Http404(f"release {release} is {release.state}, not built")
    row = release.files.filter(path=path).first()
    if row is None:
        raise Http404(f"release {release} has no file {path!r}")
    response = FileResponse(default_storage.open(row.storage_name, "rb"), as_attachment=row.archive,
                            filename=path.rsplit("/", 1)[-1])
    response["ETag"] = f'"{row.sha256}"'
    return response
