"""The audit trail: one change record per action, written by the service inside the change's transaction.

A service calls `record(action, instance, actor=..., before=..., after=...)` after it has changed the
rows, in the same transaction (a rolled-back change leaves no record). `snapshot` gives an object's
state as JSON (concrete fields, foreign keys by id, many-to-many fields as sorted names). Where the
record came from (page, API, CLI, worker, admin) and the request id are taken from the audit context,
which the request middleware and the Celery worker set (`audit_context`).

Blinding: raters see only the records of their own answers, with the fields their answers hide from
them (`hidden_from_rater` on the answer model, e.g. whether an item was served again) left out.
"""
from __future__ import annotations

import contextvars
import json
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from core.models import ChangeRecord, RevisedAnswer

SEE_ALL = "core.view_all_changes"
SEE_OWN = "core.view_changerecord"
NEVER_RECORDED = {"password", "last_login"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class AuditContext:
    source: str
    request_id: str = ""


_context: contextvars.ContextVar[AuditContext] = contextvars.ContextVar("audit_context",
                                                                         default=AuditContext(ChangeRecord.CLI))


def new_request_id(proposed: str = "") -> str:
    """The caller's request id when it is well-formed (a proxy's X-Request-ID), else a new one."""
    return proposed if proposed and REQUEST_ID.match(proposed) else uuid.uuid4().hex


@contextmanager
def audit_context(source: str, request_id: str = ""):
    """Records written inside come from `source` under `request_id` (a new id when none is given)."""
    token = _context.set(AuditContext(source, new_request_id(request_id)))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def enter_context(source: str, request_id: str = "") -> contextvars.Token:
    """`audit_context` for callers that cannot hold a `with` block (Celery's task signals)."""
    return _context.set(AuditContext(source, new_request_id(request_id)))


def leave_context(token: contextvars.Token) -> None:
    _context.reset(token)


def _json(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance, **extra) -> dict:
    """The object's recorded state: concrete fields (foreign keys by id), many-to-many fields as sorted
    names, and `extra` keys; JSON-safe, so it compares equal to what a record holds."""
    data = {}
    for field in instance._meta.concrete_fields:
        if field.name not in NEVER_RECORDED:
            data[field.name] = getattr(instance, field.attname)
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            data[field.name] = sorted(str(related) for related in getattr(instance, field.name).all())
    data.update(extra)
    return _json(data)


def record(action: str, instance=None, *, actor=None, before: dict | None = None, after: dict | None = None,
           object_type: str = "", object_id: str = "", object_repr: str = "") -> ChangeRecord:
    """Write one change record; call it inside the transaction of the change (a failed login excepted)."""
    if action != ChangeRecord.LOGIN_FAILED and not connection.in_atomic_block:
        raise RuntimeError(f"a '{action}' change record must be written inside the transaction of its change")
    if instance is not None:
        object_type = object_type or instance._meta.label_lower
        object_id = object_id or str(instance.pk)
        object_repr = object_repr or str(instance)
    if actor is not None and not actor.is_authenticated:
        actor = None
    context = _context.get()
    return ChangeRecord.objects.create(
        actor=actor, actor_name=actor.get_username() if actor else "", action=action, object_type=object_type,
        object_id=object_id, object_repr=object_repr[:200], before=None if before is None else _json(before),
        after=None if after is None else _json(after), request_id=context.request_id, source=context.source,
    )


def object_type_of(model) -> str:
    return model._meta.label_lower


def history_query(instance) -> str:
    """The audit page's query string listing one object's records."""
    return f"object_type={object_type_of(instance)}&object_id={instance.pk}"


# --- who sees what ----------------------------------------------------------------------------------

def answer_types() -> list[str]:
    """The object types of raters' answers (every concrete RevisedAnswer): a rater sees their own records."""
    return sorted(object_type_of(m) for m in apps.get_models() if issubclass(m, RevisedAnswer))


def sees_all(user) -> bool:
    return user.has_perm(SEE_ALL)


def visible_records(user):
    """The change records `user` may read: all (curators, admins) or those of their own answers."""
    records = ChangeRecord.objects.all()
    if sees_all(user):
        return records
    if not user.is_authenticated or not user.has_perm(SEE_OWN):
        return records.none()
    return records.filter(actor=user, object_type__in=answer_types())


def _hidden_fields(object_type: str) -> tuple[str, ...]:
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return ()
    return tuple(getattr(model, "hidden_from_rater", ()))


def states_seen_by(record: ChangeRecord, user) -> tuple[dict | None, dict | None]:
    """(before, after) as `user` may see them: a rater's own answers lose what is hidden from raters."""
    if sees_all(user):
        return record.before, record.after
    hidden = _hidden_fields(record.object_type)

    def strip(state):
        return None if state is None else {k: v for k, v in state.items() if k not in hidden}

    return strip(record.before), strip(record.after)


def diff(before: dict | None, after: dict | None) -> list[dict]:
    """The fields that differ, in the order of the after state (then the before state): [{field, before, after}]."""
    before, after = before or {}, after or {}
    keys = list(after) + [k for k in before if k not in after]
    return [{"field": k, "before": before.get(k), "after": after.get(k)}
            for k in keys if before.get(k, None) != after.get(k, None) or (k in before) != (k in after)]


# --- verification -------------------------------------------------------------------------------

CREATING_ACTIONS = (ChangeRecord.CREATE, ChangeRecord.REVISE, ChangeRecord.ADJUDICATE, ChangeRecord.IMPORT,
                    ChangeRecord.BUILD)


def verified_models() -> list:
    """Models whose every row must be explained by the trail (`audit_verified = True`: answers, adjudications)."""
    return [m for m in apps.get_models() if getattr(m, "audit_verified", False)]


def verify(models=None, chunk: int = 2000):
    """Yield one message per row of the verified models without its creating record, or whose latest
    record's after-state differs from the row as it is now."""
    for model in models or verified_models():
        object_type = object_type_of(model)
        rows = model.objects.order_by("pk")
        last_pk = 0
        while True:
            batch = list(rows.filter(pk__gt=last_pk)[:chunk])
            if not batch:
                break
            last_pk = batch[-1].pk
            records: dict[str, list[ChangeRecord]] = {}
            for change in ChangeRecord.objects.filter(object_type=object_type,
                                                      object_id__in=[str(r.pk) for r in batch]).order_by("pk"):
                records.setdefault(change.object_id, []).append(change)
            for row in batch:
                history = records.get(str(row.pk), [])
                if not history or history[0].action not in CREATING_ACTIONS:
                    yield f"{object_type} #{row.pk}: no create record"
                    continue
                state = snapshot(row)
                latest = history[-1].after or {}
                changed = sorted(k for k in state.keys() | latest.keys() if state.get(k) != latest.get(k))
                if changed:
                    fields = "; ".join(f"{k}: recorded {json.dumps(latest.get(k))}, row {json.dumps(state.get(k))}"
                                       for k in changed)
                    yield f"{object_type} #{row.pk}: the row differs from change record #{history[-1].pk} ({fields})"


def last_change_id(object_types) -> int | None:
    """The id of the latest change record of any of `object_types` (what a release's contents reflect)."""
    return ChangeRecord.objects.filter(object_type__in=list(object_types)).order_by("-pk").values_list(
        "pk", flat=True).first()


# --- sources outside the services: failed sign-ins, the Celery worker ----------------------------

def record_failed_login(sender=None, credentials=None, request=None, **_kwargs) -> None:
    """A failed sign-in (page, API token, admin): the name tried, never the password."""
    from django.contrib.auth import get_user_model

    username = str((credentials or {}).get("username", ""))[:150]
    user = get_user_model().objects.filter(username=username).first() if username else None
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    record(ChangeRecord.LOGIN_FAILED, object_type="auth.user", object_id=str(user.pk) if user else "",
           object_repr=username, after={"username": username, "known_user": user is not None, "address": address})


_worker_tokens: dict[str, contextvars.Token] = {}


def enter_worker_context(sender=None, task_id=None, **_kwargs) -> None:
    """Celery task_prerun: records written by the task come from the worker, under the task's id."""
    _worker_tokens[task_id] = enter_context(ChangeRecord.WORKER, task_id or "")


def leave_worker_context(sender=None, task_id=None, **_kwargs) -> None:
    token = _worker_tokens.pop(task_id, None)
    if token is not None:
        try:
            leave_context(token)
        except ValueError:  # set in another context (a task run eagerly elsewhere): nothing of ours to undo
            pass
