"""The one background-job engine: an abstract job row with its states and one transition API.

Every transition is a conditional UPDATE (compare-and-set on the state), so two workers holding the
same job (a redelivered message, a second delivery of an upload) can never both run it, and a
cancel cannot be overwritten by a late success. A worker holds a job under the number of its claim
(the lease): once another worker takes a silent job over, the first one's progress, success and
failure are refused, so a stalled worker that wakes up never writes over its successor; its results are
refused too, as each service writes them in a transaction that first asks `still_held`. Progress has
one shape for every kind of job.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone


class StorageNameField(models.CharField):
    """The name of a file in Django's default storage; the storage sweep spares every name held here."""


def database_lost(exc: BaseException) -> bool:
    """True when `exc` is a lost or refused database connection (the server went away, a backend was
    terminated); every connection it left broken is closed first, so the next query opens a new one."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()
    return True


class BackgroundJob(models.Model):
    PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
    STATE_CHOICES = [(s, s.capitalize()) for s in (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)]
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)

    # The Celery task (by name) that runs or resumes a job of this kind, called with the job's pk.
    task_name: str = ""

    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=PENDING, db_index=True)
    done = models.PositiveIntegerField(default=0, help_text="units of work done (epochs)")
    total = models.PositiveIntegerField(default=0, help_text="units of work in all")
    fraction = models.FloatField(null=True, blank=True, help_text="share done, where not done/total (phases)")
    message = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker running it")
    lease = models.PositiveIntegerField(default=0, help_text="claims so far; the worker holding the job has the last")
    queue = models.CharField(max_length=32, blank=True, help_text="the Celery queue it was taken from")
    worker = models.CharField(max_length=255, blank=True, help_text="the hostname of the worker holding it")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    held_lease: int | None = None  # the lease this instance's worker claimed the job under

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    def lease_lost(self) -> bool:
        """True when this worker claimed the job and another worker has since taken it over."""
        return self.held_lease is not None and not type(self).objects.filter(pk=self.pk, lease=self.held_lease).exists()

    def _held(self, queryset):
        """`queryset` narrowed to the lease this worker holds (as is, for a caller that never claimed)."""
        return queryset if self.held_lease is None else queryset.filter(lease=self.held_lease)

    def still_held(self) -> bool:
        """Call inside the transaction that writes a result (rows, or stored names put into rows): True when
        the job is still RUNNING under this worker's lease. The row is then locked (its heartbeat renewed)
        until commit, so a takeover waits for the result or the result sees the takeover. False: write nothing."""
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("still_held() must run inside the transaction of the writes it guards")
        rows = self._held(type(self).objects.filter(pk=self.pk, state=self.RUNNING))
        return bool(rows.update(heartbeat_at=timezone.now()))

    # --- transitions ---------------------------------------------------------------------------

    def _transition(self, from_states, held: bool = False, **fields) -> bool:
        """Set `fields` if the row's state is still one of `from_states` (and, when `held`, the worker still
        holds its lease); refresh this instance."""
        rows = type(self).objects.filter(pk=self.pk, state__in=from_states)
        updated = (self._held(rows) if held else rows).update(**fields)
        self.refresh_from_db()
        return bool(updated)

    def claim(self, *, queue: str = "", worker: str = "") -> bool:
        """PENDING -> RUNNING, or take over a RUNNING job whose worker has been silent past the lease.

        False when another worker holds the job or it has finished: the caller must not run it. On
        success this instance holds the new lease, and the row names the claiming worker and its queue
        (empty when run outside a worker).
        """
        now = timezone.now()
        stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
        lease = (type(self).objects.filter(pk=self.pk).values_list("lease", flat=True).first() or 0) + 1
        updated = (
            type(self).objects.filter(pk=self.pk, lease=lease - 1)
            .filter(models.Q(state=self.PENDING) | models.Q(state=self.RUNNING, heartbeat_at__lt=stale)
                    | models.Q(state=self.RUNNING, heartbeat_at__isnull=True))
            .update(state=self.RUNNING, started_at=Coalesce("started_at", models.Value(now)),
                    heartbeat_at=now, error="", lease=lease, queue=queue, worker=worker)
        )
        self.refresh_from_db()
        if updated:
            self.held_lease = lease
        return bool(updated)

    def report_progress(self, *, done: int | None = None, total: int | None = None, add: int = 0,
                        fraction: float | None = None, message: str | None = None, **counters: int) -> bool:
        """Record progress while RUNNING: absolute `done`/`total`, or `add` (and named counters) by F().

        False when the job is no longer running (cancelled, failed elsewhere) or another worker has taken it
        over: the worker should stop (`lease_lost` tells which).
        """
        fields: dict = {"heartbeat_at": timezone.now()}
        if done is not None:
            fields["done"] = done
        if add:
            fields["done"] = models.F("done") + add
        if total is not None:
            fields["total"] = total
        if fraction is not None:
            fields["fraction"] = max(0.0, min(fraction, 1.0))
        if message is not None:
            fields["message"] = message[:255]
        fields.update({name: models.F(name) + value for name, value in counters.items() if value})
        return bool(self._held(type(self).objects.filter(pk=self.pk, state=self.RUNNING)).update(**fields))

    def succeed(self, message: str = "done", **fields) -> bool:
        return self._transition((self.PENDING, self.RUNNING), held=True, state=self.SUCCEEDED, message=message[:255],
                                finished_at=timezone.now(), error="", **fields)

    def fail(self, error: str, message: str = "failed") -> bool:
        return self._transition((self.PENDING, self.RUNNING), held=True, state=self.FAILED, error=error,
                                message=message[:255], finished_at=timezone.now())

    def cancel(self) -> bool:
        return self._transition((self.PENDING, self.RUNNING), state=self.CANCELLED, message="cancelled",
                                finished_at=timezone.now())

    def reopen(self, **fields) -> bool:
        """A finished (failed, cancelled) or stalled job back to PENDING, to be queued again."""
        return self._transition((self.PENDING, self.RUNNING, self.FAILED, self.CANCELLED), state=self.PENDING,
                                error="", finished_at=None, heartbeat_at=None, **fields)

    def retry_after_database_loss(self, error: str) -> bool:
        """After the database connection was lost mid-run (the run's transactions rolled back, its files are
        the sweep's): back to PENDING and queued again while the job has been claimed fewer than
        JOB_DATABASE_RETRIES + 1 times, else FAILED with `error`. Only while this worker holds the job;
        True when queued again."""
        from core.services.queue import send

        if self.lease <= settings.JOB_DATABASE_RETRIES and self._transition(
                (self.RUNNING,), held=True, state=self.PENDING, heartbeat_at=None,
                message="the database connection was lost; queued again"):
            send(self.task_name, (self.pk,))
            return True
        self.fail(error, message="failed: the database connection was lost")
        return False

    # --- one progress shape --------------------------------------------------------------------

    def progress(self) -> dict:
        """fraction, done, total, rate (units/s), eta_s, message: read from the row, no query."""
        end = self.finished_at or timezone.now()
        elapsed = (end - self.started_at).total_seconds() if self.started_at else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        if self.state == self.SUCCEEDED:
            fraction = 1.0
        elif self.fraction is not None:
            fraction = self.fraction
        else:
            fraction = min(self.done / self.total, 1.0) if self.total else 0.0
        remaining = max(self.total - self.done, 0)
        return {
            "state": self.state,
            "fraction": round(fraction, 4),
            "done": self.done,
            "total": self.total,
            "rate": round(rate, 2),
            "eta_s": round(remaining / rate, 1) if rate and not self.is_finished else None,
            "message": self.message,
        }


class QueueReservation(models.Model):
    """A rater's hold on one of an item's `overlap` slots: live until it expires, kept for good once answered.

    A concrete reservation adds `item` (a ForeignKey to an item with `campaign` and `position`) and the
    unique constraints (item, slot) and (item, rater) that core.services.work_queue relies on.
    """

    slot = models.PositiveSmallIntegerField()
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    labelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    served_at = models.DateTimeField(null=True, blank=True,
                                     help_text="when the rater's clock on the item started: reserved, served again "
                                               "for re-scoring, or the rater's last save while held ahead")

    class Meta:
        abstract = True


class RevisedAnswer(models.Model):
    """One version of a rater's answer to a queue item (append-only; `replaces` is the version it supersedes).

    A concrete answer adds `item` and its own fields, and the unique constraint
    (item, rater, rescore, revision).
    """

    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rescore = models.BooleanField(default=False, help_text="given when the item was served again, unannounced")
    seconds_spent = models.FloatField(null=True, blank=True, help_text="the time the browser reports (not trusted)")
    server_seconds = models.FloatField(null=True, blank=True,
                                       help_text="the time the server measured from the item's serving to the save")
    revision = models.PositiveIntegerField(default=1)
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by")
    client_id = models.UUIDField(unique=True, help_text="idempotency key of the save (a retried save is not duplicated)")
    created_at = models.DateTimeField(auto_now_add=True)

    audit_verified = True  # every row has its change record (core.services.audit.verify)
    hidden_from_rater = ("rescore",)  # left out of the rater's own change records: re-scoring is unannounced

    class Meta:
        abstract = True


class ChangeRecord(models.Model):
    """One entry of the append-only audit trail: who did what to which object, from what, to what.

    Written by the services inside the transaction of the change they record (core.services.audit), so a
    rolled-back change leaves no record and a committed one always has one. Rows are never updated or
    deleted (the model refuses, and a database trigger refuses updates; PostgreSQL deletes too).
    """

    CREATE, UPDATE, DELETE, REVISE = "create", "update", "delete", "revise"
    IMPORT, ADJUDICATE, BUILD, CANCEL = "import", "adjudicate", "build", "cancel"
    ROLE_CHANGE, LOGIN_FAILED = "role_change", "login_failed"
    ACTIONS = (CREATE, UPDATE, DELETE, REVISE, IMPORT, ADJUDICATE, BUILD, CANCEL, ROLE_CHANGE, LOGIN_FAILED)
    ACTION_CHOICES = [(a, a.replace("_", " ")) for a in ACTIONS]
    PAGE, API, CLI, WORKER, ADMIN = "page", "api", "cli", "worker", "admin"
    SOURCE_CHOICES = [(s, s) for s in (PAGE, API, CLI, WORKER, ADMIN)]

    time = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraint: users are never deleted while they have answers, and the actor's name stays.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                              db_constraint=False, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, help_text="the actor's username when the record was made")
    action = models.CharField(max_length=16, choices=ACTION_CHOICES, db_index=True)
    object_type = models.CharField(max_length=64, help_text="app_label.model_name")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=8, choices=SOURCE_CHOICES)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="change_record_object"),
                   models.Index(fields=["actor", "object_type"], name="change_record_actor")]
        permissions = [("view_all_changes", "Can see every change record (not only those of one's own answers)")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.actor_name or '-'} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("change records are append-only: an existing record cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("change records are append-only: a record cannot be deleted")
