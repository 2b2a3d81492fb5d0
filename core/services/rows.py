"""Rows of a queryset straight from the database cursor, for figures over hundreds of thousands of rows.

Django's per-row conversions (JSON decoding, booleans from SQLite's integers) cost more than the query at
that size; `fetch` skips them, and `json_value` decodes a JSON column's raw value with orjson.
"""
from __future__ import annotations

import orjson
from django.db import connections


def fetch(queryset) -> list[tuple]:
    """The rows of a values_list queryset as the database driver gives them (JSON as text, booleans as 0/1
    on SQLite), in the queryset's order."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def json_value(raw):
    """A JSON column's value from `fetch` (text, or already decoded where the driver does that)."""
    return orjson.loads(raw) if isinstance(raw, (str, bytes, bytearray, memoryview)) else raw
