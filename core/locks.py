"""A named lock across processes: PostgreSQL advisory lock, or an flock'ed file for SQLite."""
from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager

from django.conf import settings
from django.db import connection


@contextmanager
def named_lock(name: str):
    """Hold an exclusive lock on `name` for the block (e.g. one import per file SHA-256)."""
    if connection.vendor == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    folder = settings.VAR_DIR / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / (hashlib.sha256(name.encode()).hexdigest() + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
