"""Queue Celery tasks by name once the surrounding transaction commits (no service imports a tasks module)."""
from __future__ import annotations

import logging

from django.db import transaction

from config.celery import app

log = logging.getLogger(__name__)


def send(name: str, args: tuple = (), *, queue: str | None = None) -> None:
    """Publish task `name` after commit; under task_always_eager run it here instead.

    A broker that is down does not fail the request: the error is logged, the job stays PENDING
    and the stale-job sweep queues it again.
    """

    def publish():
        if app.conf.task_always_eager:
            if name not in app.tasks:
                app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
            app.tasks[name].apply(args=args, throw=True)
        else:
            app.send_task(name, args=args, queue=queue)

    transaction.on_commit(publish, robust=True)


def placement(request) -> dict[str, str]:
    """The queue and worker hostname of the Celery task request being run (empty when run eagerly)."""
    return {"queue": (request.delivery_info or {}).get("routing_key") or "", "worker": request.hostname or ""}
