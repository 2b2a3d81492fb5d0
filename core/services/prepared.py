"""Statements compiled once per process, for the requests a rater sends all night (token, permissions, campaign,
the held item, the pick, the save): building and compiling a query in Django's ORM costs more CPU than the
database takes to run it.

A prepared statement is built and compiled once per database and `key`, twice in fact, with two sets of
stand-in values; where each stand-in lands among the SQL parameters is recorded, and every later call sends
the same SQL with its own values in those places. When the two compilations disagree anywhere but at the
stand-ins (or a stand-in cannot be found, or the ORM would send no statement), the ORM runs the query as usual
on every call instead: preparing changes what a query costs, never what it returns.

`key` names everything the statement depends on besides its `values` (a role's permissions, a campaign's
order); the builder must not branch on the values themselves: ints, strings, datetimes or UUIDs.
"""
from __future__ import annotations

import copy
import uuid
import weakref
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Callable, Sequence

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import DateTimeField, QuerySet, UUIDField
from django.db.models.sql import UpdateQuery

CACHE_LIMIT = 10_000  # statements kept per process; past it the cache starts again
_UNPREPARABLE = object()
_statements: dict[tuple, Any] = {}  # (db, key) -> (sql, params, where, extra) or _UNPREPARABLE


class Unpreparable(Exception):
    """Raised by a statement's compile function: this statement is left to the ORM."""


def _stand_in(value, variant: int, n: int):
    """A value no call sends, distinct per (variant, n); ints stay in a 32-bit column's range, so that Django
    does not turn a lookup on them into an always-false condition."""
    if isinstance(value, int) and not isinstance(value, bool):
        return 2**31 - 7919 - 1000 * variant - n
    if isinstance(value, str):
        return f"\x1fstand-in {variant}.{n}\x1f"
    if isinstance(value, datetime):
        return datetime(2999, 12, 31, 23, 59, 59, 1000 * variant + n, tzinfo=dt_timezone.utc)
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=2**127 + 1000 * variant + n)
    raise TypeError(f"a prepared statement takes ints, strings, datetimes and UUIDs, not {type(value).__name__}")


def _parameter(value, connection):
    """The value as the ORM passes it to the driver (datetimes and UUIDs adapted, e.g. to text on SQLite)."""
    if isinstance(value, datetime):
        return DateTimeField().get_db_prep_value(value, connection)
    if isinstance(value, uuid.UUID):
        return UUIDField().get_db_prep_value(value, connection)
    if isinstance(value, int) and not -2**63 <= value < 2**63:
        raise ValueError(f"{value} is out of a database integer's range")
    return value


def _prepare(connection, compile: Callable, values: dict):
    samples = [{name: _stand_in(value, variant, n) for n, (name, value) in enumerate(values.items())}
               for variant in (1, 2)]
    try:
        (sql, params, extra), (other_sql, other_params, _) = (compile(**sample) for sample in samples)
    except (Unpreparable, EmptyResultSet, FullResultSet):  # the ORM would not send this statement as compiled
        return _UNPREPARABLE
    params, other_params = list(params), list(other_params)
    if sql != other_sql or len(params) != len(other_params):
        return _UNPREPARABLE
    where = {}
    for name in values:
        one, two = (_parameter(sample[name], connection) for sample in samples)
        found = [i for i, p in enumerate(params) if p == one]
        if not found or found != [i for i, p in enumerate(other_params) if p == two]:
            return _UNPREPARABLE
        where[name] = found
    placed = {i for found in where.values() for i in found}
    if any(params[i] != other_params[i] for i in range(len(params)) if i not in placed):
        return _UNPREPARABLE
    return sql, params, where, extra


def statement(key, compile: Callable[..., tuple[str, Sequence, Any]], values: dict,
              db: str = DEFAULT_DB_ALIAS) -> tuple[str, list, Any] | None:
    """(sql, params, extra) of `compile(**values)`, which returns the same triple: compiled once per (db, key),
    then filled in with each call's `values`; `extra` is what the first compilation gave (e.g. its compiler).
    None where the statement cannot be prepared: the caller compiles it as usual."""
    connection = connections[db]
    entry = _statements.get((db, key))
    if entry is None:
        entry = _prepare(connection, compile, values)
        if len(_statements) >= CACHE_LIMIT:
            _statements.clear()
        _statements[(db, key)] = entry
    if entry is _UNPREPARABLE:
        return None
    sql, params, where, extra = entry
    params = list(params)
    for name, indexes in where.items():
        value = _parameter(values[name], connection)
        for index in indexes:
            params[index] = value
    return sql, params, extra


def fetch(key, build: Callable[..., QuerySet], db: str = DEFAULT_DB_ALIAS, /, **values) -> list:
    """The rows of `build(**values)` (model instances with their select_related objects and annotations, or
    the tuples of a values_list), from a statement prepared per `key`; the rows come through Django's own
    iterables, so they are what the queryset itself would give."""
    def compile(**named):
        queryset = build(**named)
        compiler = queryset.query.get_compiler(db)
        return (*compiler.as_sql(), (queryset, compiler, weakref.WeakKeyDictionary()))
    found = statement(key, compile, values, db)
    if found is None:
        return list(build(**values))
    sql, params, (template, compiler, converters) = found

    def prepared_compiler(using=None, connection=None, elide_empty=True):
        bound = copy.copy(compiler)
        bound.connection = connections[db]  # connections are per thread
        bound.as_sql = lambda *args, **kwargs: (sql, params)
        # the columns' converters, found once per connection (Django looks them up column by column each time)
        bound.get_converters = lambda expressions: _converters(converters, bound, expressions)
        return bound

    queryset = template.all()
    queryset.query.get_compiler = prepared_compiler
    return list(queryset)


def _converters(found: weakref.WeakKeyDictionary, compiler, expressions) -> dict:
    converters = found.get(compiler.connection)
    if converters is None:
        converters = found[compiler.connection] = type(compiler).get_converters(compiler, expressions)
    return converters


def first(key, build: Callable[..., QuerySet], db: str = DEFAULT_DB_ALIAS, /, **values):
    """`build(**values).first()` (None when there is none), prepared as `fetch`."""
    def first_of(**named):
        queryset = build(**named)
        return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
    rows = fetch(("first", key), first_of, db, **values)
    return rows[0] if rows else None


def update(key, build: Callable[..., tuple[QuerySet, dict]], db: str = DEFAULT_DB_ALIAS, /, **values) -> int:
    """`queryset.update(**changes)` for `(queryset, changes) = build(**values)`, prepared per `key` (an unordered
    update of one table; any other is left to Django's own); the number of rows changed."""
    def compile(**named):
        queryset, changes = build(**named)
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        if query.order_by or query.related_updates:
            raise Unpreparable  # QuerySet.update rewrites the ordering, updates the other tables
        query.clear_select_clause()
        return (*query.get_compiler(db).as_sql(), None)
    found = statement(("update", key), compile, values, db)
    if found is None:
        queryset, changes = build(**values)
        return queryset.update(**changes)
    sql, params, _ = found
    with transaction.mark_for_rollback_on_error(using=db), connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
