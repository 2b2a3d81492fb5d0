"""The storages behind Django's default storage: the local folder (MEDIA_ROOT), written whole or not at all,
and the S3-compatible bucket of STORAGE_URL (config/storage_url.py); a write refused for lack of room raises
StorageFull, whose message names the file in words."""
import errno
import os
import uuid
from contextlib import suppress

from django.core.files.storage import FileSystemStorage as BaseFileSystemStorage
from storages.backends.s3 import S3Storage as BaseS3Storage
from storages.utils import clean_name

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StorageFull(OSError):
    """The storage has no room for a file (a full disk, a quota): str() says which file, for the job page."""

    def __init__(self, name: str, size: int | None = None):
        super().__init__(errno.ENOSPC, "storage is full", name)
        self.name, self.size = name, size

    def __str__(self) -> str:
        size = f" ({self.size:,} bytes)" if self.size else ""
        return f"Storage is full: could not write {self.name}{size}. Free space in the storage, then retry."


class FileSystemStorage(BaseFileSystemStorage):
    """Django's folder storage, each file written whole or not at all: the bytes go to a unique temporary
    name beside it, linked under the real name only once complete and then removed, so a failed write (a full
    disk, a killed process) never leaves a partial file under a name, least of all a content-addressed one
    that a later import would trust. A full disk raises StorageFull."""

    def _save(self, name, content):
        partial = f"{name}.partial-{uuid.uuid4().hex}"
        try:
            partial = super()._save(partial, content)
            while True:
                try:
                    os.link(self.path(partial), self.path(name))
                    return name
                except FileExistsError:  # as Django does: another name when taken
                    name = self.get_available_name(name)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise StorageFull(name, getattr(content, "size", None)) from exc
            raise
        finally:
            with suppress(FileNotFoundError):
                os.unlink(self.path(partial))


class S3Storage(BaseS3Storage):
    """django-storages' S3 storage with `touch`, which the content-addressed store uses to renew a reused
    object's age (copied onto itself), so the storage sweep's grace period covers the import now using it."""

    def touch(self, name: str) -> None:
        stored = self.bucket.Object(self._normalize_name(clean_name(name)))
        stored.copy_from(CopySource={"Bucket": self.bucket_name, "Key": stored.key}, MetadataDirective="REPLACE",
                         ContentType=stored.content_type, Metadata=stored.metadata)
