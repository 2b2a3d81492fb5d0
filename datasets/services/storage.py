"""Content-addressed files in Django's default storage (a local folder or S3), and local access to stored files."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def content_name(prefix: str, sha256: str, ext: str) -> str:
    return f"{prefix}/{sha256[:2]}/{sha256}.{ext}"


def save_content_addressed(data: bytes, prefix: str, ext: str) -> tuple[str, str, bool]:
    """Store bytes under their SHA-256; return (storage name, sha256, created)."""
    sha = hashlib.sha256(data).hexdigest()
    name = content_name(prefix, sha, ext)
    if default_storage.exists(name):
        _touch(name)
        return name, sha, False
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:  # another process stored the same content meanwhile
        default_storage.delete(saved)
        return name, sha, False
    return name, sha, True


def save_file(path: Path, prefix: str, sha256: str, ext: str) -> str:
    """Store a local file (streamed) under its known SHA-256; return the storage name."""
    name = content_name(prefix, sha256, ext)
    if default_storage.exists(name):
        _touch(name)
        return name
    with open(path, "rb") as handle:
        saved = default_storage.save(name, File(handle, name=Path(name).name))
    if saved != name:  # another process stored the same content meanwhile
        default_storage.delete(saved)
    return name


def _touch(name: str) -> None:
    """Renew a reused file's age, so the storage sweep's grace period covers the import now using it."""
    if hasattr(default_storage, "touch"):  # object storage (core.storage.S3Storage)
        default_storage.touch(name)
        return
    try:
        os.utime(default_storage.path(name))
    except (NotImplementedError, FileNotFoundError):
        pass


def save_array(array: np.ndarray, prefix: str = "signals") -> tuple[str, str, bool]:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return save_content_addressed(buffer.getvalue(), prefix, "npy")


@lru_cache(maxsize=4)
def load_array(name: str) -> np.ndarray:
    """Load a stored array, memory-mapped when the storage has local paths (cached per process)."""
    try:
        return np.load(default_storage.path(name), mmap_mode="r", allow_pickle=False)
    except NotImplementedError:
        with default_storage.open(name, "rb") as fh:
            return np.load(io.BytesIO(fh.read()), allow_pickle=False)


@contextmanager
def local_path(name: str, in_storage: bool):
    """Yield a local filesystem path for a stored file (copied to a temp file for remote storage)."""
    if not in_storage:
        yield Path(name)
        return
    try:
        stored_path = default_storage.path(name)
    except NotImplementedError:
        stored_path = None
    if stored_path is not None:
        yield Path(stored_path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(name).name
        with default_storage.open(name, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
