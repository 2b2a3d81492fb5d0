"""Django's PostgreSQL backend, with a health check of kept connections that costs no round trip.

Django checks a kept connection before each request's first statement (CONN_HEALTH_CHECKS) by sending `SELECT 1`.
A connection the server ended while it sat idle (a restart, pg_terminate_backend, an idle timeout) has something
to read on its socket: the server's goodbye message, or the end of the stream. So an idle connection with nothing
to read is used as it is, and one with something to read (or whose socket cannot be polled) gets Django's own
check (which reads it, and fails when the connection is gone).
"""
import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status == TransactionStatus.IDLE:
            try:
                readable, _, _ = select.select([connection.fileno()], [], [], 0)
            except (OSError, ValueError):  # e.g. a descriptor past select's limit: Django's check decides
                readable = True
            if not readable:
                return True
        return super().is_usable()
