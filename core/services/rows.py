"""Rows of a queryset straight from the database cursor, for figures over hundreds of thousands of rows.

Django's per-row conversions (JSON decoding, booleans from SQLite's integers) cost more than the query at
that size; `fetch` skips them, and `json_value` decodes a JSON column's raw value with orjson. Building
that many tuples and dicts also sets off Python's cyclic garbage collector again and again over the whole
heap (a third of the time of a 100,000-epoch campaign's figures): `without_cyclic_gc` pauses it.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connections


def _statement(queryset) -> tuple[str, tuple] | None:
    """The queryset's SQL and parameters; None for a queryset that can match nothing (`pk__in=[]`)."""
    try:
        return queryset.query.sql_with_params()
    except EmptyResultSet:
        return None


def fetch(queryset) -> list[tuple]:
    """The rows of a values_list queryset as the database driver gives them (JSON as text, booleans as 0/1
    on SQLite), in the queryset's order; none for a queryset that can match nothing (`pk__in=[]`)."""
    statement = _statement(queryset)
    if statement is None:
        return []
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(*statement)
        return cursor.fetchall()


def each_row(queryset, chunk: int = 10_000):
    """`fetch`'s rows one at a time, `chunk` at a time from the driver: a large result never as one list. The
    cursor stays open while the rows are consumed: no other query on the connection in between."""
    statement = _statement(queryset)
    if statement is None:
        return
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(*statement)
        while rows := cursor.fetchmany(chunk):
            yield from rows


def json_value(raw):
    """A JSON column's value from `fetch` (text, or already decoded where the driver does that)."""
    return orjson.loads(raw) if isinstance(raw, (str, bytes, bytearray, memoryview)) else raw


@contextmanager
def without_cyclic_gc():
    """Pause the cyclic garbage collector (a context manager or a decorator): the rows built hold no
    reference cycles, and reference counting frees them as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
